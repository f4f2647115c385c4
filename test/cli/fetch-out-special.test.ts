import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import { runPortal } from '../helpers/portal-cli.js';

/**
 * `--out` naming something that is not a regular file (a FIFO, a socket, a device) is refused at once, as
 * `/dev/null` was: exit 2 naming the path. A FIFO hung the fetch forever (its size hint opened it for reading).
 */
describe('portal fetch --out that is not a regular file (real CLI, real HTTP mirror)', () => {
  let dir: string;
  let mirror: BadMirror;
  let sock: Server | undefined;
  const bytes = randomBytes(2 ** 20);
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'portal-out-special-'));
    mirror = await startBadMirror(bytes);
  });
  afterAll(async () => {
    sock?.close();
    await mirror?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a FIFO: refused at once (no hang), exit 2, naming it; nothing created beside it', async () => {
    const fifo = path.join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const r = await runPortal(['fetch', mirror.url, '--out', fifo], { cwd: dir, timeoutMs: 30_000 });
    expect(r.stderr).toContain(`output ${fifo} exists and is not a regular file`);
    expect(r.code).toBe(2);
    expect(execFileSync('ls', ['-a', dir]).toString().split('\n').filter(Boolean).sort()).toEqual([
      '.',
      '..',
      'pipe',
    ]);
  }, 40_000);

  test('an empty --out (an unset shell variable): exit 2 saying it is empty, not that the folder exists', async () => {
    const r = await runPortal(['fetch', mirror.url, '--out', ''], { cwd: dir, timeoutMs: 30_000 });
    expect(r.stderr).toContain('--out is empty: give a file name');
    expect(r.stderr).not.toContain('is not a regular file');
    expect(r.code).toBe(2);
  }, 40_000);

  test('a folder: exit 2 saying it is a folder and to name a file inside it; nothing created in it', async () => {
    const folder = path.join(dir, 'downloads');
    execFileSync('mkdir', [folder]);
    const r = await runPortal(['fetch', mirror.url, '--out', folder], { cwd: dir, timeoutMs: 30_000 });
    expect(r.stderr).toContain(
      `output ${folder} is a folder, not a file: give the path of a file inside it (the folder must exist)`,
    );
    expect(r.code).toBe(2);
    expect(execFileSync('ls', ['-A', folder]).toString()).toBe('');
  }, 40_000);

  test('the output name from a URL is percent-decoded (a%20b.bin is "a b.bin"); one decoding to a path separator is refused without --out, named, and fine with it', async () => {
    const cwd = path.join(dir, 'names');
    execFileSync('mkdir', [cwd]);
    const origin = new URL(mirror.url).origin;
    const r = await runPortal(['fetch', `${origin}/a%20b.bin`], { cwd, timeoutMs: 30_000 });
    expect(r.code).toBe(0);
    expect(readFileSync(path.join(cwd, 'a b.bin')).equals(bytes)).toBe(true);
    const sep = await runPortal(['fetch', `${origin}/x%2Fy.bin`], { cwd, timeoutMs: 30_000 });
    expect(sep.stderr).toContain(
      `the file name "x/y.bin" decoded from ${origin}/x%2Fy.bin contains a path separator; give --out FILE to choose the output`,
    );
    expect(sep.code).toBe(2);
    const given = await runPortal(['fetch', `${origin}/x%2Fy.bin`, '--out', 'given.bin'], {
      cwd,
      timeoutMs: 30_000,
    });
    expect(given.code).toBe(0);
    expect(readFileSync(path.join(cwd, 'given.bin')).equals(bytes)).toBe(true);
  }, 90_000);

  test('a socket and a device: refused the same way, exit 2', async () => {
    const s = path.join(dir, 'sock');
    sock = createServer();
    await new Promise<void>((resolve) => sock!.listen(s, resolve));
    for (const out of [s, '/dev/zero']) {
      const r = await runPortal(['fetch', mirror.url, '--out', out], { cwd: dir, timeoutMs: 30_000 });
      expect(r.stderr).toContain(`output ${out} exists and is not a regular file`);
      expect(r.code).toBe(2);
    }
  }, 60_000);
});
