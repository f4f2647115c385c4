/**
 * A Metalink listing several <file>s, with a real nginx serving them and the real CLI: Portal fetched the first
 * only, warned, and exited 0 (aria2c fetches every one). It now refuses (exit 2) listing the files unless
 * `--file NAME` selects one, which it then fetches and verifies.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startNginx, type TestNginx } from '../../harness/nginx.js';
import { makeTempDir } from '../transfer/fixtures.js';
import { runPortal } from '../helpers/portal-cli.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let nginx: TestNginx;
let meta4: string;
const a = randomBytes(200_000);
const b = randomBytes(300_000);

beforeAll(async () => {
  tmp = await makeTempDir('metalink-files');
  const www = path.join(tmp.dir, 'www');
  await mkdir(www);
  await writeFile(path.join(www, 'a.bin'), a);
  await writeFile(path.join(www, 'b.bin'), b);
  nginx = await startNginx({ root: www });
  const entry = (name: string, bytes: Buffer) =>
    `<file name="${name}"><size>${bytes.length}</size><hash type="sha-256">${createHash('sha256').update(bytes).digest('hex')}</hash><url priority="1">${nginx.httpUrl}/${name}</url></file>`;
  meta4 = path.join(tmp.dir, 'two.meta4');
  await writeFile(
    meta4,
    `<?xml version="1.0" encoding="UTF-8"?>\n<metalink xmlns="urn:ietf:params:xml:ns:metalink">${entry('a.bin', a)}${entry('b.bin', b)}</metalink>\n`,
  );
});
afterAll(async () => {
  await nginx?.stop();
  await tmp?.cleanup();
});

const workDir = async (name: string) => {
  const d = path.join(tmp.dir, name);
  await mkdir(d);
  return d;
};

test('without --file: exit 2 listing both files, nothing written', async () => {
  const cwd = await workDir('none');
  const r = await runPortal(['fetch', meta4], { cwd });
  expect(r.code).toBe(2);
  expect(r.stderr).toContain('the Metalink lists 2 files');
  expect(r.stderr).toContain('--file NAME');
  expect(r.stderr).toContain(`  a.bin (${a.length} bytes)`);
  expect(r.stderr).toContain(`  b.bin (${b.length} bytes)`);
  expect(existsSync(path.join(cwd, 'a.bin'))).toBe(false);
});

test('--file b.bin fetches the second file, verified', async () => {
  const cwd = await workDir('second');
  const r = await runPortal(['fetch', meta4, '--file', 'b.bin'], { cwd });
  expect(r.code).toBe(0);
  expect((await readFile(path.join(cwd, 'b.bin'))).equals(b)).toBe(true);
  expect(existsSync(path.join(cwd, 'a.bin'))).toBe(false);
});

test('--file naming no file of the Metalink: exit 2 listing them', async () => {
  const cwd = await workDir('nope');
  const r = await runPortal(['fetch', meta4, '--file', 'c.bin'], { cwd });
  expect(r.code).toBe(2);
  expect(r.stderr).toContain('--file "c.bin": the Metalink has no such file');
  expect(r.stderr).toContain('  a.bin');
});
