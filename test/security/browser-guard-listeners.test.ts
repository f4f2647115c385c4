import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { freePort } from '../../common/net.js';
import { createEdgeServer, type EdgeServer } from '../../transfer/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { startEmbeddedServe, type EmbeddedServe } from '../helpers/portal-cli.js';
import { servingFetch, type PortalProcess } from '../fabric/helpers.js';

// Every HTTP listener Portal opens refuses what a web page in the user's browser sends it (common/browser-guard.ts):
// a Host naming another site (DNS rebinding) where the listener answers on loopback, and a cross-site POST/PUT
// (CSRF). test/security/browser-guard.test.ts covers the loopback actor API and dashboard; this file the content
// server of `fetch --serve`, the edge, a dashboard bound to every interface (0.0.0.0, which loopback reaches too),
// and malformed %-escapes in each server's path. The Dapr app port: test/dapr/dapr-tokens.test.ts.

function send(
  url: string,
  o: { method?: string; path: string; headers?: Record<string, string>; body?: string | Buffer },
): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((done, fail) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        method: o.method ?? 'GET',
        path: o.path,
        headers: o.headers ?? {},
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => {
          // an SSE stream never ends: its first bytes are enough
          body += d.toString();
          if (o.path === '/events') res.destroy();
        });
        res.on('end', () => done({ status: res.statusCode ?? 0, body }));
        res.on('close', () => done({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', fail);
    req.end(o.body);
  });
}

const CHUNK = 16384;
let mesh: Mesh;
beforeAll(async () => {
  // 64 chunks at 64 kB/s: the fetch below runs for about 16 s, long enough to be asked while it serves
  mesh = await createMesh(64 * CHUNK, CHUNK, [{ holds: 'all', bandwidthBytesPerSec: 64_000 }]);
});
afterAll(async () => {
  await mesh?.close();
});

describe('portal fetch --serve: the content server', () => {
  let fetch: PortalProcess | undefined;
  afterAll(async () => {
    if (fetch) {
      fetch.child.kill('SIGTERM');
      await fetch.exit;
    }
  });

  test('answers curl-like reads, refuses a Host of another site with 403, and a malformed %-escape with 400 naming it', async () => {
    let url: string;
    ({ fetch, url } = await servingFetch(mesh, 'served.bin'));
    const own = new URL(url).pathname;
    const rebinding = await send(url, { path: own, headers: { host: 'evil.example', range: 'bytes=0-9' } });
    expect(rebinding.status).toBe(403);
    expect(JSON.parse(rebinding.body)).toMatchObject({
      code: 'PORTAL_CROSS_SITE_REFUSED',
      error: expect.stringContaining('Host "evil.example" does not name this loopback server'),
    });
    const bad = await send(url, { path: '/v1/transfers/%E0%A4%A/content' });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({
      code: 'PORTAL_INVALID_ARGUMENT',
      error: 'transfer id "%E0%A4%A": malformed %-escape in the path',
    });
    // a curl-like read (no Origin, an IP Host) gets the bytes
    const ok = await send(url, { path: own, headers: { range: 'bytes=0-9' } });
    expect(ok.status).toBe(206);
    expect(fetch.child.exitCode).toBeNull();
  }, 60_000);
});

