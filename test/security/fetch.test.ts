/**
 * Hostile input to `portal fetch`, each against the built CLI as a real process and real
 * edge servers: manifest names that try to choose a place, outputs that are someone else's file or
 * a planted link, two fetches of one output, a finished journal whose output changed, edges that
 * drip or flood their /v1/have answer, and a full disk. Every case asserts the safe outcome.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { execFileSync } from 'node:child_process';
import {
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rm,
  symlink,
  truncate,
  writeFile,
  lstat,
  stat,
  open,
} from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { lastJson, runPortal } from '../helpers/portal-cli.js';
import { createFileStateStore } from '../../runtime/index.js';

const sha256 = async (file: string): Promise<string> =>
  createHash('sha256')
    .update(await readFile(file))
    .digest('hex');

describe('portal fetch against hostile input', () => {
  let mesh: Mesh | undefined;
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await mesh?.close();
    mesh = undefined;
  });

  /** Writes a copy of the mesh manifest with another `name`; returns its path. */
  async function manifestNamed(name: string): Promise<string> {
    const file = path.join(mesh!.dir, `m-${Math.random().toString(36).slice(2)}.json`);
    await writeFile(file, JSON.stringify({ ...mesh!.manifest, name }));
    return file;
  }

  test('a manifest name with ../ or an absolute path is refused with exit 2 and nothing is written where it points', async () => {
    mesh = await createMesh(8 * 4096, 4096, [{ holds: 'all' }]);
    const work = path.join(mesh.dir, 'a', 'b', 'c');
    await mkdir(work, { recursive: true });
    const edge = ['--edge', mesh.servers[0].url];
    const traversal = await runPortal(['fetch', await manifestNamed('../../../escaped.bin'), ...edge], {
      cwd: work,
    });
    expect(traversal.code).toBe(2);
    expect(traversal.stderr).toMatch(/manifest name "..\/..\/..\/escaped.bin" contains a path separator/);
    expect(existsSync(path.join(mesh.dir, 'escaped.bin'))).toBe(false);
    const absolute = path.join(mesh.dir, 'absolute.bin');
    const abs = await runPortal(['fetch', await manifestNamed(absolute), ...edge], { cwd: work });
    expect(abs.code).toBe(2);
    expect(existsSync(absolute)).toBe(false);
    // and the current folder got nothing either: no output, no journal
    expect(await readdir(work)).toEqual([]);
  });

  test('a manifest name with NUL or terminal escapes is refused with exit 2, printed escaped, and the process exits', async () => {
    mesh = await createMesh(8 * 4096, 4096, [{ holds: 'all' }]);
    const work = await mkdtemp(path.join(mesh.dir, 'w-'));
    const edge = ['--edge', mesh.servers[0].url];
    const nul = await runPortal(['fetch', await manifestNamed('a\u0000b.bin'), ...edge], {
      cwd: work,
      timeoutMs: 20_000,
    });
    expect(nul.code).toBe(2);
    expect(nul.stderr).toContain('a\\x00b.bin');
    expect(nul.stderr).toMatch(/control character/);
    const ansi = await runPortal(['fetch', await manifestNamed('\u001b[2J\u001b[31mevil.bin'), ...edge], {
      cwd: work,
      timeoutMs: 20_000,
    });
    expect(ansi.code).toBe(2);
    expect(ansi.stderr).not.toContain('\u001b');
    expect(ansi.stderr).toContain('\\x1b[2J');
    expect(await readdir(work)).toEqual([]);
  });

  test('an existing file of the manifest name is not overwritten without --force; with --force it is fetched and verified', async () => {
    mesh = await createMesh(16 * 4096, 4096, [{ holds: 'all' }]);
    const work = await mkdtemp(path.join(mesh.dir, 'w-'));
    const existing = path.join(work, 'out.bin');
    await writeFile(existing, 'precious notes\n');
    const edge = ['--edge', mesh.servers[0].url];
    const r = await runPortal(['fetch', mesh.manifestPath, ...edge, '--json'], { cwd: work });
    expect(r.code).toBe(2);
    expect(lastJson(r)).toMatchObject({ error: { code: 'PORTAL_OUTPUT_REFUSED' } });
    expect(r.stderr).toMatch(/already exists .*--force/);
    expect(await readFile(existing, 'utf8')).toBe('precious notes\n');
    expect(existsSync(`${existing}.portal`)).toBe(false);
    const forced = await runPortal(['fetch', mesh.manifestPath, ...edge, '--force', '--json'], { cwd: work });
    expect(forced.code).toBe(0);
    expect(lastJson(forced).verified).toBe(true);
    expect(await sha256(existing)).toBe(mesh.manifest.fileSha256);
  });

  test('--out at a planted symlink is refused; --force replaces the link and never writes through it', async () => {
    mesh = await createMesh(16 * 4096, 4096, [{ holds: 'all' }]);
    const victim = path.join(mesh.dir, 'victim.txt');
    await writeFile(victim, 'do not touch\n');
    const out = path.join(mesh.dir, 'planted.bin');
    await symlink(victim, out);
    const edge = ['--edge', mesh.servers[0].url];
    const r = await runPortal(['fetch', mesh.manifestPath, ...edge, '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is a symbolic link/);
    expect(await readFile(victim, 'utf8')).toBe('do not touch\n');
    const forced = await runPortal(['fetch', mesh.manifestPath, ...edge, '--out', out, '--force', '--json']);
    expect(forced.code).toBe(0);
    expect(await readFile(victim, 'utf8')).toBe('do not touch\n');
    expect((await lstat(out)).isFile()).toBe(true);
    expect(await sha256(out)).toBe(mesh.manifest.fileSha256);
  });

  test('--out under a plain file or a missing folder exits 2 naming the problem, and creates no folder', async () => {
    mesh = await createMesh(8 * 4096, 4096, [{ holds: 'all' }]);
    const plain = path.join(mesh.dir, 'plainfile');
    await writeFile(plain, 'x');
    const edge = ['--edge', mesh.servers[0].url];
    const a = await runPortal(['fetch', mesh.manifestPath, ...edge, '--out', path.join(plain, 'x')], {
      timeoutMs: 20_000,
    });
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/plainfile is not a folder/);
    const missing = path.join(mesh.dir, 'missing', 'dir', 'x');
    const b = await runPortal(['fetch', mesh.manifestPath, ...edge, '--out', missing], { timeoutMs: 20_000 });
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/missing\/dir does not exist \(fetch creates no folders\)/);
    expect(existsSync(path.join(mesh.dir, 'missing'))).toBe(false);
  });

  test('a second fetch of the same --out is refused with a clear lock message while the first runs; the first completes', async () => {
    // ~10 s at 100 kB/s: the second fetch starts and ends while the first is still writing
    mesh = await createMesh(64 * 16384, 16384, [{ holds: 'all', bandwidthBytesPerSec: 100_000 }]);
    const out = path.join(mesh.dir, 'locked.bin');
    const edge = ['--edge', mesh.servers[0].url];
    let second: Promise<Awaited<ReturnType<typeof runPortal>>> | undefined;
    let firstRunningWhenSecondEnded = false;
    const first = await runPortal(['fetch', mesh.manifestPath, ...edge, '--out', out, '--progress-json'], {
      onLine: (l, child) => {
        if (!second && (JSON.parse(l) as { type: string }).type === 'started') {
          second = runPortal(['fetch', mesh!.manifestPath, ...edge, '--out', out, '--json']);
          void second.then(() => {
            firstRunningWhenSecondEnded = child.exitCode === null && child.signalCode === null;
          });
        }
      },
    });
    expect(first.code).toBe(0);
    expect(second).toBeDefined();
    const s = await second!;
    expect(s.code).toBe(2);
    expect(lastJson(s)).toMatchObject({ error: { code: 'PORTAL_OUTPUT_LOCKED' } });
    expect(s.stderr).toMatch(/being written by another portal process \(pid \d+\)/);
    expect(firstRunningWhenSecondEnded).toBe(true);
    expect(await sha256(out)).toBe(mesh.manifest.fileSha256);
    // the lock went away with the first fetch
    expect(existsSync(path.join(`${out}.portal`, 'lock'))).toBe(false);
  });

  test('a rerun after the output was deleted, truncated or altered does not trust the journal: gone is fetched again, changed is refused until --force', async () => {
    mesh = await createMesh(32 * 4096, 4096, [{ holds: 'all' }]);
    const out = path.join(mesh.dir, 'done.bin');
    const args = ['fetch', mesh.manifestPath, '--edge', mesh.servers[0].url, '--out', out, '--json'];
    const first = await runPortal(args);
    expect(first.code).toBe(0);
    // untouched: the finished journal is trusted after the output's size and sha-256 are checked (nothing fetched)
    const again = await runPortal(args);
    expect(again.code).toBe(0);
    expect(lastJson(again)).toMatchObject({ alreadyComplete: true, verified: true, fetchedChunks: 0 });

    await rm(out);
    const afterDelete = await runPortal(args);
    expect(afterDelete.code).toBe(0);
    expect(lastJson(afterDelete)).toMatchObject({ verified: true, fetchedChunks: 32 });
    expect(await sha256(out)).toBe(mesh.manifest.fileSha256);

    // truncated, or the same size with one byte changed: never reported complete; refused (exit 2) naming what it
    // is now and was then, and left as it is; --force fetches it again and verifies
    await truncate(out, 5 * 4096);
    const afterTruncate = await runPortal(args);
    expect(afterTruncate.code).toBe(2);
    expect(lastJson(afterTruncate)).toMatchObject({ error: { code: 'PORTAL_OUTPUT_REFUSED' } });
    expect(afterTruncate.stderr).toContain(`changed since it was fetched (${5 * 4096} bytes`);
    expect((await stat(out)).size).toBe(5 * 4096);
    const forced = await runPortal([...args, '--force']);
    expect(forced.code).toBe(0);
    expect(lastJson(forced)).toMatchObject({ verified: true, fetchedChunks: 32 });
    expect(await sha256(out)).toBe(mesh.manifest.fileSha256);

    const fh = await open(out, 'r+');
    await fh.write(Buffer.from([0x42 ^ (await readFile(out))[7 * 4096 + 3]]), 0, 1, 7 * 4096 + 3);
    await fh.close();
    const afterAlter = await runPortal(args);
    expect(afterAlter.code).toBe(2);
    expect(afterAlter.stderr).toContain(`sha-256 ${mesh.manifest.fileSha256} then`);
    const forcedAlter = await runPortal([...args, '--force']);
    expect(forcedAlter.code).toBe(0);
    expect(lastJson(forcedAlter).verified).toBe(true);
    expect(await sha256(out)).toBe(mesh.manifest.fileSha256);
  });

  describe('edges that answer /v1/have badly', () => {
    let server: http.Server | undefined;
    let sent = 0;
    afterEach(async () => {
      server?.closeAllConnections();
      await new Promise((r) => server?.close(r));
      server = undefined;
    });
    async function haveServer(handler: (res: http.ServerResponse) => void): Promise<string> {
      sent = 0;
      server = http.createServer((req, res) => handler(res));
      await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    }

    test('a slow-drip /v1/have answer is cut off at its deadline and fetch exits naming the edge', async () => {
      mesh = await createMesh(8 * 4096, 4096, []);
      const url = await haveServer((res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        const t = setInterval(() => {
          if (res.destroyed) clearInterval(t);
          else res.write(' ');
        }, 200);
        res.on('close', () => clearInterval(t));
      });
      const r = await runPortal(
        ['fetch', mesh.manifestPath, '--edge', url, '--out', path.join(mesh.dir, 'o.bin'), '--json'],
        { timeoutMs: 30_000 },
      );
      // the edge is left out naming why; with no source left the run fails (exit 3)
      expect(r.code).toBe(3);
      expect(lastJson(r)).toMatchObject({ error: { code: 'PORTAL_TRANSFER_FAILED' } });
      expect(r.stderr).toMatch(/did not send the have bitmap .* within 5000 ms/);
      expect(r.ms).toBeLessThan(20_000);
    });

    test('a /v1/have answer far larger than a bitmap is refused without reading it whole', async () => {
      mesh = await createMesh(8 * 4096, 4096, []);
      const block = Buffer.alloc(64 * 1024, 0x20);
      const url = await haveServer((res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        const pump = (): void => {
          while (!res.destroyed && sent < 400 * 1024 * 1024) {
            sent += block.length;
            if (!res.write(block)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
      });
      const r = await runPortal(
        ['fetch', mesh.manifestPath, '--edge', url, '--out', path.join(mesh.dir, 'o.bin'), '--json'],
        { timeoutMs: 30_000 },
      );
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/sent more than \d+ bytes for the have bitmap/);
      // the answer was cut off early: nowhere near the 400 MB the edge meant to send
      expect(sent).toBeLessThan(50 * 1024 * 1024);
    });
  });

  test('a full disk stops the fetch with "no space left on device" and exit 3, leaving a readable journal', async () => {
    // a 1 MiB tmpfs for a 2 MiB output: needs root (CAP_SYS_ADMIN) for mount, as this test environment has
    mesh = await createMesh(128 * 16384, 16384, [{ holds: 'all' }]);
    const small = await mkdtemp(path.join(os.tmpdir(), 'portal-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]);
    cleanups.push(async () => {
      execFileSync('umount', [small]);
      await rm(small, { recursive: true, force: true });
    });
    const out = path.join(small, 'big.bin');
    const r = await runPortal([
      'fetch',
      mesh.manifestPath,
      '--edge',
      mesh.servers[0].url,
      '--out',
      out,
      '--json',
    ]);
    expect(r.code).toBe(3);
    expect(lastJson(r)).toMatchObject({ error: { code: 'PORTAL_TRANSFER_FAILED' } });
    expect(r.stderr).toMatch(/no space left on device/);
    expect(r.stderr).not.toMatch(/cannot be served by any edge/);
    const store = createFileStateStore(`${out}.portal`);
    const keys = await store.keys('SchedulerActor||');
    const journalKey = keys.find((k) => k.endsWith('||journal'));
    expect(journalKey).toBeDefined();
    const journal = JSON.parse((await store.get(journalKey!))!) as { manifestId: string };
    await store.close();
    expect(journal.manifestId).toBe(mesh.manifest.id);
    // nothing took the final name: the bytes stay in the partial file
    expect(existsSync(out)).toBe(false);
  });
});
