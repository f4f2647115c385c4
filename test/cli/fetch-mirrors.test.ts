/**
 * `portal fetch` and the mirrors it finds on the way (RFC 6249 `Link: rel=duplicate`), credentials given with
 * `--header`, reruns with other URLs, and the errors users see: each against the built CLI as a real process
 * and real loopback mirrors (test/helpers/bad-mirror.ts).
 */
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startBadMirror, type BadMirror, type MirrorMode } from '../helpers/bad-mirror.js';
import { PORTAL_MAIN, runPortal } from '../helpers/portal-cli.js';
import { makeTempDir, writeRandomFile } from '../transfer/fixtures.js';

const SIZE = 3 * 262144 + 4321;
let tmp: { dir: string; cleanup: () => Promise<void> };
let bytes: Buffer;
let sha: string;
const mirrors: BadMirror[] = [];
let n = 0;
const out = (): string => {
  const dir = path.join(tmp.dir, `out-${++n}`);
  mkdirSync(dir);
  return path.join(dir, 'file.bin');
};
const checksum = (): string[] => ['--checksum', `sha-256=${sha}`];
const env = { PORTAL_BACKEND: 'cpu' };

async function mirror(
  mode: (n: number) => MirrorMode = () => ({ kind: 'ok' }),
  headers?: Record<string, string | string[]>,
): Promise<BadMirror> {
  const s = await startBadMirror(bytes, mode, { headers });
  mirrors.push(s);
  return s;
}

beforeAll(async () => {
  tmp = await makeTempDir('cli-fetch-mirrors');
  bytes = (await writeRandomFile(tmp.dir, 'src.bin', SIZE, 7)).bytes;
  sha = createHash('sha256').update(bytes).digest('hex');
});
afterAll(async () => {
  await Promise.all(mirrors.map((s) => s.close()));
  await tmp?.cleanup();
});

describe('portal fetch: credentials stay with the origins the user named', () => {
  test('--header Authorization/Cookie/Proxy-Authorization and URL userinfo never reach a Link: rel=duplicate mirror; other headers do', async () => {
    const found = await mirror();
    const named = await mirror(() => ({ kind: 'ok' }), { link: `<${found.url}>; rel=duplicate; pri=1` });
    const userinfo = named.url.replace('http://', 'http://u:p@');
    const o = out();
    const r = await runPortal(
      [
        'fetch',
        userinfo,
        '--out',
        o,
        '--header',
        'Authorization: Bearer HDRSECRET',
        '--header',
        'Cookie: s=COOKIESECRET',
        '--header',
        'Proxy-Authorization: Basic PXSECRET',
        '--header',
        'X-Trace: t1',
        ...checksum(),
      ],
      { env },
    );
    expect(r.code).toBe(0);
    expect(
      createHash('sha256')
        .update(await readFile(o))
        .digest('hex'),
    ).toBe(sha);
    // the discovered mirror was used, with the harmless header and none of the secrets
    expect(found.requests.length).toBeGreaterThan(0);
    for (const q of found.requests) {
      expect(q.headers['x-trace']).toBe('t1');
      expect(q.headers.authorization).toBeUndefined();
      expect(q.headers.cookie).toBeUndefined();
      expect(q.headers['proxy-authorization']).toBeUndefined();
    }
    // the named origin got them on every request
    for (const q of named.requests) {
      expect(q.headers.authorization).toBe('Bearer HDRSECRET');
      expect(q.headers.cookie).toBe('s=COOKIESECRET');
    }
  });

  test('a malformed --header is named by its first word only, never its value (exit 2)', async () => {
    for (const bad of ['Authorization Bearer HDRSECRET', 'Bad Name: HDRSECRET', 'Cookie=HDRSECRET']) {
      const r = await runPortal(['fetch', 'http://127.0.0.1:9/f.bin', '--out', out(), '--header', bad], {
        env,
      });
      expect(r.code).toBe(2);
      expect(r.stderr).not.toContain('HDRSECRET');
      expect(r.stderr).toMatch(new RegExp(`--header "${bad.split(/[ =]/)[0]} …"`));
    }
  });

  test('a --header value with CR/LF/NUL, or a header that frames the request, is refused at parse time (exit 2)', async () => {
    const cases: [string, RegExp][] = [
      ['X-A: a\r\nX-Injected: HDRSECRET', /--header "X-A": its value holds a CR, LF or NUL character/],
      ['Transfer-Encoding: chunked', /--header "Transfer-Encoding": Portal sets this header itself/],
      ['Content-Length: 5', /--header "Content-Length": Portal sets this header itself/],
      ['Host: example.org', /--header "Host": Portal sets this header itself/],
      ['connection: close', /--header "connection": Portal sets this header itself/],
      ['Range: bytes=0-1', /--header "Range": Portal sets this header itself/],
    ];
    for (const [bad, why] of cases) {
      const r = await runPortal(['fetch', 'http://127.0.0.1:9/f.bin', '--out', out(), '--header', bad], {
        env,
      });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(why);
      expect(r.stderr).toContain('PORTAL_CONFIG_INVALID');
      expect(r.stderr).not.toContain('HDRSECRET');
    }
  });
});

