import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { makeTempDir } from '../transfer/fixtures.js';

// scripts/ensure-deps.mjs (the prestart/pretest step) decides by the lock file's content whether node_modules
// needs an install. A fake `npm` on PATH records whether it was run, so the test never installs anything.
const run = promisify(execFile);
const SCRIPT = path.resolve('scripts/ensure-deps.mjs');
let tmp: { dir: string; cleanup: () => Promise<void> };

beforeEach(async () => {
  tmp = await makeTempDir('ensure-deps');
  await mkdir(path.join(tmp.dir, 'bin'));
  await writeFile(
    path.join(tmp.dir, 'bin', 'npm'),
    '#!/bin/sh\necho "$@" >> npm-calls\nmkdir -p node_modules && touch node_modules/.package-lock.json\n',
  );
  await chmod(path.join(tmp.dir, 'bin', 'npm'), 0o755);
  await writeFile(path.join(tmp.dir, 'package-lock.json'), '{"lockfileVersion":3}\n');
});
afterEach(async () => tmp.cleanup());

async function ensure(): Promise<string[]> {
  await run(process.execPath, [SCRIPT], {
    cwd: tmp.dir,
    env: { ...process.env, PATH: `${path.join(tmp.dir, 'bin')}:${process.env.PATH ?? ''}` },
  });
  const calls = await readFile(path.join(tmp.dir, 'npm-calls'), 'utf8').catch(() => '');
  return calls.split('\n').filter(Boolean);
}
const lockHash = async (): Promise<string> =>
  createHash('sha256')
    .update(await readFile(path.join(tmp.dir, 'package-lock.json')))
    .digest('hex');

test('no node_modules: installs once, stamps the lock hash, and the next run installs nothing', async () => {
  expect(await ensure()).toEqual(['install --no-audit --no-fund']);
  expect((await readFile(path.join(tmp.dir, 'node_modules/.portal-deps'), 'utf8')).trim()).toBe(
    await lockHash(),
  );
  expect(await ensure()).toHaveLength(1);
});

test('an install stamped with this lock is kept even when the lock file is newer (a fresh clone sharing it)', async () => {
  await mkdir(path.join(tmp.dir, 'node_modules'));
  await writeFile(path.join(tmp.dir, 'node_modules/.package-lock.json'), '{}');
  await writeFile(path.join(tmp.dir, 'node_modules/.portal-deps'), `${await lockHash()}\n`);
  const old = new Date(Date.now() - 3600_000);
  await utimes(path.join(tmp.dir, 'node_modules/.package-lock.json'), old, old);
  expect(await ensure()).toEqual([]);
});

test('an install stamped with another lock is redone', async () => {
  await mkdir(path.join(tmp.dir, 'node_modules'));
  await writeFile(path.join(tmp.dir, 'node_modules/.package-lock.json'), '{}');
  await writeFile(path.join(tmp.dir, 'node_modules/.portal-deps'), `${'0'.repeat(64)}\n`);
  expect(await ensure()).toEqual(['install --no-audit --no-fund']);
  expect((await readFile(path.join(tmp.dir, 'node_modules/.portal-deps'), 'utf8')).trim()).toBe(
    await lockHash(),
  );
});
