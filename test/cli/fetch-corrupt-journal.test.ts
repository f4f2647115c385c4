/**
 * `portal fetch` finding a journal it cannot read beside its output (a file cut short by a disk error): the error
 * names the remedy, and --force discards the journal and its partial file and starts over. Real processes: the
 * built CLI, killed with SIGKILL mid-fetch, and loopback mirrors (test/helpers/bad-mirror.ts).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, readdir, truncate } from 'node:fs/promises';
import path from 'node:path';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import { PORTAL_MAIN, runPortal } from '../helpers/portal-cli.js';
import { makeTempDir, writeRandomFile } from '../transfer/fixtures.js';

const SIZE = 6 * 262144;
let tmp: { dir: string; cleanup: () => Promise<void> };
let bytes: Buffer;
let sha: string;
const mirrors: BadMirror[] = [];
const env = { PORTAL_BACKEND: 'cpu' };

beforeAll(async () => {
  tmp = await makeTempDir('cli-fetch-corrupt-journal');
  bytes = (await writeRandomFile(tmp.dir, 'src.bin', SIZE, 11)).bytes;
  sha = createHash('sha256').update(bytes).digest('hex');
});
afterAll(async () => {
  await Promise.all(mirrors.map((s) => s.close()));
  await tmp?.cleanup();
});

test('a corrupt journal: the error names --force and the journal folder; --force discards it and fetches the file', async () => {
  // the first run gets its first chunk, then the mirror stalls: it is killed while its journal and partial file exist
  let served = 0;
  const stalling = await startBadMirror(bytes, (_n, req) =>
    req.method === 'GET' && req.headers.range !== 'bytes=0-0' && served++ > 0
      ? { kind: 'stall' }
      : { kind: 'ok' },
  );
  const ok = await startBadMirror(bytes);
  mirrors.push(stalling, ok);
  const out = path.join(tmp.dir, 'k.bin');
  const jdir = `${out}.portal`;
  const checksum = ['--checksum', `sha-256=${sha}`];
  const first = spawn(process.execPath, [PORTAL_MAIN, 'fetch', stalling.url, '--out', out, ...checksum], {
    stdio: 'ignore',
    env: { ...process.env, ...env },
  });
  const exited = new Promise((r) => first.once('exit', r));
  const journalFile = async (): Promise<string | undefined> => {
    const names = await readdir(jdir).catch(() => [] as string[]);
    const json = names.find((n) => n.endsWith('.json'));
    return json && existsSync(`${out}.portal-part`) ? path.join(jdir, json) : undefined;
  };
  let file: string | undefined;
  while (!(file = await journalFile())) await new Promise((r) => setTimeout(r, 50));
  first.kill('SIGKILL');
  await exited;
  await truncate(file, 40); // what a bad sector leaves of it

  const refused = await runPortal(['fetch', ok.url, '--out', out, ...checksum], { env });
  expect(refused.code).toBe(4);
  expect(refused.stderr).toContain(`the journal of ${out} cannot be read`);
  expect(refused.stderr).toContain('run again with --force to discard it');
  expect(refused.stderr).toContain(`or remove ${jdir} and that file yourself [PORTAL_STATE_CORRUPT]`);
  expect(existsSync(out)).toBe(false);

  const forced = await runPortal(['fetch', ok.url, '--out', out, ...checksum, '--force'], { env });
  expect(forced.stderr).toContain(`the journal in ${jdir} could not be read`);
  expect(forced.code).toBe(0);
  expect(
    createHash('sha256')
      .update(await readFile(out))
      .digest('hex'),
  ).toBe(sha);
}, 120_000);