describe('portal edge: public chunks, guarded PUTs', () => {
  let edge: EdgeServer;
  beforeAll(async () => {
    edge = await createEdgeServer({
      id: 'acc',
      source: { path: path.join(mesh.dir, 'accepted.bin'), manifest: mesh.manifest },
      holds: new Set<number>(),
      accept: {},
    });
  });
  afterAll(async () => {
    await edge?.close();
  });

  test('a loopback edge refuses a Host of another site and a cross-site PUT, and serves curl-like GETs and PUTs', async () => {
    const cid = mesh.manifest.chunks[0];
    const rebinding = await send(edge.url, { path: `/v1/chunks/${cid}`, headers: { host: 'evil.example' } });
    expect(rebinding.status).toBe(403);
    expect(JSON.parse(rebinding.body)).toMatchObject({ code: 'PORTAL_CROSS_SITE_REFUSED' });
    const body = Buffer.alloc(CHUNK, 1); // not the chunk: a PUT that gets through is refused by its hash (422)
    for (const headers of <Array<Record<string, string>>>[
      { origin: 'http://evil.example', 'content-type': 'application/octet-stream' },
      { 'sec-fetch-site': 'cross-site' },
    ]) {
      const r = await send(edge.url, { method: 'PUT', path: `/v1/chunks/${cid}`, headers, body });
      expect({ headers, status: r.status, code: (JSON.parse(r.body) as { code?: string }).code }).toEqual({
        headers,
        status: 403,
        code: 'PORTAL_CROSS_SITE_REFUSED',
      });
    }
    expect((await send(edge.url, { path: `/v1/chunks/${cid}` })).status).toBe(404);
    const wrong = await send(edge.url, { method: 'PUT', path: `/v1/chunks/${cid}`, body });
    expect(wrong.status).toBe(422);
    const chunk = (await readFile(mesh.source)).subarray(0, CHUNK);
    const put = await send(edge.url, { method: 'PUT', path: `/v1/chunks/${cid}`, body: chunk });
    expect(put.status).toBeLessThan(300);
    const get = await send(edge.url, { path: `/v1/chunks/${cid}` });
    expect(get.status).toBe(200);
  });
});

describe('portal serve with --dashboard-host 0.0.0.0', () => {
  let serve: EmbeddedServe;
  let dash: string;
  beforeAll(async () => {
    const port = await freePort();
    serve = await startEmbeddedServe([
      '--dashboard-port',
      String(port),
      '--dashboard-host',
      '0.0.0.0',
      '--output-root',
      mesh.dir,
    ]);
    dash = `http://127.0.0.1:${port}`;
  }, 60_000);
  afterAll(async () => {
    if (serve.child.exitCode === null) {
      const exited = new Promise((r) => serve.child.once('exit', r));
      serve.child.kill('SIGTERM');
      await exited;
    }
  });

  test('the dashboard, reachable on loopback too, refuses a Host of another site on every path, the SSE stream included', async () => {
    for (const p of ['/', '/api/state', '/events', '/metrics']) {
      const r = await send(dash, { path: p, headers: { host: 'evil.example' } });
      expect({ p, status: r.status, body: r.body }).toEqual({
        p,
        status: 403,
        body: expect.stringContaining('Host "evil.example" does not name this loopback server'),
      });
    }
  });

  test("the dashboard serves IP, localhost and this machine's name as Host", async () => {
    for (const host of ['127.0.0.1', 'localhost', hostname()]) {
      const r = await send(dash, { path: '/api/state', headers: { host } });
      expect({ host, status: r.status }).toEqual({ host, status: 200 });
    }
  });

  test('the actor API names the path segment with a malformed %-escape in its 400', async () => {
    for (const [p, what] of [
      ['/v1.0/actors/SchedulerActor/%E0%A4%A/method/status', 'actor id'],
      ['/v1.0/actors/Scheduler%zzActor/x/method/status', 'actor type'],
      ['/v1.0/actors/SchedulerActor/x/method/st%E0tus', 'actor method'],
    ]) {
      const r = await send(`http://127.0.0.1:${serve.port}`, { method: 'POST', path: p });
      const seg = p.split('/')[what === 'actor id' ? 4 : what === 'actor type' ? 3 : 6];
      expect({ p, status: r.status, error: (JSON.parse(r.body) as { error: unknown }).error }).toEqual({
        p,
        status: 400,
        error: {
          code: 'PORTAL_INVALID_ARGUMENT',
          message: `${what} ${JSON.stringify(seg)}: malformed %-escape in the path`,
        },
      });
    }
    // logged without a stack: a 400 is the caller's mistake
    expect(serve.output()).not.toMatch(/URI malformed/);
  });
});
