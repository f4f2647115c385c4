import { jest } from '@jest/globals';
import { copyFile, readFile } from 'node:fs/promises';
import tls from 'node:tls';
import { join } from 'node:path';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  createHttpClient,
  createEdgeServer,
  createManifest,
  chunkRange,
  fetchChunk,
  parseRetryAfter,
  parseContentRange,
  redactUrl,
  ChunkFetchError,
  isSizeChanged,
  probeSource,
  NO_CID,
  type HttpClient,
  type Manifest,
  type FetchChunkRequest,
} from '../../transfer/index.js';
import { startBadMirror, type BadMirror, type MirrorMode } from '../helpers/bad-mirror.js';
import { startNginx, type TestNginx } from '../../harness/nginx.js';
import { makeTestCa, type TestCa } from '../../harness/tls-ca.js';
import { startTinyproxy, type TestProxy } from '../../harness/tinyproxy.js';
import { makeTempDir, writeRandomFile, rejectionOf } from './fixtures.js';

const CHUNK = 64 * 1024;
const SIZE = 5 * CHUNK + 999; // 6 chunks

let tmp: { dir: string; cleanup: () => Promise<void> };
let file: { path: string; bytes: Buffer };
let m: Manifest;
let ca: TestCa;
let nginx: TestNginx;
const mirrors: BadMirror[] = [];
const clients: HttpClient[] = [];

beforeAll(async () => {
  tmp = await makeTempDir('sources');
  file = await writeRandomFile(tmp.dir, 'file.bin', SIZE, 5);
  m = await createManifest(file.path, { chunkSize: CHUNK });
  ca = await makeTestCa();
  nginx = await startNginx({
    root: tmp.dir,
    tls: { certFile: ca.certFile, keyFile: ca.keyFile },
    extra: 'location = /moved.bin { return 302 /file.bin; }',
  });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(mirrors.map((s) => s.close()));
  await nginx?.stop();
  await ca?.cleanup();
  await tmp?.cleanup();
});

function client(opts: Parameters<typeof createHttpClient>[0] = {}): HttpClient {
  const c = createHttpClient({ proxy: false, ...opts });
  clients.push(c);
  return c;
}
async function mirror(mode: (n: number) => MirrorMode, o?: { etag?: string }): Promise<BadMirror> {
  const s = await startBadMirror(file.bytes, mode, o);
  mirrors.push(s);
  return s;
}
const req = (
  url: string,
  i: number,
  c: HttpClient,
  extra: Partial<FetchChunkRequest> = {},
): FetchChunkRequest => ({
  edgeUrl: url,
  edgeKind: 'mirror',
  cid: m.chunks[i],
  ...chunkRange(m, i),
  fileSize: SIZE,
  timeoutMs: 10_000,
  client: c,
  ...extra,
});
const slice = (i: number): Buffer => {
  const r = chunkRange(m, i);
  return file.bytes.subarray(r.offset, r.offset + r.length);
};

