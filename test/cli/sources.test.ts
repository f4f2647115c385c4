import { spawn, execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, link, mkdir, readFile, readdir, stat, symlink, writeFile, copyFile } from 'node:fs/promises';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { startBadMirror, type BadMirror, type MirrorMode } from '../helpers/bad-mirror.js';
import { startNginx, type TestNginx } from '../../harness/nginx.js';
import { makeTestCa, type TestCa } from '../../harness/tls-ca.js';
import { startTinyproxy, type TestProxy } from '../../harness/tinyproxy.js';
import { makeTempDir, writeRandomFile } from '../transfer/fixtures.js';

const run = promisify(execFile);
const MAIN = path.resolve('dist/cli/main.js');
const SIZE = 3 * 262144 + 4321; // 4 chunks of 256 KiB (the chunk size Portal picks for a small file)

/** Runs the built CLI; resolves with exit code, stdout, stderr and how long it took. */
function portal(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [MAIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PORTAL_LOG_LEVEL: 'warn', PORTAL_BACKEND: 'cpu', ...opts.env },
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`portal ${args.join(' ')} timed out; stderr: ${stderr}`));
    }, opts.timeoutMs ?? 90_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      setTimeout(() => resolve({ code, stdout, stderr, ms: Date.now() - t0 }), 20);
    });
  });
}

let tmp: { dir: string; cleanup: () => Promise<void> };
let www: string;
let file: { path: string; bytes: Buffer };
let sha: string;
let ca: TestCa;
let nginx: TestNginx;
const mirrors: BadMirror[] = [];
let n = 0;
/** A fresh output path in a folder of its own (fetch wants the folder to exist). */
const out = (): string => {
  const dir = path.join(tmp.dir, `out-${++n}`);
  mkdirSync(dir);
  return path.join(dir, 'file.bin');
};

beforeAll(async () => {
  tmp = await makeTempDir('cli-sources');
  www = path.join(tmp.dir, 'www');
  await mkdir(www);
  file = await writeRandomFile(www, 'file.bin', SIZE, 21);
  await writeFile(path.join(www, 'empty.bin'), '');
  sha = createHash('sha256').update(file.bytes).digest('hex');
  ca = await makeTestCa();
  nginx = await startNginx({ root: www, tls: { certFile: ca.certFile, keyFile: ca.keyFile } });
});
afterAll(async () => {
  await Promise.all(mirrors.map((s) => s.close()));
  await nginx?.stop();
  await ca?.cleanup();
  await tmp?.cleanup();
});

async function mirror(mode: (n: number) => MirrorMode): Promise<BadMirror> {
  const s = await startBadMirror(file.bytes, mode);
  mirrors.push(s);
  return s;
}
async function expectFile(p: string): Promise<void> {
  expect(
    createHash('sha256')
      .update(await readFile(p))
      .digest('hex'),
  ).toBe(sha);
  expect(existsSync(`${p}.portal-part`)).toBe(false);
}
const checksum = (): string[] => ['--checksum', `sha-256=${sha}`];

