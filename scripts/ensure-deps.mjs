// Installs the npm dependencies when node_modules is missing or older than the lock file,
// so `npm start` and `npm test` work as the first commands on a fresh clone.
import { existsSync, statSync } from 'node:fs';
import { execSync } from 'node:child_process';

const marker = 'node_modules/.package-lock.json';
const lock = existsSync('package-lock.json') ? 'package-lock.json' : 'package.json';
const stale = !existsSync(marker) || statSync(marker).mtimeMs < statSync(lock).mtimeMs;
if (stale) {
  // `npm install` rather than `npm ci`: it follows package-lock.json all the same, while `npm ci` on
  // npm 11 with this machine's `omit-lockfile-registry-resolved` setting rejects an in-sync lock
  // ("Missing: @swc/core-darwin-arm64 from lock file" — other platforms' optional packages).
  const cmd = 'npm install --no-audit --no-fund';
  console.error(`portal: installing npm dependencies (${cmd}) ...`);
  execSync(cmd, { stdio: 'inherit' });
}
