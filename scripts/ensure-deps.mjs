// Installs the npm dependencies when node_modules is missing or older than the lock file,
// so `npm start` and `npm test` work as the first commands on a fresh clone.
import { existsSync, statSync } from 'node:fs';
import { execSync } from 'node:child_process';

const marker = 'node_modules/.package-lock.json';
const lock = existsSync('package-lock.json') ? 'package-lock.json' : 'package.json';
const stale = !existsSync(marker) || statSync(marker).mtimeMs < statSync(lock).mtimeMs;
if (stale) {
  const cmd = existsSync('package-lock.json') ? 'npm ci --no-audit --no-fund' : 'npm install --no-audit --no-fund';
  console.error(`portal: installing npm dependencies (${cmd}) ...`);
  execSync(cmd, { stdio: 'inherit' });
}
