/**
 * `portal fetch URL` of a file no source gives the size of (a dynamic endpoint: 200 with Transfer-Encoding: chunked,
 * no Content-Length, Range ignored, HEAD without a size), against the built CLI as a real process and a real
 * chunked server: it is read as one stream, as curl and wget read it; published only after a clean end of the
 * chunked body and a matching --checksum; a body cut before its last chunk, or a mismatch, leaves no file.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { PORTAL_MAIN, lastJson, runPortal } from '../helpers/portal-cli.js';
import { makeTempDir } from '../transfer/fixtures.js';

const SIZE = 700_000;
const env = { PORTAL_BACKEND: 'cpu' };
let tmp: { dir: string; cleanup: () => Promise<void> };
let n = 0;
const out = (): string => {
  const dir = path.join(tmp.dir, `out-${++n}`);
  mkdirSync(dir);
  return path.join(dir, 'file.bin');
};
const closers: (() => Promise<void>)[] = [];
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * A dynamic endpoint: every GET is 200 with the file written in 64 KiB pieces (node sends them chunked, no
 * Content-Length), Range ignored; HEAD has no Content-Length. With `cutAt`, the connection is destroyed after
 * that many bytes of the body (no terminating chunk); with `delayMs`, the body of a GET that is not the probe starts
 * that long after the headers. Counts the GETs that are not the probe.
 */