describe('sources: HTTPS', () => {
  test('an https:// nginx mirror serves chunks when the client trusts the test CA (--ca)', async () => {
    const c = client({ caFile: ca.caFile });
    const r = await fetchChunk(req(`${nginx.httpsUrl}/file.bin`, 2, c));
    expect(r.bytes.equals(slice(2))).toBe(true);
  });

  test('a client makes one TLS context for all its HTTPS connections, and none for http: ones', async () => {
    const made = jest.spyOn(tls, 'createSecureContext');
    try {
      // six chunks at once over up to 4 connections per origin, then again after they all closed
      const c = client({ caFile: ca.caFile, connectionsPerOrigin: 4 });
      const all = async (): Promise<void> => {
        const got = await Promise.all(
          m.chunks.map((_, i) => fetchChunk(req(`${nginx.httpsUrl}/file.bin`, i, c))),
        );
        got.forEach((r, i) => expect(r.bytes.equals(slice(i))).toBe(true));
      };
      await all();
      expect(made).toHaveBeenCalledTimes(1); // was one per connection (a `ca` list in every tls.connect)
      await all();
      expect(made).toHaveBeenCalledTimes(1);
      made.mockClear();
      const plain = client({ caFile: ca.caFile });
      expect((await fetchChunk(req(`${nginx.httpUrl}/file.bin`, 3, plain))).bytes.equals(slice(3))).toBe(
        true,
      );
      expect(made).not.toHaveBeenCalled();
    } finally {
      made.mockRestore();
    }
  });

  test('an https:// mirror with an unknown CA fails with a TLS cause, not "cannot be served"', async () => {
    const err = (await rejectionOf(() =>
      fetchChunk(req(`${nginx.httpsUrl}/file.bin`, 0, client())),
    )) as ChunkFetchError;
    expect(err).toBeInstanceOf(ChunkFetchError);
    expect(err.fault).toBe('tls');
    expect(err.detail).toMatch(/TLS: .*(CERT|SIGNED|VERIFY)/i);
  });

  test('--insecure skips certificate verification only when asked', async () => {
    const r = await fetchChunk(req(`${nginx.httpsUrl}/file.bin`, 1, client({ insecure: true })));
    expect(r.bytes.equals(slice(1))).toBe(true);
  });

  test('a Portal edge serves HTTPS with a certificate (portal edge --tls-cert/--tls-key) and chunks arrive by CID', async () => {
    const edge = await createEdgeServer({
      source: { path: file.path, manifest: m },
      tls: { cert: await readFile(ca.certFile), key: await readFile(ca.keyFile) },
    });
    try {
      expect(edge.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const r = await fetchChunk({ ...req(edge.url, 4, client({ caFile: ca.caFile })), edgeKind: 'portal' });
      expect(r.bytes.equals(slice(4))).toBe(true);
    } finally {
      await edge.close();
    }
  });

  test('a --ca file that holds no certificate is a config error naming the file', () => {
    expect(() => createHttpClient({ caFile: file.path })).toThrow(/--ca .*file\.bin: no PEM certificate/);
  });
});

describe('sources: redirects', () => {
  test.each([301, 302, 303, 307, 308])(
    'a mirror answering %i to another origin is followed',
    async (status) => {
      const target = await mirror(() => ({ kind: 'ok' }));
      const front = await mirror(() => ({ kind: 'redirect', status, location: target.url }));
      const c = client();
      const r = await fetchChunk(req(front.url, 3, c));
      expect(r.bytes.equals(slice(3))).toBe(true);
      expect(target.requests[0].range).toBe(`bytes=${3 * CHUNK}-${4 * CHUNK - 1}`);
    },
  );

  test('the resolved URL is remembered per mirror and resolved again when it stops answering', async () => {
    let cdnAlive = true;
    const cdn = await mirror(() => (cdnAlive ? { kind: 'ok' } : { kind: 'status', status: 403 }));
    const cdn2 = await mirror(() => ({ kind: 'ok' }));
    let target = cdn.url;
    const front = await mirror(() => ({ kind: 'redirect', location: target }));
    const c = client();
    await fetchChunk(req(front.url, 0, c));
    await fetchChunk(req(front.url, 1, c));
    expect(front.requests).toHaveLength(1); // the second chunk went straight to the CDN
    expect(c.resolvedUrl(front.url)).toBe(cdn.url);
    cdnAlive = false; // the signed URL expired
    target = cdn2.url;
    const r = await fetchChunk(req(front.url, 2, c));
    expect(r.bytes.equals(slice(2))).toBe(true);
    expect(front.requests).toHaveLength(2);
    expect(c.resolvedUrl(front.url)).toBe(cdn2.url);
  });

  test('nginx answering 302 on its own origin is followed', async () => {
    const r = await fetchChunk(req(`${nginx.httpUrl}/moved.bin`, 4, client()));
    expect(r.bytes.equals(slice(4))).toBe(true);
  });

  test('a redirect loop ends with a cause that names it', async () => {
    const a = await mirror(() => ({ kind: 'redirect', location: '/file.bin?again' }));
    const err = (await rejectionOf(() =>
      fetchChunk(req(a.url, 0, client({ maxRedirects: 3 }))),
    )) as ChunkFetchError;
    expect(err.fault).toBe('redirect');
    expect(err.detail).toMatch(/more than 3 redirects|redirect loop/);
  });

  test('credentials are not sent to another origin after a redirect', async () => {
    const target = await mirror(() => ({ kind: 'ok' }));
    const front = await mirror(() => ({ kind: 'redirect', location: target.url }));
    const withCreds = front.url.replace('http://', 'http://user:secret@');
    await fetchChunk(req(withCreds, 0, client()));
    expect(front.requests[0].auth).toBe(`Basic ${Buffer.from('user:secret').toString('base64')}`);
    expect(target.requests[0].auth).toBeUndefined();
  });
  test('credential headers of the caller (--header Authorization, Cookie, Proxy-Authorization) stay with the first origin; others follow the redirect', async () => {
    const target = await mirror(() => ({ kind: 'ok' }));
    const front = await mirror(() => ({ kind: 'redirect', location: target.url }));
    const headers = {
      Authorization: 'Bearer HDRTOKEN',
      cookie: 'session=COOKIESECRET',
      'Proxy-Authorization': 'Basic cHJveHk6cHc=',
      'X-Trace': 'keep-me',
    };
    await fetchChunk(req(front.url, 0, client({ headers })));
    expect(front.requests[0].headers).toMatchObject({
      authorization: 'Bearer HDRTOKEN',
      cookie: 'session=COOKIESECRET',
      'proxy-authorization': 'Basic cHJveHk6cHc=',
      'x-trace': 'keep-me',
    });
    const sent = target.requests[0].headers;
    expect(sent.authorization).toBeUndefined();
    expect(sent.cookie).toBeUndefined();
    expect(sent['proxy-authorization']).toBeUndefined();
    expect(sent['x-trace']).toBe('keep-me');
  });

  test("a mirror's remembered redirect target gets no credential headers either (later chunks go to it directly)", async () => {
    const target = await mirror(() => ({ kind: 'ok' }));
    const front = await mirror(() => ({ kind: 'redirect', location: target.url }));
    const c = client({ headers: { Authorization: 'Bearer HDRTOKEN' } });
    await fetchChunk(req(front.url, 0, c));
    await fetchChunk(req(front.url, 1, c));
    expect(front.requests).toHaveLength(1); // the second chunk went to the remembered target
    expect(target.requests).toHaveLength(2);
    expect(target.requests.map((r) => r.auth)).toEqual([undefined, undefined]);
  });

  test('a redirect on the same origin keeps the credential headers', async () => {
    const s = await mirror((n) =>
      n === 0 ? { kind: 'redirect', location: '/file.bin?moved' } : { kind: 'ok' },
    );
    await fetchChunk(req(s.url, 1, client({ headers: { Authorization: 'Bearer SAME' } })));
    expect(s.requests.map((r) => r.auth)).toEqual(['Bearer SAME', 'Bearer SAME']);
  });
});

describe('sources: retries that match the failure', () => {
  test('a reset in the middle of one body is retried on a new connection and the chunk arrives', async () => {
    const s = await mirror((n) => (n === 0 ? { kind: 'reset-mid-body' } : { kind: 'ok' }));
    const r = await fetchChunk(req(s.url, 2, client()));
    expect(r.bytes.equals(slice(2))).toBe(true);
    expect(s.requests).toHaveLength(2);
    expect(s.requests[1].socket).not.toBe(s.requests[0].socket);
  });

  test('a mirror that sends headers and 100 bytes then nothing fails as stalled after the stall timeout', async () => {
    const s = await mirror(() => ({ kind: 'stall' }));
    const t0 = Date.now();
    const err = (await rejectionOf(() =>
      fetchChunk(req(s.url, 0, client({ stallTimeoutMs: 300 }))),
    )) as ChunkFetchError;
    expect(err.fault).toBe('stalled');
    expect(err.reason).toBe('timeout');
    expect(err.detail).toMatch(/stalled: no byte within the stall timeout after 100 bytes/);
    expect(s.requests.length).toBe(3); // the first try and two retries
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  test('a mirror that trickles (10 B/s: never stalls) fails as too-slow under the lowest-speed limit, not retried', async () => {
    const s = await mirror(() => ({ kind: 'trickle', bytes: 1, everyMs: 100 }));
    const t0 = Date.now();
    const err = (await rejectionOf(() =>
      fetchChunk(
        req(s.url, 0, client({ lowestSpeedBytesPerSec: 1024, speedTimeMs: 1000 }), { timeoutMs: 30_000 }),
      ),
    )) as ChunkFetchError;
    expect(err.fault).toBe('too-slow');
    expect(err.reason).toBe('timeout');
    expect(err.detail).toMatch(/^too slow: under 1024 B\/s for 1 s \(\d+ bytes in the last 1\.\d s\)$/);
    expect(s.requests).toHaveLength(1); // the same source is not asked again at once: the scheduler fails over
    expect(Date.now() - t0).toBeLessThan(15_000); // generous: the window is 1 s, the deadline 30 s
  });

  test('a steady slow mirror above the lowest-speed floor (~20 KB/s against 4 KiB/s) delivers the chunk', async () => {
    const s = await mirror(() => ({ kind: 'trickle', bytes: 2048, everyMs: 100 }));
    const c = client({ lowestSpeedBytesPerSec: 4096, speedTimeMs: 1000 });
    const r = await fetchChunk(req(s.url, 1, c, { timeoutMs: 60_000 }));
    expect(r.bytes.equals(slice(1))).toBe(true);
    expect(r.transferMs).toBeGreaterThan(1000); // it ran past a whole window
  });

  test('the lowest-speed limit is on by default (1024 B/s over 10 s) and 0 turns it off', () => {
    expect(client()).toMatchObject({ lowestSpeedBytesPerSec: 1024, speedTimeMs: 10_000 });
    expect(client({ lowestSpeedBytesPerSec: 0 }).lowestSpeedBytesPerSec).toBe(0);
    expect(() => client({ lowestSpeedBytesPerSec: -1 })).toThrow(/lowestSpeedBytesPerSec/);
  });

  test('503 with Retry-After reports busy with the delay in ms', async () => {
    const s = await mirror(() => ({ kind: 'status', status: 503, retryAfter: '5' }));
    const err = (await rejectionOf(() => fetchChunk(req(s.url, 0, client())))) as ChunkFetchError;
    expect(err).toMatchObject({ reason: 'busy', status: 503, retryAfterMs: 5000 });
    expect(s.requests).toHaveLength(1); // busy is not retried here: the edge actor holds the mirror off
  });

  test('Retry-After is read as seconds or as an HTTP date', () => {
    const now = Date.parse('Mon, 30 Nov 2026 10:00:00 GMT');
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter('Mon, 30 Nov 2026 10:00:07 GMT', now)).toBe(7_000);
    expect(parseRetryAfter('Mon, 30 Nov 2026 09:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
  });
});

describe('sources: Range and Content-Range', () => {
  test('a 206 whose Content-Range is written bytes=a-b/N is accepted (the hash decides)', async () => {
    const s = await mirror(() => ({ kind: 'cr-equals' }));
    expect((await fetchChunk(req(s.url, 1, client()))).bytes.equals(slice(1))).toBe(true);
  });

  test('a 206 without Content-Range is accepted when the length matches', async () => {
    const s = await mirror(() => ({ kind: 'cr-missing' }));
    expect((await fetchChunk(req(s.url, 5, client()))).bytes.equals(slice(5))).toBe(true);
  });

  test('a 206 without Content-Range past offset 0 is refused when no chunk hash checks the bytes', async () => {
    const s = await mirror(() => ({ kind: 'cr-missing', fromStart: true }));
    const { offset, length } = chunkRange(m, 5);
    const err = await rejectionOf(() => fetchChunk(req(s.url, 5, client(), { cid: NO_CID })));
    expect(err).toBeInstanceOf(ChunkFetchError);
    expect((err as ChunkFetchError).fault).toBe('content-range');
    expect((err as ChunkFetchError).detail).toBe(
      `answered 206 without Content-Range for bytes=${offset}-${offset + length - 1} (RFC 9110 §15.3.7 requires one; nothing else can tell where its bytes belong)`,
    );
    // at offset 0 the bytes are the file's first ones whatever the mirror does
    expect((await fetchChunk(req(s.url, 0, client(), { cid: NO_CID }))).bytes.equals(slice(0))).toBe(true);
  });

  test('the probe fails a source that answers bytes=0-0 with 206 and no Content-Range', async () => {
    const s = await mirror(() => ({ kind: 'cr-missing' }));
    const p = await probeSource(client(), s.url);
    expect(p.ok).toBe(false);
    expect(p.error).toMatch(
      /^answered 206 without Content-Range for bytes=0-0: RFC 9110 §15\.3\.7 requires one/,
    );
  });

  test('lenient Content-Range parsing', () => {
    expect(parseContentRange('bytes 0-9/100')).toEqual({ start: 0, end: 9, total: 100 });
    expect(parseContentRange('bytes=0-262143/300000')).toEqual({ start: 0, end: 262143, total: 300000 });
    expect(parseContentRange('BYTES 5-9/*')).toEqual({ start: 5, end: 9, total: undefined });
    expect(parseContentRange('items 0-9/100')).toBeUndefined();
  });

  test('a mirror that ignores Range is read as one stream; every chunk arrives verified', async () => {
    const s = await mirror(() => ({ kind: 'ignore-range' }));
    const c = client();
    expect((await fetchChunk(req(s.url, 0, c))).bytes.equals(slice(0))).toBe(true);
    const rest = await Promise.all(m.chunks.slice(1).map((_, i) => fetchChunk(req(s.url, i + 1, c))));
    rest.forEach((r, i) => expect(r.bytes.equals(slice(i + 1))).toBe(true));
    expect(s.requests).toHaveLength(1); // one stream, every chunk cut from it as it passed
  });

  test('an HTML page with 200 is reported as an HTML page, not as "ignored the Range header"', async () => {
    const s = await mirror(() => ({ kind: 'html' }));
    const err = (await rejectionOf(() => fetchChunk(req(s.url, 1, client())))) as ChunkFetchError;
    expect(err.fault).toBe('html');
    expect(err.detail).toMatch(/served an HTML page \(HTTP 200, text\/html/);
  });

  test('a gzip body though identity was asked is reported as such', async () => {
    const s = await mirror(() => ({ kind: 'gzip' }));
    const err = (await rejectionOf(() => fetchChunk(req(s.url, 1, client())))) as ChunkFetchError;
    expect(err.fault).toBe('content-encoding');
    expect(err.detail).toMatch(/gzip-encoded body/);
  });

  test('the probe fails a source that gzips its answer (whole file with 200, or the range with 206): its length is not the size', async () => {
    for (const ignoreRange of [true, false]) {
      const s = await mirror(() => ({ kind: 'gzip', ignoreRange }));
      const p = await probeSource(client(), s.url);
      expect(p.ok).toBe(false);
      expect(p.size).toBeUndefined();
      expect(p.error).toBe(
        "sent a gzip-encoded body (Content-Encoding: gzip) though asked for identity (Accept-Encoding: identity): its length is not the file's size and its bytes are not the file's; serve the file unencoded",
      );
      expect(s.requests[0].headers['accept-encoding']).toBe('identity');
    }
  });

  test('a mirror whose file changed size fails naming both sizes (206, 416 past the new end, 200 ignoring Range), not as corrupt', async () => {
    const grown = Buffer.concat([file.bytes, Buffer.alloc(1000, 7)]); // SIZE + 1000
    const shrunk = file.bytes.subarray(0, 2 * CHUNK); // chunk 3 lies past its end
    const cases: [MirrorMode, number, RegExp][] = [
      [{ kind: 'replaced', bytes: grown }, 1, /\(Content-Range bytes 65536-131071\/329679\)/],
      [{ kind: 'replaced', bytes: shrunk }, 3, /\(HTTP 416 with Content-Range bytes \*\/131072\)/],
      [{ kind: 'replaced', bytes: grown, ignoreRange: true }, 1, /\(HTTP 200 with Content-Length 329679\)/],
    ];
    for (const [mode, chunk, header] of cases) {
      const s = await mirror(() => mode);
      const err = (await rejectionOf(() => fetchChunk(req(s.url, chunk, client())))) as ChunkFetchError;
      expect(err).toMatchObject({ reason: 'http', fault: 'size-changed' });
      expect(err.detail).toMatch(
        new RegExp(
          `^the file changed size: the mirror now serves ${mode.kind === 'replaced' ? mode.bytes.length : 0} bytes .*, the transfer started with ${SIZE}$`,
        ),
      );
      expect(err.detail).toMatch(header);
      expect(isSizeChanged(err.detail)).toBe(true);
    }
  });

  test('404 is reported with its status and not retried', async () => {
    const s = await mirror(() => ({ kind: 'status', status: 404 }));
    const err = (await rejectionOf(() => fetchChunk(req(s.url, 1, client())))) as ChunkFetchError;
    expect(err).toMatchObject({ reason: 'http', fault: 'http-status', status: 404 });
    expect(err.detail).toMatch(/^HTTP 404/);
    expect(s.requests).toHaveLength(1);
  });
});

describe('sources: proxies and headers', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startTinyproxy();
  });
  afterAll(async () => {
    await proxy?.stop();
  });

  test('HTTP_PROXY sends an http: origin its requests in absolute form (GET http://origin/path), not through a CONNECT tunnel', async () => {
    await copyFile(file.path, join(tmp.dir, 'via-proxy.bin'));
    const c = client({ proxy: true, env: { HTTP_PROXY: proxy.url, NO_PROXY: '' } });
    const r = await fetchChunk(req(`${nginx.httpUrl}/via-proxy.bin`, 3, c));
    expect(r.bytes.equals(slice(3))).toBe(true);
    const log = await proxy.log();
    // tinyproxy logs each request line it gets: the absolute-form GET, and no CONNECT
    expect(log).toContain(`Request (file descriptor`);
    expect(log).toMatch(
      new RegExp(`: GET ${nginx.httpUrl.replace(/[.]/g, '\\.')}/via-proxy\\.bin HTTP/1\\.1`),
    );
    expect(log).not.toMatch(/Request \(file descriptor \d+\): CONNECT/);
  });

  test('absolute-form requests take at most connectionsPerOrigin connections to the proxy, as tunnels do', async () => {
    // a loopback server in the proxy's place answers the absolute-form requests itself and counts connections
    const p = await mirror(() => ({ kind: 'ok' }));
    const c = client({ proxy: true, connectionsPerOrigin: 3, env: { HTTP_PROXY: p.origin, NO_PROXY: '' } });
    const all = await Promise.all(
      Array.from({ length: 12 }, (_, i) => fetchChunk(req('http://127.0.0.1:9/file.bin', i % 6, c))),
    );
    expect(all.every((r, i) => r.bytes.equals(slice(i % 6)))).toBe(true);
    expect(p.requests.map((r) => r.path)).toEqual(Array(12).fill('http://127.0.0.1:9/file.bin'));
    expect(p.connections()).toBeLessThanOrEqual(3);
  });

  test('HTTPS_PROXY tunnels an https: origin with CONNECT', async () => {
    await copyFile(file.path, join(tmp.dir, 'via-tunnel.bin'));
    const c = client({ proxy: true, caFile: ca.caFile, env: { HTTPS_PROXY: proxy.url, NO_PROXY: '' } });
    const r = await fetchChunk(req(`${nginx.httpsUrl}/via-tunnel.bin`, 2, c));
    expect(r.bytes.equals(slice(2))).toBe(true);
    const { host } = new URL(nginx.httpsUrl!);
    expect(await proxy.log()).toMatch(
      new RegExp(`Request \\(file descriptor \\d+\\): CONNECT ${host.replace(/[.]/g, '\\.')} HTTP/1\\.1`),
    );
  });

  test('a proxy that refuses the connection is named (without its userinfo) as the cause, not the origin', async () => {
    const s = await mirror(() => ({ kind: 'ok' }));
    const c = client({ proxy: true, env: { HTTP_PROXY: 'http://alice:s3cret@127.0.0.1:9', NO_PROXY: '' } });
    const err = (await rejectionOf(() => fetchChunk(req(s.url, 0, c)))) as ChunkFetchError;
    expect(err).toBeInstanceOf(ChunkFetchError);
    expect(err).toMatchObject({ reason: 'unreachable', fault: 'proxy' });
    expect(err.detail).toBe('proxy http://127.0.0.1:9 refused the connection');
    expect(err.message).not.toMatch(/s3cret|alice/);
    expect(s.requests).toHaveLength(0);
  });

  test('a CONNECT that tinyproxy answers with an error (the origin is down) names the proxy and its status', async () => {
    const c = client({ proxy: true, env: { HTTPS_PROXY: proxy.url, NO_PROXY: '' } });
    const err = (await rejectionOf(() =>
      fetchChunk(req('https://127.0.0.1:9/file.bin', 0, c)),
    )) as ChunkFetchError;
    expect(err).toMatchObject({ reason: 'unreachable', fault: 'proxy' });
    expect(err.detail).toMatch(
      new RegExp(
        `^proxy ${proxy.url.replace(/[.]/g, '\\.')} answered 5\\d\\d [A-Za-z ]+ to CONNECT 127\\.0\\.0\\.1:9$`,
      ),
    );
    expect(err.status).toBeGreaterThanOrEqual(500);
  });

  test('a proxy answering 407, or 503 to a CONNECT, is named with what it answered; the password is not', async () => {
    // a loopback proxy that refuses everyone: 407 to absolute-form requests, 503 to CONNECT
    const server = createServer((_q, res) => {
      res.writeHead(407, { 'proxy-authenticate': 'Basic realm="p"' }).end();
    });
    server.on('connect', (_q, socket: Socket) => {
      socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const at = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const env = { HTTP_PROXY: `http://alice:s3cret@${at}`, NO_PROXY: '' };
      const c = client({ proxy: true, env });
      const plain = (await rejectionOf(() =>
        fetchChunk(req('http://127.0.0.1:9/file.bin', 0, c)),
      )) as ChunkFetchError;
      expect(plain).toMatchObject({ reason: 'unreachable', fault: 'proxy', status: 407 });
      expect(plain.detail).toBe(`proxy http://${at} answered 407 Proxy Authentication Required`);
      const tunnel = (await rejectionOf(() =>
        fetchChunk(req('https://127.0.0.1:9/file.bin', 0, c)),
      )) as ChunkFetchError;
      expect(tunnel).toMatchObject({ reason: 'unreachable', fault: 'proxy', status: 503 });
      expect(tunnel.detail).toBe(
        `proxy http://${at} answered 503 Service Unavailable to CONNECT 127.0.0.1:9`,
      );
      for (const e of [plain, tunnel]) expect(`${e.message} ${e.detail}`).not.toMatch(/s3cret|alice/);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  test('NO_PROXY host:port sends only that origin straight; others still go through the proxy', async () => {
    const s = await mirror(() => ({ kind: 'ok' }));
    const { port } = new URL(s.url);
    const env = { HTTP_PROXY: 'http://127.0.0.1:9', NO_PROXY: `example.org, 127.0.0.1:${port}` };
    const c = client({ proxy: true, env });
    expect((await fetchChunk(req(s.url, 0, c))).bytes.equals(slice(0))).toBe(true);
    const other = (await rejectionOf(() =>
      fetchChunk(req(`${nginx.httpUrl}/file.bin`, 0, c)),
    )) as ChunkFetchError;
    expect(other.fault).toBe('proxy');
  });

  test('NO_PROXY bypasses the proxy for listed hosts', async () => {
    const s = await mirror(() => ({ kind: 'ok' }));
    const c = client({ proxy: true, env: { HTTP_PROXY: 'http://127.0.0.1:9', NO_PROXY: '127.0.0.1' } });
    expect((await fetchChunk(req(s.url, 0, c))).bytes.equals(slice(0))).toBe(true);
  });

  test('--header values reach the mirror', async () => {
    const s = await mirror(() => ({ kind: 'ok' }));
    await fetchChunk(req(s.url, 0, client({ headers: { 'x-token': 'abc' } })));
    expect(s.requests[0].headers['x-token']).toBe('abc');
  });
});

describe('sources: redaction', () => {
  test('redactUrl removes userinfo and query values', () => {
    expect(redactUrl('https://user:pw@cdn.example/f.iso?X-Amz-Signature=abc&name=f')).toBe(
      'https://***@cdn.example/f.iso?X-Amz-Signature=***&name=f',
    );
  });
});