describe('portal fetch: Link: rel=duplicate mirrors (RFC 6249)', () => {
  test('every Link line and every comma-joined value is used; a file: or ftp: link is left out', async () => {
    const b = await mirror();
    const c = await mirror();
    const d = await mirror();
    const a = await mirror(() => ({ kind: 'ok' }), {
      link: [
        `<${b.url}>; rel=duplicate; pri=2`,
        `<${c.url}>; rel=duplicate; pri=1, <${d.url}>; rel=duplicate; pri=3`,
        '<file:///etc/hostname>; rel=duplicate; pri=4, <ftp://127.0.0.1/f.bin>; rel=duplicate',
      ],
    });
    const o = out();
    const r = await runPortal(['fetch', a.url, '--out', o, ...checksum()], { env });
    expect(r.stderr).not.toMatch(/Invalid URL|file:|ftp:/);
    expect(r.code).toBe(0);
    expect(
      createHash('sha256')
        .update(await readFile(o))
        .digest('hex'),
    ).toBe(sha);
    // each mirror was probed at least (Range: bytes=0-0), the second and third line's too
    for (const m of [b, c, d]) expect(m.requests.some((q) => q.range === 'bytes=0-0')).toBe(true);
  });
});

describe('portal fetch: what users read', () => {
  test('a fetch without a checksum warns once at the default log level, not again as a JSON log record', async () => {
    const s = await mirror();
    const r = await runPortal(['fetch', s.url, '--out', out()], { env });
    expect(r.code).toBe(0);
    expect(r.stderr.match(/no checksum/g)).toHaveLength(1);
    expect(r.stderr).toMatch(/portal: warning: no checksum/);
  });
});

describe('portal fetch: Ctrl-C', () => {
  test('SIGINT before the first chunk was written names no file that does not exist', async () => {
    // the probe answers; every chunk request stalls, so no chunk is written before the signal
    const s = await mirror((k) => (k === 0 ? { kind: 'ok' } : { kind: 'stall' }));
    const o = out();
    const child = spawn(process.execPath, [PORTAL_MAIN, 'fetch', s.url, '--out', o, ...checksum()], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, PORTAL_LOG_LEVEL: 'warn', ...env },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    // a chunk request under way: the handler is installed (it comes before the transfer starts)
    for (let i = 0; i < 400 && s.requests.length < 2; i++) await new Promise((r) => setTimeout(r, 25));
    expect(s.requests.length).toBeGreaterThanOrEqual(2);
    expect(existsSync(`${o}.portal-part`)).toBe(false);
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(existsSync(`${o}.portal-part`)).toBe(false);
    expect(stderr).not.toMatch(/portal-part/);
    expect(stderr).toMatch(/interrupted before any chunk was written; nothing is kept/);
    // and nothing is: the journal folder this run made is gone, so the rerun starts afresh (it resumed before)
    expect(existsSync(`${o}.portal`)).toBe(false);
  });
});

describe('portal fetch: URLs it cannot fetch', () => {
  test('a bad port, ftp:// or file:// is a usage error (exit 2) naming the URL and why, with its userinfo hidden', async () => {
    const cases: [string, RegExp][] = [
      [
        'http://u:SECRETPW@127.0.0.1:99999/f.bin',
        /"http:\/\/\*\*\*@127\.0\.0\.1:99999\/f\.bin" is not a valid URL/,
      ],
      ['ftp://127.0.0.1/f.bin', /"ftp:\/\/127\.0\.0\.1\/f\.bin": the ftp: scheme is not supported/],
      ['file:///etc/hostname', /"file:\/\/\/etc\/hostname": the file: scheme is not supported/],
    ];
    for (const [url, why] of cases) {
      const r = await runPortal(['fetch', url, '--out', out()], { env });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(why);
      expect(r.stderr).not.toMatch(/ENOENT|SECRETPW/);
    }
  });
});

describe('portal fetch --json errors', () => {
  test('"no source answered" carries the sources array, one per URL with its cause (userinfo hidden)', async () => {
    const down = await mirror(() => ({ kind: 'status', status: 404 }));
    const url = down.url.replace('http://', 'http://u:SECRETPW@');
    const r = await runPortal(['fetch', url, '--out', out(), '--json'], { env });
    expect(r.code).toBe(3);
    const e = (JSON.parse(r.stdout.trim().split('\n').pop()!) as { error: Record<string, unknown> }).error;
    expect(e.code).toBe('PORTAL_TRANSFER_FAILED');
    expect(e.sources).toEqual([
      {
        url: expect.not.stringContaining('SECRETPW'),
        kind: 'mirror',
        lastError: 'HTTP 404',
        retired: true,
        chunks: 0,
      },
    ]);
  });
});