describe('portal fetch: the sources users have', () => {
  test('an https:// nginx mirror with the test CA (--ca) downloads and verifies', async () => {
    const o = out();
    const r = await portal([
      'fetch',
      `${nginx.httpsUrl}/file.bin`,
      '--ca',
      ca.caFile,
      '--out',
      o,
      ...checksum(),
    ]);
    expect(r.stderr).not.toMatch(/portal: /); // no warning, no error (only the progress bar)
    expect(r.code).toBe(0);
    await expectFile(o);
  });

  test('an https:// mirror whose CA is not trusted fails with rc 3 and a TLS cause', async () => {
    const r = await portal(['fetch', `${nginx.httpsUrl}/file.bin`, '--out', out(), ...checksum()]);
    expect(r.code).toBe(3);
    // the probe meets it first: `no source answered:` and one line per source
    expect(r.stderr).toMatch(
      /\n {2}https:\/\/127\.0\.0\.1:\d+\/file\.bin: TLS: UNABLE_TO_VERIFY_LEAF_SIGNATURE/,
    );
  });

  test('a mirror answering 302 and one answering 307 to another origin are followed', async () => {
    const target = await mirror(() => ({ kind: 'ok' }));
    const a = await mirror(() => ({ kind: 'redirect', status: 302, location: target.url }));
    const b = await mirror(() => ({ kind: 'redirect', status: 307, location: `${nginx.httpUrl}/file.bin` }));
    const o = out();
    const r = await portal(['fetch', a.url, b.url, '--out', o, ...checksum()]);
    expect(r.code).toBe(0);
    await expectFile(o);
    expect(target.requests.length).toBeGreaterThan(0);
  });

  test('a reset in the middle of one chunk body (only mirror) is retried and the file completes', async () => {
    const s = await mirror((i) => (i === 2 ? { kind: 'reset-mid-body' } : { kind: 'ok' }));
    const o = out();
    const r = await portal(['fetch', s.url, '--out', o, ...checksum()]);
    expect(r.code).toBe(0);
    await expectFile(o);
  });

  test('headers and 100 bytes then nothing (only mirror): ends in bounded time with rc 3 naming the stall', async () => {
    const s = await mirror((i) => (i === 0 ? { kind: 'ok' } : { kind: 'stall' })); // the probe answers
    // a signed URL: its signature is masked in the message, and the line stays whole
    const url = `${s.url}?sig=topsecret`;
    const r = await portal(['fetch', url, '--out', out(), '--stall-timeout', '1', '--source-budget', '3']);
    expect(r.code).toBe(3);
    expect(r.ms).toBeLessThan(40_000);
    const line = `  ${s.url}?sig=*** (mirror-0-`;
    expect(r.stderr).toContain(line);
    expect(r.stderr).toMatch(
      /\?sig=\*\*\* \(mirror-0-[^)]+\): timeout: stalled: no byte within the stall timeout after 100 bytes/,
    );
    expect(r.stderr).not.toContain('topsecret');
  });

  test("a mirror sending 1 byte every 2 s (only mirror, the trial's flags): ends with rc 3 naming too-slow; beside a good mirror the file completes", async () => {
    const trickle = await mirror((i) => (i === 0 ? { kind: 'ok' } : { kind: 'trickle' })); // the probe answers
    const args = ['--stall-timeout', '5', '--source-budget', '10'];
    const alone = await portal(['fetch', trickle.url, '--out', out(), ...checksum(), ...args]);
    expect(alone.code).toBe(3);
    // the default limit (1024 B/s over 10 s) ends each fetch; the budget then gives the source up
    expect(alone.stderr).toMatch(
      /\(mirror-0-[^)]+\): timeout: too slow: under 1024 B\/s for 10 s \(\d+ bytes in the last 1\d\.\d s\)/,
    );
    expect(alone.ms).toBeLessThan(60_000); // generous: it hung until killed before
    const good = await mirror(() => ({ kind: 'ok' }));
    const o = out();
    const r = await portal(['fetch', trickle.url, good.url, '--out', o, ...checksum(), ...args]);
    expect(r.code).toBe(0);
    await expectFile(o);
  }, 150_000);

  test('a mirror whose file changes size mid-run is given up naming both sizes, not counted as corrupt; beside a good mirror the file completes', async () => {
    // a new release with 5000 bytes more in front: every chunk's bytes change (appended bytes would leave them right)
    const grown = Buffer.concat([Buffer.alloc(5000, 1), file.bytes]);
    // the probe and the first chunk see the file the run starts with; from then on it is another, larger file
    const changing = (): Promise<BadMirror> =>
      mirror((i) => (i < 2 ? { kind: 'ok' } : { kind: 'replaced', bytes: grown }));
    const sizes = new RegExp(
      `the file changed size: the mirror now serves ${SIZE + 5000} bytes \\(Content-Range bytes \\d+-\\d+/${SIZE + 5000}\\), the transfer started with ${SIZE}`,
    );
    const alone = await changing();
    const r1 = await portal(['fetch', alone.url, '--out', out(), ...checksum(), '--json']);
    expect(r1.code).toBe(3);
    const [src] = JSON.parse(r1.stdout.trim().split('\n').pop()!).error.sources;
    expect(src).toMatchObject({ retired: true, available: false });
    expect(src.retiredReason).toMatch(sizes);
    expect(src.lastError).toMatch(sizes);
    const changed = await changing();
    const good = await mirror(() => ({ kind: 'trickle', bytes: 65536, everyMs: 100 }));
    const o = out();
    const r2 = await portal(['fetch', changed.url, good.url, '--out', o, ...checksum(), '--json']);
    expect(r2.code).toBe(0);
    await expectFile(o);
    expect(changed.requests.length).toBeGreaterThan(2); // it was asked for chunks after it changed
    const result = JSON.parse(r2.stdout.trim().split('\n').pop()!);
    expect(result.corruptChunksDetected).toBe(0);
    expect(result.sourcesGivenUp).toEqual([
      expect.objectContaining({
        url: changed.url,
        retired: true,
        retiredReason: expect.stringMatching(sizes),
      }),
    ]);
  }, 120_000);

  test('503 with Retry-After: 5 for five seconds: the mirror is held off, then the file completes', async () => {
    let since = 0;
    const s = await mirror((i) => {
      if (i === 0) return { kind: 'ok' }; // the probe
      since ||= Date.now();
      return Date.now() - since < 5000 ? { kind: 'status', status: 503, retryAfter: '5' } : { kind: 'ok' };
    });
    const o = out();
    const r = await portal(['fetch', s.url, '--out', o, ...checksum()]);
    expect(r.code).toBe(0);
    await expectFile(o);
    const busy = s.requests.filter((q) => q.at - since < 5000).length;
    expect(busy).toBeLessThan(30); // not ~1000: the Retry-After was honoured
  });

  test.each([
    ['0', '0'],
    ['an HTTP date in the past', 'Wed, 21 Oct 2015 07:28:00 GMT'],
  ])(
    '503 with Retry-After %s for three seconds: the 1 s doubling back-off is the floor, not a tight loop; the file completes',
    async (_name, retryAfter) => {
      let since = 0;
      const s = await mirror((i) => {
        if (i === 0) return { kind: 'ok' }; // the probe
        since ||= Date.now();
        return Date.now() - since < 3000 ? { kind: 'status', status: 503, retryAfter } : { kind: 'ok' };
      });
      const o = out();
      const r = await portal(['fetch', s.url, '--out', o, ...checksum()]);
      expect(r.code).toBe(0);
      await expectFile(o);
      const busy = s.requests.filter((q) => q.at - since < 3000).length;
      // held off 1 s, 2 s: a few requests (the chunks in flight when the first 503 came), not ~270 (90/s before)
      expect(busy).toBeLessThan(30);
    },
  );

  test('a mirror that ignores Range (only mirror) is read as one stream and the file completes', async () => {
    const s = await mirror(() => ({ kind: 'ignore-range' }));
    const o = out();
    const r = await portal(['fetch', s.url, '--out', o, ...checksum()]);
    expect(r.code).toBe(0);
    await expectFile(o);
  });

  test('a dynamic mirror answering 200 chunked (no Content-Length) and ignoring Range: with a size from HEAD it is streamed and verified; with none it is read as one stream (test/cli/fetch-stream.test.ts), and beside a sized mirror it is excluded saying why', async () => {
    const sized = await mirror(() => ({ kind: 'chunked', headSize: true }));
    const o = out();
    const r = await portal(['fetch', sized.url, '--out', o, ...checksum()]);
    expect(r.stdout).toMatch(/sha256 verified/);
    expect(r.code).toBe(0);
    await expectFile(o);
    const unsized = await mirror(() => ({ kind: 'chunked' }));
    const o2 = out();
    const streamed = await portal(['fetch', unsized.url, '--out', o2, ...checksum()]);
    expect(streamed.code).toBe(0);
    await expectFile(o2);
    const o3 = out();
    const both = await portal(['fetch', sized.url, unsized.url, '--out', o3, ...checksum()]);
    expect(both.code).toBe(0);
    await expectFile(o3);
    expect(both.stderr).toContain(
      `portal: excluded ${unsized.url}: answered HTTP 200 without Content-Length (Transfer-Encoding: chunked) and ignored Range, and HEAD gave no size either: the file size cannot be known before the download, so it can only be read as one stream, alone, when no source gives the size`,
    );
  });

  test('206 with Content-Range written bytes=a-b/N is accepted', async () => {
    const a = await mirror(() => ({ kind: 'cr-equals' }));
    const o = out();
    const r = await portal(['fetch', a.url, '--out', o, ...checksum()]);
    expect(r.code).toBe(0);
    await expectFile(o);
  });

  test('a mirror answering 206 without Content-Range (the bytes of offset 0 for every Range) is refused, alone; beside a good mirror the file is right', async () => {
    const bad = await mirror(() => ({ kind: 'cr-missing', fromStart: true }));
    const why = `${bad.url}: answered 206 without Content-Range for bytes=0-0: RFC 9110 §15.3.7 requires one`;
    const o = out();
    // no checksum: nothing else would have checked the bytes (the trial's run published a wrong file, exit 0)
    const alone = await portal(['fetch', bad.url, '--out', o]);
    expect(alone.code).toBe(3);
    expect(alone.stderr).toContain(why);
    expect(existsSync(o)).toBe(false);
    const good = await mirror(() => ({ kind: 'ok' }));
    const o2 = out();
    const both = await portal(['fetch', bad.url, good.url, '--out', o2]);
    expect(both.code).toBe(0);
    expect(both.stderr).toContain(`portal: excluded ${why}`);
    await expectFile(o2);
    expect(bad.requests.filter((q) => q.range !== 'bytes=0-0')).toEqual([]);
  });

  test('an upper-case scheme (HTTP://, as a URL and as an --edge) is http:// (RFC 3986 §3.1): the file completes', async () => {
    const s = await mirror(() => ({ kind: 'ok' }));
    const upper = s.url.replace(/^http:/, 'HTTP:');
    const o = out();
    const r = await portal(['fetch', upper, '--out', o, ...checksum()]);
    expect(r.stderr).not.toContain('expected an http(s) URL');
    expect(r.code).toBe(0);
    await expectFile(o);
    const o2 = out();
    const viaEdge = await portal([
      'fetch',
      `${nginx.httpUrl}/file.bin`,
      '--edge',
      `${upper}#mirror`,
      '--out',
      o2,
      ...checksum(),
    ]);
    expect(viaEdge.code).toBe(0);
    await expectFile(o2);
  });

  test('two mirrors whose Digest headers disagree 1 vs 1: both are used, and the file matching one Digest completes naming the wrong one; matching none fails naming both', async () => {
    const b64 = (hex: string): string => Buffer.from(hex, 'hex').toString('base64');
    const wrong = '07'.repeat(32);
    const withDigest = async (hex: string): Promise<BadMirror> => {
      const s = await startBadMirror(file.bytes, () => ({ kind: 'ok' }), {
        headers: { digest: `SHA-256=${b64(hex)}` },
      });
      mirrors.push(s);
      return s;
    };
    const bad = await withDigest(wrong);
    const good = await withDigest(sha);
    const o = out();
    const r = await portal(['fetch', bad.url, good.url, '--out', o]);
    expect(r.code).toBe(0);
    await expectFile(o);
    expect(r.stderr).not.toContain('excluded');
    expect(r.stderr).toContain(
      `portal: the file's sha-256 matches the Digest of ${good.url} (sha-256 ${sha}); the Digest of ${bad.url} (sha-256 ${wrong}) was wrong`,
    );
    expect(r.stdout).toContain('sha256 verified');
    const other = '08'.repeat(32);
    const bad2 = await withDigest(other);
    const o2 = out();
    const none = await portal(['fetch', bad.url, bad2.url, '--out', o2]);
    expect(none.code).toBe(3);
    expect(none.stderr).toContain(
      `matches the Digest of none of its sources: its sha-256 is ${sha}, the Digests gave ${bad.url} (sha-256 ${wrong}) and ${bad2.url} (sha-256 ${other})`,
    );
    expect(existsSync(o2)).toBe(false);
  });

  test('a source that gzips the whole file (200, Content-Encoding: gzip) is refused at the probe naming the encoding, not retried as missing chunks', async () => {
    const gz = await mirror(() => ({ kind: 'gzip', ignoreRange: true }));
    const o = out();
    const r = await portal(['fetch', gz.url, '--out', o]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      `${gz.url}: sent a gzip-encoded body (Content-Encoding: gzip) though asked for identity`,
    );
    expect(r.stderr).not.toMatch(/chunk\(s\) missing/);
    expect(gz.requests).toHaveLength(1);
    expect(existsSync(o)).toBe(false);
  });

  test('a zero-length file completes', async () => {
    const o = out();
    const r = await portal(['fetch', `${nginx.httpUrl}/empty.bin`, '--out', o, '--json']);
    expect(r.code).toBe(0);
    expect((await stat(o)).size).toBe(0);
  });

  test('a run that failed on a 404 leaves no file under the final name; a rerun with the corrected URL completes', async () => {
    const o = out();
    const bad = await portal(['fetch', `${nginx.httpUrl}/fiel.bin`, '--out', o, ...checksum()]);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/fiel\.bin: HTTP 404/);
    expect(existsSync(o)).toBe(false);
    const good = await portal(['fetch', `${nginx.httpUrl}/file.bin`, '--out', o, ...checksum()]);
    expect(good.code).toBe(0);
    await expectFile(o);
  });

  test('Ctrl-C (SIGINT) during a fetch exits 130 saying where the verified chunks are kept, and the rerun completes', async () => {
    // chunk 0 stalls (headers and 100 bytes, then nothing) so the fetch is still running when the signal comes
    const s = await mirror((k) => (k <= 1 ? { kind: 'stall' } : { kind: 'ok' }));
    const o = out();
    const child = spawn(process.execPath, [MAIN, 'fetch', s.url, '--out', o, ...checksum()], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PORTAL_LOG_LEVEL: 'warn', PORTAL_BACKEND: 'cpu' },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    for (let i = 0; i < 400 && !existsSync(`${o}.portal-part`); i++)
      await new Promise((r) => setTimeout(r, 25));
    expect(existsSync(`${o}.portal-part`)).toBe(true);
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toMatch(
      /interrupted; the verified chunks are kept in .*\.portal-part and its journal .*\.portal: run the same command again to resume, or remove both to discard them/,
    );
    const again = await portal(['fetch', s.url, '--out', o, ...checksum()]);
    expect(again.code).toBe(0);
    await expectFile(o);
  });

  test('SIGTERM during a --json fetch exits 143 with an interrupted record, releases the lock, and the rerun completes', async () => {
    const s = await mirror((k) => (k <= 1 ? { kind: 'stall' } : { kind: 'ok' }));
    const o = out();
    const child = spawn(process.execPath, [MAIN, 'fetch', s.url, '--out', o, '--json', ...checksum()], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PORTAL_LOG_LEVEL: 'warn', PORTAL_BACKEND: 'cpu' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    for (let i = 0; i < 400 && !existsSync(`${o}.portal-part`); i++)
      await new Promise((r) => setTimeout(r, 25));
    expect(existsSync(`${o}.portal/lock`)).toBe(true);
    child.kill('SIGTERM');
    expect(await exited).toBe(143);
    expect(JSON.parse(stdout.trim().split('\n').pop()!)).toEqual({
      type: 'interrupted',
      signal: 'SIGTERM',
      kept: `${o}.portal-part`,
    });
    expect(stderr).toMatch(/interrupted; the verified chunks are kept in .*\.portal-part/);
    expect(existsSync(`${o}.portal/lock`)).toBe(false);
    const again = await portal(['fetch', s.url, '--out', o, ...checksum()]);
    expect(again.code).toBe(0);
    await expectFile(o);
  });

  test('a transfer that fails mid-way keeps its partial file beside the output, and the rerun retries', async () => {
    let broken = true;
    // the probe and one chunk are served, then 404
    const s = await mirror((i) => (i > 1 && broken ? { kind: 'status', status: 404 } : { kind: 'ok' }));
    const o = out();
    const r1 = await portal(['fetch', s.url, '--out', o, ...checksum()]);
    expect(r1.code).toBe(3);
    expect(existsSync(o)).toBe(false);
    expect(existsSync(`${o}.portal-part`)).toBe(true);
    broken = false;
    const r2 = await portal(['fetch', s.url, '--out', o, ...checksum()]);
    expect(r2.code).toBe(0);
    await expectFile(o);
  });

  test('user:pass@ never reaches the journal (0600) or the logs', async () => {
    const s = await mirror(() => ({ kind: 'ok' }));
    const o = out();
    const url = s.url.replace('http://', 'http://alice:s3cret-pw@');
    const r = await portal(['fetch', url, '--out', o, ...checksum(), '--log-level', 'debug']);
    expect(r.code).toBe(0);
    expect(s.requests[1].auth).toBe(`Basic ${Buffer.from('alice:s3cret-pw').toString('base64')}`);
    expect(r.stderr + r.stdout).not.toContain('s3cret-pw');
    const dir = `${o}.portal`;
    for (const f of await readdir(dir, { recursive: true })) {
      const p = path.join(dir, String(f));
      if (!(await stat(p)).isFile()) continue;
      expect(await readFile(p, 'utf8')).not.toContain('s3cret-pw');
      expect((await stat(p)).mode & 0o777).toBe(0o600);
    }
  });

  test('a failed run exits 3 with one line per mirror naming its last cause; --json carries the same', async () => {
    const html = await mirror((i) => (i === 0 ? { kind: 'ok' } : { kind: 'html' }));
    const gz = await mirror((i) => (i === 0 ? { kind: 'ok' } : { kind: 'gzip' }));
    const r = await portal(['fetch', html.url, gz.url, '--out', out(), '--json', '--source-budget', '2']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/served an HTML page \(HTTP 200, text\/html/);
    expect(r.stderr).toMatch(/gzip-encoded body/);
    const err = JSON.parse(r.stdout.trim().split('\n').pop()!).error;
    expect(err.code).toBe('PORTAL_TRANSFER_FAILED');
    expect(err.sources).toHaveLength(2);
    expect(err.sources.map((x: { lastError: string }) => x.lastError).join('\n')).toMatch(
      /HTML page[^]*gzip/,
    );
  });

  test('mirrors without a manifest: a mirror serving another size is excluded and named, the others complete', async () => {
    const other = await startBadMirror(file.bytes.subarray(0, SIZE - 1));
    mirrors.push(other);
    const good = await mirror(() => ({ kind: 'ok' }));
    const o = out();
    const r = await portal([
      'fetch',
      `${nginx.httpUrl}/file.bin`,
      good.url,
      other.url,
      '--out',
      o,
      ...checksum(),
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(
      new RegExp(`excluded ${other.url.replace(/[.:/]/g, '\\$&')}: size ${SIZE - 1} differs`),
    );
    await expectFile(o);
  });

  test('two mirrors disagreeing on the size 1 vs 1 are refused with rc 3 naming each source and size, in either order and even with --checksum; 2 vs 1 without a checksum too', async () => {
    const short = await startBadMirror(file.bytes.subarray(0, SIZE - 1000));
    mirrors.push(short);
    const good = `${nginx.httpUrl}/file.bin`;
    const esc = (u: string): string => u.replace(/[.:/?]/g, '\\$&');
    for (const args of [
      [short.url, good],
      [good, short.url],
      [short.url, good, ...checksum()],
    ]) {
      const o = out();
      const r = await portal(['fetch', ...args, '--out', o]);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/disagree on the file size and no size has a majority/);
      expect(r.stderr).toMatch(new RegExp(`${esc(short.url)}: ${SIZE - 1000} bytes`));
      expect(r.stderr).toMatch(new RegExp(`${esc(good)}: ${SIZE} bytes`));
      expect(existsSync(o)).toBe(false);
    }
    const o = out();
    const r = await portal(['fetch', good, `${good}?copy=2`, short.url, '--out', o]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/no checksum can tell which is right[^]*give --checksum sha-256=HEX/);
    expect(existsSync(o)).toBe(false);
  });

  test('a mirror claiming an impossible size (Content-Range …/99999999999999999) is excluded naming it; alone, the run fails with rc 3', async () => {
    const liar = await mirror(() => ({ kind: 'claim-size', total: '99999999999999999' }));
    const alone = await portal(['fetch', liar.url, '--out', out()]);
    expect(alone.code).toBe(3);
    expect(alone.stderr).toMatch(/reports a file size of \d+ bytes, more than the \d+ a transfer can hold/);
    expect(alone.stderr).not.toMatch(/Invalid array length|RangeError/);
    const good = await mirror(() => ({ kind: 'ok' }));
    const o = out();
    const r = await portal(['fetch', good.url, liar.url, '--out', o, ...checksum()]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/excluded .*reports a file size of \d+ bytes/);
    await expectFile(o);
  });

  test('--checksum that does not match fails the run with rc 3 and keeps the final name free', async () => {
    const o = out();
    const r = await portal([
      'fetch',
      `${nginx.httpUrl}/file.bin`,
      '--out',
      o,
      '--checksum',
      `sha-256=${'a'.repeat(64)}`,
    ]);
    expect(r.code).toBe(3);
    // there is no manifest: the error names what was given
    expect(r.stderr).toMatch(
      /does not match the sha256 --checksum gives, a{64}; the source served other bytes/,
    );
    expect(r.stderr).not.toMatch(/manifest/);
    expect(existsSync(o)).toBe(false);
  });

  test('--checksum mismatch after two sources served: the error says one of them served wrong bytes and to retry with fewer', async () => {
    const flipped = Buffer.from(file.bytes);
    flipped[100] ^= 0xff;
    // serves the probe and one chunk of wrong bytes (same size: only the whole-file hash can tell), then 404
    const liar = await startBadMirror(flipped, (i) =>
      i > 1 ? { kind: 'status', status: 404 } : { kind: 'ok' },
    );
    mirrors.push(liar);
    const o = out();
    const r = await portal(['fetch', liar.url, `${nginx.httpUrl}/file.bin`, '--out', o, ...checksum()]);
    expect(liar.requests.length).toBeGreaterThan(1);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /does not match the sha256 --checksum gives, [0-9a-f]{64}; 2 sources served chunks and one of them served wrong bytes .*retry with fewer sources/,
    );
    expect(existsSync(o)).toBe(false);
  });

  test('a side-file of the output (.portal-part, .portal-part.partial) planted as a link or a folder is refused before any chunk is fetched, naming it', async () => {
    const s = await mirror(() => ({ kind: 'ok' }));
    const o = out();
    const victim = path.join(path.dirname(o), 'victim.txt');
    await writeFile(victim, 'do not touch\n');
    await symlink(victim, `${o}.portal-part`);
    const r = await portal(['fetch', s.url, '--out', o, ...checksum()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/side-file \S*file\.bin\.portal-part that is a symbolic link/);
    expect(r.stderr).not.toMatch(/cannot be served by any source/);
    // only the probe reached the mirror: the refusal came before the download
    expect(s.requests.length).toBeLessThanOrEqual(1);
    expect(await readFile(victim, 'utf8')).toBe('do not touch\n');
    const o2 = out();
    await mkdir(`${o2}.portal-part.partial`);
    const r2 = await portal(['fetch', s.url, '--out', o2, ...checksum()]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/side-file \S*file\.bin\.portal-part\.partial that is not a regular file/);
    // --force replaces the link (never its target) and the file completes
    const forced = await portal(['fetch', s.url, '--out', o, ...checksum(), '--force']);
    expect(forced.code).toBe(0);
    await expectFile(o);
    expect(await readFile(victim, 'utf8')).toBe('do not touch\n');
  });

  test('a hard link planted at a side-file or a journal folder others may write to is refused, naming it; --force writes a new file and the other name keeps its bytes', async () => {
    const s = await mirror(() => ({ kind: 'ok' }));
    const o = out();
    const victim = path.join(path.dirname(o), 'victim-hl.txt');
    await writeFile(victim, 'do not touch\n');
    // another name for the victim's bytes where fetch keeps its partial file
    await link(victim, `${o}.portal-part`);
    const r = await portal(['fetch', s.url, '--out', o, ...checksum()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/side-file \S*file\.bin\.portal-part that has 2 hard links/);
    expect(s.requests.length).toBeLessThanOrEqual(1);
    const forced = await portal(['fetch', s.url, '--out', o, ...checksum(), '--force']);
    expect(forced.code).toBe(0);
    await expectFile(o);
    expect(await readFile(victim, 'utf8')).toBe('do not touch\n');
    expect((await stat(o)).nlink).toBe(1);
    // a journal folder anyone may write to (no sticky bit): its files could be swapped under the fetch
    const o2 = out();
    await mkdir(`${o2}.portal`);
    await chmod(`${o2}.portal`, 0o777);
    const r2 = await portal(['fetch', s.url, '--out', o2, ...checksum()]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/journal folder \S*\.portal that is writable by every user/);
  });

  test('--out - writes the verified file to stdout (and nothing else there), keeps no file, and refuses what cannot share stdout', async () => {
    // binary stdout: collected as Buffers, in a folder of its own, with TMPDIR of its own
    const cwd = path.join(tmp.dir, 'stdout-cwd');
    const tmpDir = path.join(tmp.dir, 'stdout-tmp');
    await mkdir(cwd);
    await mkdir(tmpDir);
    const toStdout = (extra: string[]) =>
      new Promise<{ code: number | null; stdout: Buffer; stderr: string }>((resolve) => {
        const child = spawn(
          process.execPath,
          [MAIN, 'fetch', `${nginx.httpUrl}/file.bin`, '--out', '-', ...extra],
          {
            cwd,
            stdio: ['ignore', 'pipe', 'pipe'],
            env: { ...process.env, PORTAL_LOG_LEVEL: 'warn', PORTAL_BACKEND: 'cpu', TMPDIR: tmpDir },
          },
        );
        const chunks: Buffer[] = [];
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => chunks.push(d));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('close', (code) => resolve({ code, stdout: Buffer.concat(chunks), stderr }));
      });
    const r = await toStdout(checksum());
    expect(r.code).toBe(0);
    expect(r.stdout.equals(file.bytes)).toBe(true);
    expect(r.stderr).toMatch(/stdout: .* sha256 verified/);
    // no file named "-", no temporary folder left
    expect(await readdir(cwd)).toEqual([]);
    expect((await readdir(tmpDir)).filter((f) => f.startsWith('portal-stdout-'))).toEqual([]);
    // a file that fails its check: URLs have no chunk hashes, so the chunks before the last streamed unverified;
    // the last one waits for the whole-file check and is never written (test/cli/fetch-stdout.test.ts)
    const wrong = await toStdout(['--checksum', `sha-256=${'1'.repeat(64)}`]);
    expect(wrong.code).toBe(3);
    expect(wrong.stdout.equals(file.bytes.subarray(0, 3 * 262144))).toBe(true);
    expect(wrong.stderr).toContain('the output stream is incomplete and not to be trusted');
    expect((await readdir(tmpDir)).filter((f) => f.startsWith('portal-stdout-'))).toEqual([]);
    const json = await toStdout(['--json']);
    expect(json.code).toBe(2);
    expect(json.stderr).toContain('--out - writes the file to stdout: --json cannot write there too');
    // a terminal as stdout (script(1) gives the command a pseudo-terminal) is refused unless --force
    const tty = await run('script', [
      '-qec',
      `${process.execPath} ${MAIN} fetch ${nginx.httpUrl}/file.bin --out -`,
      '/dev/null',
    ]).then(
      () => ({ code: 0, out: '' }),
      (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }),
    );
    expect(tty.code).toBe(2);
    expect(tty.out).toContain(
      '--out - would write binary data to the terminal: pipe or redirect stdout, or add --force',
    );
  });

  test('--header reaches every mirror', async () => {
    const s = await mirror(() => ({ kind: 'ok' }));
    const r = await portal(['fetch', s.url, '--out', out(), '--header', 'X-Token: abc', ...checksum()]);
    expect(r.code).toBe(0);
    expect(s.requests.every((q) => q.headers['x-token'] === 'abc')).toBe(true);
  });
});

