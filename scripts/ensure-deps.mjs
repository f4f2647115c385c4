// Installs the npm dependencies when node_modules is missing or was installed from another lock file, so
// `npm start` and `npm test` work as the first commands on a fresh clone.
//
// "Another lock file" is decided by content: node_modules/.portal-deps holds the sha-256 of the lock file the last
// install here was made from. Timestamps cannot decide it: a fresh clone's lock file is newer than any install, so
// an install that matches it (a node_modules shared between checkouts, or restored from a CI cache) was redone.
// An install older than this stamp (no stamp yet) is trusted once when it is newer than the lock file, as before.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { execSync } from 'node:child_process';

const marker = 'node_modules/.package-lock.json';
const stampFile = 'node_modules/.portal-deps';
const lock = existsSync('package-lock.json') ? 'package-lock.json' : 'package.json';
const hash = createHash('sha256').update(readFileSync(lock)).digest('hex');
const stamp = existsSync(stampFile) ? readFileSync(stampFile, 'utf8').trim() : undefined;
const installed =
  existsSync(marker) &&
  (stamp !== undefined ? stamp === hash : statSync(marker).mtimeMs >= statSync(lock).mtimeMs);
if (!installed) {
  // `npm install` rather than `npm ci`: it follows package-lock.json all the same, while `npm ci` on
  // npm 11 with this machine's `omit-lockfile-registry-resolved` setting rejects an in-sync lock
  // ("Missing: @swc/core-darwin-arm64 from lock file" — other platforms' optional packages).
  const cmd = 'npm install --no-audit --no-fund';
  console.error(`portal: installing npm dependencies (${cmd}) ...`);
  execSync(cmd, { stdio: 'inherit' });
}
if (stamp !== hash && existsSync('node_modules')) writeFileSync(stampFile, `${hash}\n`);
