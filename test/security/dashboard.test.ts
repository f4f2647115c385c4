/**
 * The dashboard under hostile use: it listens on loopback unless told otherwise, shows
 * no credentials or signed-URL parameters anywhere (page state, event stream, metrics, logs), and
 * clients that connect to /events and never read are dropped instead of growing memory.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { createDashboard, type Dashboard } from '../../dashboard/index.js';
import { createSilentLogger } from '../../common/logger.js';
import type { TransferStatus } from '../../actors/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { PORTAL_MAIN, startEmbeddedServe } from '../helpers/portal-cli.js';
import { edgeView, fakeHost, transferStatus } from '../dashboard/fixtures.js';

const SECRETS = ['pw-SECRET-1', 'SIG-SECRET-2', 'TOK-SECRET-3', 'alice'];

/** Opens a raw TCP connection to /events and never reads from it. */
function silentEventsClient(url: string): Promise<net.Socket> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: u.hostname, port: Number(u.port) }, () => {
      s.write(`GET /events HTTP/1.1\r\nhost: ${u.host}\r\n\r\n`);
      s.pause();
      resolve(s);
    });
    s.once('error', reject);
  });
}

describe('dashboard security', () => {
  let dash: Dashboard | undefined;
  let mesh: Mesh | undefined;
  afterEach(async () => {
    await dash?.close();
    dash = undefined;
    await mesh?.close();
    mesh = undefined;
  });

  test('an /events client that stops reading is dropped once its unread buffer passes the limit; readers keep receiving', async () => {
    // a large snapshot (2000 edges, ~0.5 MB) every 20 ms fills a silent client's socket buffers quickly
    const edges = Array.from({ length: 2000 }, (_, i) => edgeView(`edge-${i}`));
    const statuses = new Map<string, TransferStatus | Error>([['t1', transferStatus('t1', { edges })]]);
    dash = await createDashboard({
      host: fakeHost(statuses),
      transfers: () => ['t1'],
      logger: createSilentLogger(),
      pollMs: 20,
      sseMaxBufferedBytes: 4 * 1024 * 1024,
    });
    const silent = await Promise.all(Array.from({ length: 4 }, () => silentEventsClient(dash!.url)));
    const ac = new AbortController();
    const reader = (await fetch(new URL('events', dash.url), { signal: ac.signal })).body!.getReader();
    let readBytes = 0;
    const reading = (async () => {
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done) return;
        readBytes += value!.length;
      }
    })();
    // the server drops the silent clients (a paused client socket does not notice; the server's count does)
    let metrics = '';
    const deadline = Date.now() + 30_000;
    while (!/^portal_dashboard_sse_dropped_total 4$/m.test(metrics) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      metrics = await (await fetch(new URL('metrics', dash.url))).text();
    }
    expect(metrics).toMatch(/^portal_dashboard_sse_dropped_total 4$/m);
    // the client that reads is still there and still receives frames
    const before = readBytes;
    await new Promise((r) => setTimeout(r, 300));
    expect(readBytes).toBeGreaterThan(before);
    expect(metrics).toMatch(/^portal_dashboard_sse_clients 1$/m);
    ac.abort();
    await reading;
    for (const c of silent) c.destroy();
  }, 60_000);

  test('fetch --dashboard shows edge URLs without userinfo or signed-URL parameters in /api/state, /events, /metrics, logs and output', async () => {
    mesh = await createMesh(48 * 16384, 16384, [{ holds: 'all', bandwidthBytesPerSec: 250_000 }]);
    const edgeUrl = mesh.servers[0].url.replace('http://', `http://alice:${SECRETS[0]}@`);
    const edge = `${edgeUrl}/file?X-Amz-Signature=${SECRETS[1]}&token=${SECRETS[2]}&part=1#mirror`;
    const child = spawn(
      process.execPath,
      [
        PORTAL_MAIN,
        'fetch',
        mesh.manifestPath,
        '--edge',
        edge,
        '--out',
        path.join(mesh.dir, 'o.bin'),
        '--dashboard',
        '--log-level',
        'debug',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stderr }).on('line', (l) => {
        stderr += `${l}\n`;
        const m = /^dashboard: (http:\/\/\S+)/.exec(l);
        if (m) resolve(m[1]);
      });
      child.once('exit', () => reject(new Error(`fetch exited before its dashboard came up: ${stderr}`)));
    });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:/);
    // wait until the transfer shows its edge, then read every surface
    let state = '';
    for (let i = 0; i < 100 && !state.includes('"edges":[{'); i++) {
      state = await (await fetch(new URL('api/state', url))).text();
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(state).toContain('***@127.0.0.1');
    const ac = new AbortController();
    const body = (await fetch(new URL('events', url), { signal: ac.signal })).body!.getReader();
    let events = '';
    while (!events.includes('"edges":[{')) events += new TextDecoder().decode((await body.read()).value);
    ac.abort();
    const metrics = await (await fetch(new URL('metrics', url))).text();
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    expect(code).toBe(0);
    for (const surface of [state, events, metrics, stdout, stderr])
      for (const secret of SECRETS) expect(surface).not.toContain(secret);
    expect(events).toContain('X-Amz-Signature=***');
  }, 60_000);

  test('serve binds its dashboard to loopback by default', async () => {
    const serve = await startEmbeddedServe(['--dashboard-port', '0']);
    try {
      expect(serve.dashboard).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    } finally {
      serve.child.kill('SIGTERM');
      await new Promise((r) => serve.child.once('exit', r));
    }
  }, 60_000);
});