describe('portal edge over HTTPS', () => {
  test('portal edge --tls-cert/--tls-key serves chunks that portal fetch --ca takes by CID', async () => {
    const manifest = path.join(tmp.dir, 'tls.manifest.json');
    expect((await portal(['manifest', file.path, '--chunk-size', '65536', '--out', manifest])).code).toBe(0);
    const edge = spawn(
      process.execPath,
      [
        MAIN,
        'edge',
        '--file',
        file.path,
        '--manifest',
        manifest,
        '--tls-cert',
        ca.certFile,
        '--tls-key',
        ca.keyFile,
        '--json',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      const url = await new Promise<string>((resolve, reject) => {
        edge.stdout.once('data', (d: Buffer) => resolve((JSON.parse(d.toString()) as { url: string }).url));
        edge.once('exit', (code) => reject(new Error(`portal edge exited ${code}`)));
      });
      expect(url).toMatch(/^https:\/\//);
      const o = out();
      const r = await portal(['fetch', manifest, '--edge', url, '--ca', ca.caFile, '--out', o]);
      expect(r.code).toBe(0);
      await expectFile(o);
    } finally {
      edge.kill('SIGTERM');
    }
  });
});

describe('portal fetch: Metalink and proxies', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startTinyproxy();
  });
  afterAll(async () => {
    await proxy?.stop();
  });
  /** Writes a Metalink of the test file (64 KiB pieces) listing `urls` with `portal manifest --metalink`; returns its path. */
  async function metalink(name: string, urls: string[]): Promise<string> {
    const meta = path.join(tmp.dir, name);
    const m = await portal([
      'manifest',
      file.path,
      '--chunk-size',
      '65536',
      '--metalink',
      ...urls.flatMap((u) => ['--url', u]),
      '--out',
      meta,
    ]);
    expect(m.code).toBe(0);
    return meta;
  }

  test('portal manifest --metalink writes a .meta4 that aria2c downloads and verifies, and portal fetch reads', async () => {
    const meta = await metalink('file.meta4', [`${nginx.httpUrl}/file.bin`]);
    const ariaDir = path.join(tmp.dir, 'aria2');
    await run('aria2c', ['-q', '--dir', ariaDir, '--check-integrity=true', '-M', meta]);
    expect(
      createHash('sha256')
        .update(await readFile(path.join(ariaDir, 'file.bin')))
        .digest('hex'),
    ).toBe(sha);
    const o = out();
    const r = await portal(['fetch', meta, '--out', o]);
    expect(r.code).toBe(0);
    await expectFile(o);
  });

  test('a Metalink with piece hashes and no whole-file hash is checked against --checksum (a wrong one fails the run, naming it)', async () => {
    const meta = await metalink('pieces-only.meta4', [`${nginx.httpUrl}/file.bin`]);
    const xml = await readFile(meta, 'utf8');
    const piecesOnly = path.join(tmp.dir, 'pieces-only-edited.meta4');
    const stripped = xml.replace(/\n\s*<hash type="sha-256">[0-9a-f]{64}<\/hash>/, '');
    expect(stripped).not.toBe(xml);
    await writeFile(piecesOnly, stripped);
    const fetchWith = (hex: string) =>
      portal(['fetch', piecesOnly, '--out', out(), '--checksum', `sha-256=${hex}`]);
    // an all-zero sha-256 is refused: it is the manifests' "no hash" marker and would check nothing
    const zeros = await fetchWith('0'.repeat(64));
    expect(zeros.code).toBe(2);
    expect(zeros.stderr).toMatch(/an all-zero sha-256 means "no hash"/);
    const wrong = await fetchWith('1'.repeat(64));
    expect(wrong.code).toBe(3);
    expect(wrong.stderr).toMatch(/does not match the sha256 --checksum gives/);
    const o = out();
    const right = await portal(['fetch', piecesOnly, '--out', o, ...checksum()]);
    expect(right.code).toBe(0);
    expect(right.stdout + right.stderr).toMatch(/sha256 verified/);
    await expectFile(o);
  });

  test('a Metalink with only a sha-1 (or sha-512) file hash is checked against it once complete, as aria2c does: a wrong one fails with rc 3 naming both values', async () => {
    const sha1 = createHash('sha1').update(file.bytes).digest('hex');
    const sha512 = createHash('sha512').update(file.bytes).digest('hex');
    const doc = (hash: string): string =>
      `<?xml version="1.0" encoding="UTF-8"?>\n<metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="file.bin"><size>${SIZE}</size>${hash}<url priority="1">${nginx.httpUrl}/file.bin</url></file></metalink>\n`;
    const fetchMeta = async (name: string, hash: string) => {
      const meta = path.join(tmp.dir, name);
      await writeFile(meta, doc(hash));
      const o = out();
      return { o, r: await portal(['fetch', meta, '--out', o]) };
    };
    const right = await fetchMeta('sha1.meta4', `<hash type="sha-1">${sha1}</hash>`);
    expect(right.r.code).toBe(0);
    expect(right.r.stdout).toMatch(/sha-1 verified/);
    expect(right.r.stderr).not.toMatch(/no checksum/);
    await expectFile(right.o);
    // the strongest given wins: sha-512 over sha-1
    const both = await fetchMeta(
      'both.meta4',
      `<hash type="sha-1">${'0'.repeat(40)}</hash><hash type="sha-512">${sha512}</hash>`,
    );
    expect(both.r.code).toBe(0);
    expect(both.r.stdout).toMatch(/sha-512 verified/);
    const wrong = await fetchMeta('wrong-sha1.meta4', `<hash type="sha-1">${'1'.repeat(40)}</hash>`);
    expect(wrong.r.code).toBe(3);
    expect(wrong.r.stderr).toMatch(
      new RegExp(`does not match the Metalink's sha-1 ${'1'.repeat(40)} \\(its sha-1 is ${sha1}\\)`),
    );
  });

  test('a Metalink whose <size> differs from what its mirrors serve fails at once naming both sizes; a mirror serving another size is excluded', async () => {
    const good = await mirror(() => ({ kind: 'ok' }));
    const meta = await metalink('sized.meta4', [`${nginx.httpUrl}/file.bin`, good.url]);
    const xml = await readFile(meta, 'utf8');
    expect(xml).toContain(`<size>${SIZE}</size>`);
    // cut by 824 bytes: the piece count (13 of 64 KiB) still covers it, so only the mirrors can tell
    const cut = path.join(tmp.dir, 'cut.meta4');
    await writeFile(cut, xml.replace(`<size>${SIZE}</size>`, `<size>${SIZE - 824}</size>`));
    const r = await portal(['fetch', cut, '--out', out()], { timeoutMs: 30_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      new RegExp(
        `<size> of file\\.bin \\(${SIZE - 824} bytes\\) differs from the ${SIZE} bytes its 2 mirrors serve`,
      ),
    );
    expect(r.stderr).not.toMatch(/corrupt|does not match cid/);
    // the right <size>, one more mirror serving a shorter file: that one is excluded and named, the others complete
    const short = await startBadMirror(file.bytes.subarray(0, SIZE - 1));
    mirrors.push(short);
    const three = path.join(tmp.dir, 'three.meta4');
    await writeFile(three, xml.replace('</file>', `<url priority="3">${short.url}</url></file>`));
    const o = out();
    const ok = await portal(['fetch', three, '--out', o]);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toMatch(
      new RegExp(
        `excluded ${short.url.replace(/[.:/]/g, '\\$&')}: size ${SIZE - 1} differs from the Metalink's <size> ${SIZE}`,
      ),
    );
    await expectFile(o);
  });

  test('a Metalink giving the size lets a chunked mirror that ignores Range and tells no size be read as one stream, verified', async () => {
    const unsized = await mirror(() => ({ kind: 'chunked' }));
    const meta = await metalink('chunked.meta4', [unsized.url]);
    const o = out();
    const r = await portal(['fetch', meta, '--out', o]);
    expect(r.stdout).toMatch(/sha256 verified/);
    expect(r.code).toBe(0);
    await expectFile(o);
  });

  test('a proxy that refuses the connection is named as the cause (rc 3, no password); a Metalink mirror NO_PROXY sends straight completes the file', async () => {
    const env = { HTTP_PROXY: 'http://alice:s3cret@127.0.0.1:9', NO_PROXY: '' };
    const alone = await portal(['fetch', `${nginx.httpUrl}/file.bin`, '--out', out(), ...checksum()], {
      env,
    });
    expect(alone.code).toBe(3);
    expect(alone.stderr).toContain(
      `${nginx.httpUrl}/file.bin: proxy http://127.0.0.1:9 refused the connection`,
    );
    expect(alone.stderr).not.toMatch(/s3cret|alice/);
    // chunk fetches: the proxied mirror fails over to the one NO_PROXY lets through
    const direct = await mirror(() => ({ kind: 'ok' }));
    const meta = await metalink('proxied.meta4', [`${nginx.httpUrl}/file.bin`, direct.url]);
    const o = out();
    const r = await portal(['fetch', meta, '--out', o, '--json'], {
      env: { ...env, NO_PROXY: new URL(direct.url).host },
    });
    expect(r.code).toBe(0);
    await expectFile(o);
    expect(r.stdout + r.stderr).not.toMatch(/s3cret|alice/);
    for (const f of await readdir(path.dirname(o), { recursive: true }))
      if ((await stat(path.join(path.dirname(o), f))).isFile())
        expect(await readFile(path.join(path.dirname(o), f), 'utf8')).not.toMatch(/s3cret/);
  });

  test('a socks5: proxy is refused at start naming the variable and the scheme (exit 2, no password, no ExperimentalWarning)', async () => {
    for (const name of ['HTTP_PROXY', 'HTTPS_PROXY']) {
      const r = await portal(['fetch', `${nginx.httpUrl}/file.bin`, '--out', out(), ...checksum()], {
        env: { [name]: 'socks5://bob:pw5ecret@127.0.0.1:9', NO_PROXY: '' },
      });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(
        `${name}: a socks5: proxy is not supported; Portal uses HTTP and HTTPS proxies`,
      );
      expect(r.stderr).not.toMatch(/pw5ecret|bob|ExperimentalWarning|proxy null/);
    }
  });

  test('HTTP_PROXY sends the transfer through tinyproxy', async () => {
    await copyFile(file.path, path.join(www, 'proxied.bin'));
    const o = out();
    const r = await portal(['fetch', `${nginx.httpUrl}/proxied.bin`, '--out', o, ...checksum()], {
      env: { HTTP_PROXY: proxy.url, NO_PROXY: '' },
    });
    expect(r.code).toBe(0);
    expect(
      createHash('sha256')
        .update(await readFile(o))
        .digest('hex'),
    ).toBe(sha);
    // an http: origin is asked in absolute form, as curl and wget ask it, not through a CONNECT tunnel
    expect(await proxy.log()).toMatch(/: GET http:\/\/[^ ]+\/proxied\.bin HTTP\/1\.1/);
  });
});
