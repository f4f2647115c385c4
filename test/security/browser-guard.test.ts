import http from 'node:http';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { hostname } from 'node:os';
import { freePort } from '../../common/net.js';
import { makeTempDir } from '../transfer/fixtures.js';

// A web page in the user's browser must not drive a loopback `portal serve`: by DNS rebinding (its requests
// carry its own Host) or by a cross-site "simple request" POST (text/plain, no CORS preflight). curl, SDKs
// and sidecars send no Origin and keep working.
const repo = resolve(new URL('../..', import.meta.url).pathname);
let serve: ChildProcess;
let apiPort: number;
let dashPort: number;
let tmp: { dir: string; cleanup: () => Promise<void> };

function send(
  port: number,
  o: { method?: string; path: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: o.method ?? 'POST', path: o.path, headers: o.headers ?? {} },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => done({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', fail);
    req.end(o.body);
  });
}

beforeAll(async () => {
  tmp = await makeTempDir('browser-guard');
  apiPort = await freePort();
  dashPort = await freePort();
  serve = spawn(
    process.execPath,
    [
      resolve(repo, 'dist/cli/main.js'),
      'serve',
      '--runtime',
      'embedded',
      '--app-port',
      String(apiPort),
      '--dashboard-port',
      String(dashPort),
      '--output-root',
      tmp.dir,
      '--backend',
      'cpu',
      '--json',
    ],
    {
      env: { ...process.env, NATS_URL: '', PORTAL_ALLOWED_HOSTS: 'portal.internal' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  serve.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise<void>((ok, ko) => {
    createInterface({ input: serve.stdout! }).on('line', (l) => {
      out += `${l}\n`;
      if (l.includes('"ready"')) ok();
    });
    serve.once('exit', (c) => ko(new Error(`serve exited ${c}: ${out}`)));
  });
}, 60_000);

afterAll(async () => {
  if (serve.exitCode === null) {
    const exited = new Promise((r) => serve.once('exit', r));
    serve.kill('SIGTERM');
    await exited;
  }
  await tmp.cleanup();
});

const start = (id: string): string => `/v1.0/actors/SchedulerActor/${id}/method/start`;
const status = (id: string): string => `/v1.0/actors/SchedulerActor/${id}/method/status`;
const body = JSON.stringify({
  transferId: 'x',
  manifestUrl: 'http://127.0.0.1:1/m.json',
  output: 'o',
  edges: [],
});

describe('portal serve refuses requests a web page makes', () => {
  test('a cross-site POST (Origin of another site, text/plain) is refused with 403 and starts nothing', async () => {
    for (const headers of <Array<Record<string, string>>>[
      { origin: 'http://evil.example', 'content-type': 'text/plain' },
      { origin: 'null', 'content-type': 'text/plain' },
      { origin: `http://127.0.0.1:${apiPort + 1}` },
      { 'sec-fetch-site': 'cross-site', 'content-type': 'application/x-www-form-urlencoded' },
    ]) {
      const r = await send(apiPort, { path: start('csrf1'), headers, body });
      expect({ headers, status: r.status, code: JSON.parse(r.body).error.code }).toEqual({
        headers,
        status: 403,
        code: 'PORTAL_CROSS_SITE_REFUSED',
      });
    }
    expect((await send(apiPort, { path: status('csrf1') })).status).toBe(404);
  });

  test('a request whose Host names another site (DNS rebinding) is refused on the API and the dashboard', async () => {
    const api = await send(apiPort, { path: status('x1'), headers: { host: `evil.example:${apiPort}` } });
    expect(api.status).toBe(403);
    expect(JSON.parse(api.body).error).toMatchObject({ code: 'PORTAL_CROSS_SITE_REFUSED' });
    expect(JSON.parse(api.body).error.message).toMatch(
      /Host "evil.example:\d+" does not name this loopback server/,
    );
    for (const path of ['/', '/api/state', '/metrics']) {
      const d = await send(dashPort, { method: 'GET', path, headers: { host: 'evil.example' } });
      expect({ path, status: d.status }).toEqual({ path, status: 403 });
    }
  });

  test('curl-like calls, the own origin, IP and localhost hosts and PORTAL_ALLOWED_HOSTS names are served', async () => {
    for (const headers of <Array<Record<string, string>>>[
      {},
      { origin: `http://127.0.0.1:${apiPort}` },
      { host: `localhost:${apiPort}` },
      { host: `[::1]:${apiPort}` },
      { host: `portal.internal:${apiPort}` },
    ]) {
      const r = await send(apiPort, { path: status('never-started'), headers });
      expect({ headers, status: r.status }).toEqual({ headers, status: 404 });
    }
    const d = await send(dashPort, {
      method: 'GET',
      path: '/api/state',
      headers: { host: `localhost:${dashPort}` },
    });
    expect(d.status).toBe(200);
  });

  test('the trailing-dot (absolute FQDN) forms of the names served are served too; other names with a dot, and doubled dots, are still refused', async () => {
    const served = ['localhost.', 'app.localhost.', 'portal.internal.', `${hostname()}.`, '127.0.0.1.'];
    for (const name of served) {
      const r = await send(apiPort, {
        path: status('never-started'),
        headers: { host: `${name}:${apiPort}` },
      });
      expect({ name, status: r.status }).toEqual({ name, status: 404 });
      const d = await send(dashPort, { method: 'GET', path: '/api/state', headers: { host: name } });
      expect({ name, dashboard: d.status }).toEqual({ name, dashboard: 200 });
    }
    for (const name of [
      'evil.example.',
      'localhost..',
      '.',
      'localhost.evil.example.',
      'portal.internal..',
    ]) {
      const r = await send(apiPort, { path: status('x2'), headers: { host: `${name}:${apiPort}` } });
      expect({ name, status: r.status }).toEqual({ name, status: 403 });
      const d = await send(dashPort, { method: 'GET', path: '/api/state', headers: { host: name } });
      expect({ name, dashboard: d.status }).toEqual({ name, dashboard: 403 });
    }
  });

  test('a malformed %-escape in an actor id is a 400 naming it, not a 500', async () => {
    const r = await send(apiPort, { path: '/v1.0/actors/SchedulerActor/%E0%A4%A/method/status' });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body).error).toMatchObject({
      code: 'PORTAL_INVALID_ARGUMENT',
      message: expect.stringMatching(/malformed %-escape/),
    });
  });
});
