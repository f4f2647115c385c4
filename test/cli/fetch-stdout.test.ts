import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { chown, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { makeTempDir, writeRandomFile } from '../transfer/fixtures.js';

const MAIN = path.resolve('dist/cli/main.js');
const CHUNK = 262144; // the chunk size Portal picks for a small file from URLs, and the Metalink's piece size here
const SIZE = 7 * CHUNK + 1000; // 8 chunks: the last one begins at 7 * CHUNK
const TAIL = 7 * CHUNK;

let tmp: { dir: string; cleanup: () => Promise<void> };
let file: { path: string; bytes: Buffer };
let sha: string;
let n = 0;

/**
 * A Range mirror of the test file whose answers stop at the file's last chunk until `release()`: the bytes before
 * it go out at once, the last chunk's only once released (or after FALLBACK_MS, so that a build that writes
 * nothing before the transfer's end still ends and fails the assertions instead of hanging).
 */
async function heldMirror(): Promise<{
  url: string;
  release(): void;
  released(): boolean;
  close(): Promise<void>;
}> {
  let released = false;
  const waiting: (() => void)[] = [];
  const release = (): void => {
    released = true;
    for (const w of waiting.splice(0)) w();
  };
  const fallback = setTimeout(release, 20_000);
  const server = http.createServer((req, res) => {
    const r = /^bytes=(\d+)-(\d+)?$/.exec(req.headers.range ?? '');
    const a = r ? Number(r[1]) : 0;
    const b = r && r[2] !== undefined ? Math.min(Number(r[2]), SIZE - 1) : SIZE - 1;
    res.writeHead(r ? 206 : 200, {
      'content-length': String(b - a + 1),
      'accept-ranges': 'bytes',
      ...(r ? { 'content-range': `bytes ${a}-${b}/${SIZE}` } : {}),
    });
    if (req.method === 'HEAD') return void res.end();
    if (b < TAIL || released) return void res.end(file.bytes.subarray(a, b + 1));
    if (a < TAIL) res.write(file.bytes.subarray(a, TAIL));
    waiting.push(() => res.end(file.bytes.subarray(Math.max(a, TAIL), b + 1)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/file.bin`,
    release,
    released: () => released,
    close: async () => {
      clearTimeout(fallback);
      release();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** `portal fetch … --out -` in a folder of its own with a TMPDIR of its own; stdout collected as bytes. */
function fetchToStdout(
  args: string[],
  tmpDir = path.join(tmp.dir, `tmp-${++n}`),
): {
  child: ChildProcessWithoutNullStreams;
  stdout: Buffer[];
  tmpDir: string;
  ended: Promise<{ code: number | null; stdout: Buffer; stderr: string }>;
} {
  const stdout: Buffer[] = [];
  let stderr = '';
  // an existing folder: portal never creates the TMPDIR it is given (a missing one is PORTAL_CONFIG_INVALID)
  mkdirSync(tmpDir, { recursive: true });
  const child = spawn(process.execPath, [MAIN, 'fetch', ...args, '--out', '-'], {
    cwd: tmp.dir,
    env: { ...process.env, PORTAL_LOG_LEVEL: 'warn', PORTAL_BACKEND: 'cpu', TMPDIR: tmpDir },
  });
  child.stdout.on('data', (d: Buffer) => stdout.push(d));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const ended = new Promise<{ code: number | null; stdout: Buffer; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(stdout), stderr })),
  );
  return { child, stdout, tmpDir, ended };
}

/** Resolves once `bytes` bytes came on stdout (or the process ended). */
function stdoutReached(f: ReturnType<typeof fetchToStdout>, bytes: number): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => {
      if (f.stdout.reduce((s, b) => s + b.length, 0) < bytes) return;
      f.child.stdout.off('data', check);
      resolve();
    };
    f.child.stdout.on('data', check);
    f.child.on('close', () => resolve());
    check();
  });
}

beforeAll(async () => {
  tmp = await makeTempDir('cli-fetch-stdout');
  const www = path.join(tmp.dir, 'www');
  await mkdir(www);
  file = await writeRandomFile(www, 'file.bin', SIZE, 33);
  sha = createHash('sha256').update(file.bytes).digest('hex');
});
afterAll(async () => {
  await tmp?.cleanup();
});

describe('portal fetch --out - streams the verified prefix while the transfer runs', () => {
  test('a Metalink with piece hashes: the chunks before the last reach stdout while the last is still on its way', async () => {
    const m = await heldMirror();
    try {
      const meta = path.join(tmp.dir, 'file.meta4');
      const mk = spawn(
        process.execPath,
        [
          MAIN,
          'manifest',
          file.path,
          '--chunk-size',
          String(CHUNK),
          '--metalink',
          '--url',
          m.url,
          '--out',
          meta,
        ],
        { stdio: 'ignore' },
      );
      expect(await new Promise((resolve) => mk.on('close', resolve))).toBe(0);
      const f = fetchToStdout([meta]);
      await stdoutReached(f, TAIL);
      // every byte before the last chunk came out while the mirror still held the last chunk
      const early = Buffer.concat(f.stdout);
      const heldWhenWritten = !m.released();
      m.release();
      const r = await f.ended;
      expect(heldWhenWritten).toBe(true);
      expect(early.equals(file.bytes.subarray(0, TAIL))).toBe(true);
      expect(r.code).toBe(0);
      expect(r.stdout.equals(file.bytes)).toBe(true);
      expect(r.stderr).toMatch(/stdout: .* sha256 verified/);
      expect((await readdir(f.tmpDir)).filter((x) => x.startsWith('portal-stdout-'))).toEqual([]);
    } finally {
      await m.close();
    }
  });

  test('URLs without chunk hashes: the stream flows unverified, and a failed whole-file check after it exits 3 saying so, the last chunk held back', async () => {
    const m = await heldMirror();
    try {
      const f = fetchToStdout([m.url, '--checksum', `sha-256=${'1'.repeat(64)}`]);
      await stdoutReached(f, TAIL);
      const heldWhenWritten = !m.released();
      m.release();
      const r = await f.ended;
      expect(heldWhenWritten).toBe(true);
      expect(r.code).toBe(3);
      // everything but the last chunk went out; the last one waits for the check, which failed
      expect(r.stdout.equals(file.bytes.subarray(0, TAIL))).toBe(true);
      expect(r.stderr).toContain(`does not match the sha256 --checksum gives, ${'1'.repeat(64)}`);
      expect(r.stderr).toContain(
        `1.8 MiB (${TAIL} bytes, unverified: checked by length only) had been written to stdout: the output stream is incomplete and not to be trusted`,
      );
      expect((await readdir(f.tmpDir)).filter((x) => x.startsWith('portal-stdout-'))).toEqual([]);
    } finally {
      await m.close();
    }
  });

  test('a reader that goes away (| head) ends the run quietly before the transfer ends; Ctrl-C says how much was written', async () => {
    const m = await heldMirror();
    try {
      const f = fetchToStdout([m.url, '--checksum', `sha-256=${sha}`]);
      await stdoutReached(f, 1);
      f.child.stdout.destroy(); // the reading end closes: the next write is EPIPE
      const r = await f.ended;
      expect(m.released()).toBe(false); // it stopped without waiting for the rest of the file
      expect(r.code).toBe(0);
      expect(r.stderr).not.toMatch(/portal: /);
      expect((await readdir(f.tmpDir)).filter((x) => x.startsWith('portal-stdout-'))).toEqual([]);

      const g = fetchToStdout([m.url, '--checksum', `sha-256=${sha}`]);
      await stdoutReached(g, TAIL);
      g.child.kill('SIGINT');
      const s = await g.ended;
      expect(s.code).toBe(130);
      expect(s.stderr).toContain(
        `portal: interrupted; 1.8 MiB (${s.stdout.length} bytes, unverified: checked by length only) had been written to stdout, the file is incomplete, and nothing is kept (--out - does not resume)`,
      );
      expect(s.stdout.length).toBe(TAIL);
    } finally {
      await m.close();
    }
  });

  test('the next --out - removes the temporary folder a SIGKILLed one left, and only such folders', async () => {
    const m = await heldMirror();
    try {
      const f = fetchToStdout([m.url, '--checksum', `sha-256=${sha}`]);
      await stdoutReached(f, 1);
      f.child.kill('SIGKILL');
      await f.ended;
      const left = (await readdir(f.tmpDir)).filter((x) => x.startsWith('portal-stdout-'));
      expect(left).toEqual([expect.stringMatching(new RegExp(`^portal-stdout-${f.child.pid}-`))]);
      expect((await readdir(path.join(f.tmpDir, left[0]))).length).toBeGreaterThan(0); // the file is in it
      // beside it: a live process's folder (this test's), a link named as a dead one's, and (as root) another
      // user's folder of a dead pid
      const live = `portal-stdout-${process.pid}-aaaaaa`;
      await mkdir(path.join(f.tmpDir, live));
      const target = path.join(tmp.dir, 'link-target');
      await mkdir(target);
      await writeFile(path.join(target, 'keep'), 'kept');
      const link = 'portal-stdout-999999999-bbbbbb';
      await symlink(target, path.join(f.tmpDir, link));
      const others = 'portal-stdout-999999998-cccccc';
      await mkdir(path.join(f.tmpDir, others));
      const root = process.getuid?.() === 0;
      if (root) await chown(path.join(f.tmpDir, others), 65534, 65534);
      m.release();
      // the next run, with the same TMPDIR as the killed one
      const r = await fetchToStdout([m.url, '--checksum', `sha-256=${sha}`], f.tmpDir).ended;
      expect(r.code).toBe(0);
      expect(r.stdout.equals(file.bytes)).toBe(true);
      const after = (await readdir(f.tmpDir)).filter((x) => x.startsWith('portal-stdout-')).sort();
      expect(after).toEqual(root ? [others, link, live].sort() : [link, live].sort());
      expect(await readFile(path.join(target, 'keep'), 'utf8')).toBe('kept');
    } finally {
      await m.close();
    }
  });
});