async function chunkedServer(
  file: Buffer,
  cutAt?: number,
  delayMs = 0,
): Promise<{ url: string; gets: () => number }> {
  const sockets = new Set<Socket>();
  let gets = 0;
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    if (req.method === 'HEAD') return res.end();
    if (req.headers.range === undefined) gets++;
    let at = 0;
    const step = (): void => {
      if (cutAt !== undefined && at >= cutAt) {
        req.socket.destroy();
        return;
      }
      if (at >= file.length) return void res.end();
      const end = Math.min(file.length, at + 65536, cutAt ?? Infinity);
      res.write(file.subarray(at, end), () => setImmediate(step));
      at = end;
    };
    if (delayMs > 0 && req.headers.range === undefined) setTimeout(step, delayMs);
    else step();
  });
  server.on('connection', (x) => {
    sockets.add(x);
    x.on('close', () => sockets.delete(x));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(
    () =>
      new Promise<void>((r) => {
        for (const x of sockets) x.destroy();
        server.close(() => r());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/file.bin`, gets: () => gets };
}

let file: Buffer;
beforeAll(async () => {
  tmp = await makeTempDir('cli-fetch-stream');
  file = randomBytes(SIZE);
});
afterAll(async () => {
  await Promise.all(closers.map((c) => c()));
  await tmp?.cleanup();
});

describe('portal fetch URL: a file of unknown size is read as one stream', () => {
  test('without a checksum: the output equals the source, and the run says it was read as one stream', async () => {
    const s = await chunkedServer(file);
    const o = out();
    const r = await runPortal(['fetch', s.url, '--out', o], { env });
    expect(r.code).toBe(0);
    expect(sha(await readFile(o))).toBe(sha(file));
    expect(r.stderr).toContain(
      `portal: warning: no source gives the file's size: it is read as one stream from ${s.url}`,
    );
    expect(r.stdout).toContain('complete, not verified (no checksum), read as one stream (size unknown)');
    // nothing beside the output: no partial file, no journal folder
    expect(readdirSync(path.dirname(o))).toEqual(['file.bin']);
  });

  test('with --checksum: verified; two such sources: the first is used, the other named as not used', async () => {
    const a = await chunkedServer(file);
    const b = await chunkedServer(file);
    const o = out();
    const r = await runPortal(
      ['fetch', a.url, b.url, '--out', o, '--checksum', `sha-256=${sha(file)}`, '--json'],
      {
        env,
      },
    );
    expect(r.code).toBe(0);
    expect(sha(await readFile(o))).toBe(sha(file));
    const j = lastJson(r);
    expect(j.verified).toBe(true);
    expect(j.bytes).toBe(SIZE);
    expect(j.streamedFrom).toBe(a.url);
    expect(r.stderr).toContain(
      `portal: ${b.url} not used: it gives no size either; a file of unknown size is read as one stream from one source (${a.url})`,
    );
    expect(a.gets()).toBe(1);
    expect(b.gets()).toBe(0);
  });

  test('a --checksum mismatch exits 3 and leaves no output file', async () => {
    const s = await chunkedServer(file);
    const o = out();
    const wrong = 'ab'.repeat(32);
    const r = await runPortal(['fetch', s.url, '--out', o, '--checksum', `sha-256=${wrong}`], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      `the ${SIZE} bytes ${s.url} streamed hash to sha-256 ${sha(file)}, not the expected ${wrong}: nothing was kept`,
    );
    expect(existsSync(o)).toBe(false);
    expect(readdirSync(path.dirname(o))).toEqual([]);
  });

  test('--out -: the streamed file goes to stdout once it ended cleanly and matched --checksum', async () => {
    const text = Buffer.from('portal streams a file of unknown size\n'.repeat(20_000));
    const s = await chunkedServer(text);
    const r = await runPortal(['fetch', s.url, '--out', '-', '--checksum', `sha-256=${sha(text)}`], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(text.toString());
    expect(r.stderr).toContain('stdout: ');
    expect(r.stderr).toContain('sha256 verified, read as one stream (size unknown)');
  });

  test('a body cut before its terminating chunk is an error naming it, not a short file', async () => {
    const s = await chunkedServer(file, 300_000);
    const o = out();
    const r = await runPortal(['fetch', s.url, '--out', o], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      new RegExp(
        `${s.url.replace(/[.]/g, '\\.')}: the stream broke after \\d+ bytes \\(.+\\); a file of unknown size cannot be resumed, so nothing was kept`,
      ),
    );
    expect(existsSync(o)).toBe(false);
    expect(readdirSync(path.dirname(o))).toEqual([]);
  });
});

/**
 * A dynamic endpoint (chunked, no size, Range ignored, HEAD without a size) whose download GET sends the first
 * `first` bytes, then waits until `release()` (or a fallback after 30 s, which `releasedBy` reports as 'fallback': the old code, which wrote
 * stdout only at the end, never released it) to
 * send the rest and end. The probe (a Range GET) is answered at once.
 */
async function heldChunkedServer(
  file: Buffer,
  first: number,
): Promise<{
  url: string;
  release: () => void;
  releasedBy: () => string | undefined;
  finished: () => boolean;
}> {
  const sockets = new Set<Socket>();
  let releasedBy: string | undefined;
  let finished = false;
  let go!: () => void;
  const released = new Promise<void>((r) => (go = r));
  const release = (by: string): void => {
    releasedBy ??= by;
    go();
  };
  const fallback = setTimeout(() => release('fallback'), 30_000);
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    if (req.method === 'HEAD') return res.end();
    if (req.headers.range !== undefined) return res.end(file);
    res.write(file.subarray(0, first));
    void released.then(() => {
      res.end(file.subarray(first), () => (finished = true));
    });
  });
  server.on('connection', (x) => {
    sockets.add(x);
    x.on('close', () => sockets.delete(x));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(
    () =>
      new Promise<void>((r) => {
        clearTimeout(fallback);
        for (const x of sockets) x.destroy();
        server.close(() => r());
      }),
  );
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/file.bin`,
    release: () => release('test'),
    releasedBy: () => releasedBy,
    finished: () => finished,
  };
}

/** `portal fetch <args> --out -` as a real process, stdout collected as bytes; `onStdout` sees the total so far. */
function fetchToStdout(
  args: string[],
  onStdout: (bytes: number) => void,
): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  const child = spawn(process.execPath, [PORTAL_MAIN, 'fetch', ...args, '--out', '-'], {
    env: { ...process.env, PORTAL_LOG_LEVEL: 'warn', ...env },
  });
  const stdout: Buffer[] = [];
  let total = 0;
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout.push(d);
    total += d.length;
    onStdout(total);
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) =>
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(stdout), stderr })),
  );
}

test('portal fetch URL of unknown size: a file another program created at --out while it streamed is not replaced (exit 2, the verified file kept as the partial file); --force replaces it', async () => {
  const s = await chunkedServer(file, undefined, 1500);
  /** Runs the fetch of `o` and creates `o` once its lock folder (taken after the output check) exists. */
  const fetchWhileCreated = async (o: string, extra: string[] = []) => {
    const run = runPortal(['fetch', s.url, '--out', o, '--checksum', `sha-256=${sha(file)}`, ...extra], {
      env,
    });
    while (!existsSync(`${o}.portal`)) await new Promise((r) => setTimeout(r, 10));
    await writeFile(o, 'my precious data\n');
    return run;
  };
  const o = out();
  const r = await fetchWhileCreated(o);
  expect(r.code).toBe(2);
  expect(r.stderr).toContain(
    `output ${o} was created by another program while the transfer ran: Portal does not replace a file it did not find at the start (it was left as it is), and the finished file is kept as ${o}.portal-part: move it where you want it, or fetch again with --force to replace ${o}`,
  );
  expect(await readFile(o, 'utf8')).toBe('my precious data\n');
  expect(sha(await readFile(`${o}.portal-part`))).toBe(sha(file));
  const forced = out();
  expect((await fetchWhileCreated(forced, ['--force'])).code).toBe(0);
  expect(sha(await readFile(forced))).toBe(sha(file));
});

describe('portal fetch URL --out -: a file of unknown size goes to stdout as it arrives', () => {
  const FIRST = 200_000;

  test('without a checksum: the first bytes reach stdout while the server still holds the rest', async () => {
    const s = await heldChunkedServer(file, FIRST);
    let early: number | undefined;
    let finishedThen: boolean | undefined;
    const r = await fetchToStdout([s.url], (bytes) => {
      // the server sent FIRST bytes and waits: every one of them reached stdout before it sends the rest
      if (bytes >= FIRST && early === undefined) {
        early = bytes;
        finishedThen = s.finished();
        s.release();
      }
    });
    expect(s.releasedBy()).toBe('test');
    expect(early).toBe(FIRST);
    expect(finishedThen).toBe(false);
    expect(r.code).toBe(0);
    expect(r.stdout.equals(file)).toBe(true);
    expect(r.stderr).toContain('the bytes go to stdout as they arrive, checked by nothing but a clean end');
    expect(r.stderr).toContain('stdout: ');
    expect(r.stderr).toContain('complete, not verified (no checksum), read as one stream (size unknown)');
  }, 90_000);

  test('with --checksum: the bytes flow before the end, the check comes last; a match sends the held-back tail', async () => {
    const s = await heldChunkedServer(file, FIRST);
    let early: number | undefined;
    const r = await fetchToStdout([s.url, '--checksum', `sha-256=${sha(file)}`], (bytes) => {
      if (early === undefined) {
        early = bytes;
        s.release();
      }
    });
    expect(s.releasedBy()).toBe('test');
    // what came out before the rest was sent: the first bytes less the tail held back for the check
    expect(early).toBeGreaterThan(0);
    expect(early).toBeLessThanOrEqual(FIRST - 65536);
    expect(r.code).toBe(0);
    expect(r.stdout.equals(file)).toBe(true);
    expect(r.stderr).toContain('sha256 verified, read as one stream (size unknown)');
  }, 90_000);

  test('a --checksum mismatch exits 3 after the bytes went out, saying so; the tail is held back', async () => {
    const s = await heldChunkedServer(file, FIRST);
    const wrong = '1'.repeat(64);
    const r = await fetchToStdout([s.url, '--checksum', `sha-256=${wrong}`], () => s.release());
    expect(s.releasedBy()).toBe('test');
    expect(r.code).toBe(3);
    expect(r.stdout.length).toBeGreaterThan(0);
    expect(r.stdout.length).toBeLessThanOrEqual(SIZE - 65536);
    expect(r.stdout.equals(file.subarray(0, r.stdout.length))).toBe(true);
    expect(r.stderr).toContain(
      `the ${SIZE} bytes ${s.url} streamed hash to sha-256 ${sha(file)}, not the expected ${wrong}; ${r.stdout.length} bytes had been written to stdout (the last ${SIZE - r.stdout.length} were held back): the output is not to be trusted`,
    );
  }, 90_000);
});
