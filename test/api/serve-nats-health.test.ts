/**
 * `/healthz` and `/readyz` of a real `portal serve --runtime embedded` (dist/) on a real nats-server that is killed
 * and started again: /healthz said nothing of the bus (204 whatever its state). Now both report the bus's state and
 * since when; liveness (/healthz) stays 200 through the outage (a restart would not end it), readiness (/readyz)
 * is 503 until the bus is connected again.
 */
import { jest } from '@jest/globals';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';
import type { HealthBody } from '../../common/health.js';
import { startEmbeddedServe, stopEmbeddedServe, type EmbeddedServe } from '../helpers/portal-cli.js';
import { until } from '../helpers/post-json.js';
import { makeTempDir } from '../transfer/fixtures.js';

jest.setTimeout(120_000);

let tmp: { dir: string; cleanup: () => Promise<void> };
let nats: TestNatsServer;
let serve: EmbeddedServe;
let memory: EmbeddedServe;

beforeAll(async () => {
  tmp = await makeTempDir('serve-nats-health');
  nats = await startNatsServer();
  serve = await startEmbeddedServe(['--output-root', tmp.dir], { NATS_URL: nats.url });
  memory = await startEmbeddedServe(['--output-root', tmp.dir], { NATS_URL: '' });
});
afterAll(async () => {
  await stopEmbeddedServe(serve);
  await stopEmbeddedServe(memory);
  await nats?.stop();
  await tmp?.cleanup();
});

/** GET `path` on the serve's app port: the status and the JSON body. */
async function probe(s: EmbeddedServe, path: string): Promise<{ status: number; body: HealthBody }> {
  const res = await fetch(`http://127.0.0.1:${s.port}${path}`);
  expect(res.headers.get('content-type')).toBe('application/json');
  return { status: res.status, body: (await res.json()) as HealthBody };
}

test('the in-process bus: both probes 200, bus connected since the start', async () => {
  for (const path of ['/healthz', '/v1.0/healthz', '/readyz']) {
    const r = await probe(memory, path);
    expect({ path, status: r.status, body: r.body }).toEqual({
      path,
      status: 200,
      body: {
        status: 'ok',
        bus: expect.objectContaining({ kind: 'memory', state: 'connected', disconnects: 0, reconnects: 0 }),
      },
    });
    expect(new Date(r.body.bus!.since).getTime()).toBe(r.body.bus!.sinceMs);
  }
});

test('nats-server killed: liveness 200 reporting "reconnecting" since the kill, readiness 503; restarted: both 200, connected again', async () => {
  const before = await probe(serve, '/healthz');
  expect(before).toEqual({
    status: 200,
    body: {
      status: 'ok',
      bus: expect.objectContaining({ kind: 'nats', state: 'connected', disconnects: 0 }),
    },
  });
  expect((await probe(serve, '/readyz')).status).toBe(200);

  const killedAt = Date.now();
  await nats.kill();
  const down = await until(
    '/healthz reports the bus reconnecting',
    () => probe(serve, '/healthz'),
    (r) => r.body.bus?.state === 'reconnecting',
  );
  expect(down.status).toBe(200); // liveness: a NATS outage does not ask for a restart
  expect(down.body).toMatchObject({
    status: 'ok',
    bus: { kind: 'nats', state: 'reconnecting', disconnects: 1 },
  });
  expect(down.body.bus!.sinceMs).toBeGreaterThanOrEqual(killedAt - 1000);
  const notReady = await probe(serve, '/readyz');
  expect(notReady).toEqual({
    status: 503,
    body: {
      status: 'failing',
      bus: expect.objectContaining({ state: 'reconnecting', sinceMs: down.body.bus!.sinceMs }),
    },
  });

  const restartedAt = Date.now();
  await nats.start();
  const up = await until(
    '/readyz is 200 again',
    () => probe(serve, '/readyz'),
    (r) => r.status === 200,
  );
  expect(up.body).toMatchObject({
    status: 'ok',
    bus: { kind: 'nats', state: 'connected', disconnects: 1, reconnects: 1 },
  });
  expect(up.body.bus!.sinceMs).toBeGreaterThanOrEqual(restartedAt - 1000);
  expect((await probe(serve, '/healthz')).body.bus).toMatchObject({ state: 'connected', reconnects: 1 });
});
