/**
 * The external allow-list on the Dapr host, with placement, Redis and two `portal serve --runtime
 * dapr` instances behind their daprd: a call that comes in through daprd's API without the cluster's
 * internal-call token may invoke only the methods in actors/api externalMethods; the actors' own calls
 * (which carry it) still work across instances — a whole transfer runs in test/dapr/dapr-transfer.
 */
import { jest } from '@jest/globals';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { daprInvoke, startDaprTestBed, type DaprTestBed } from '../helpers/dapr.js';
import { errorFromResponse } from '../../runtime/dapr-client.js';
import { codeOf } from '../../common/errors.js';

jest.setTimeout(180_000);

let bed: DaprTestBed;
beforeAll(async () => {
  bed = await startDaprTestBed('dapr-allow-list');
}, 180_000);
afterAll(async () => {
  await bed?.stop();
});

test('through daprd, internal methods (and a stream start naming edgeIds) are refused with PORTAL_ACTOR_METHOD_FORBIDDEN and external ones answer', async () => {
  const port = bed.instances[0].daprHttpPort;
  for (const [type, method, arg] of [
    ['SchedulerActor', 'reports', { items: [] }],
    ['SchedulerActor', 'tick', undefined],
    ['SchedulerActor', 'finish', undefined],
    ['SchedulerActor', 'fail', 'forged'],
    ['EdgeActor', 'configure', { url: 'http://127.0.0.1:1', kind: 'portal', flags: 0, maxParallel: 1 }],
    ['EdgeActor', 'observe', { samples: [] }],
    // an external method asked to do what observe does: a stream feeding the EdgeActors its caller names
    [
      'GpuStreamActor',
      'start',
      { kernel: { type: 'edge-telemetry', edges: 1, edgeIds: ['sec-1'] }, source: 'direct', backend: 'cpu' },
    ],
  ] as const) {
    const r = await daprInvoke(port, type, 'sec-1', method, arg);
    // daprd wraps the app's answer; Portal's Dapr client (errorFromResponse) takes the code back out
    const err = errorFromResponse(`${type}.${method}`, r.status, JSON.stringify(r.body));
    expect([type, method, codeOf(err)]).toEqual([type, method, 'PORTAL_ACTOR_METHOD_FORBIDDEN']);
    expect(r.status).toBeGreaterThanOrEqual(400);
  }
  // status is external: a transfer that was never started answers PORTAL_UNKNOWN_TRANSFER, not a refusal
  const status = await daprInvoke(port, 'SchedulerActor', 'sec-1', 'status');
  const statusErr = errorFromResponse('status', status.status, JSON.stringify(status.body));
  expect(codeOf(statusErr)).toBe('PORTAL_UNKNOWN_TRANSFER');
  // EdgeActor.snapshot is external: an unconfigured edge answers with its own error, not a refusal
  const snapshot = await daprInvoke(port, 'EdgeActor', 'sec-1', 'snapshot');
  const snapErr =
    snapshot.status === 200
      ? undefined
      : errorFromResponse('snapshot', snapshot.status, JSON.stringify(snapshot.body));
  expect(snapErr === undefined ? 'ok' : codeOf(snapErr)).not.toBe('PORTAL_ACTOR_METHOD_FORBIDDEN');
});

test('the app port daprd calls listens on loopback only: a direct call from another interface is refused', async () => {
  const { appPort } = bed.instances[0];
  const outside = Object.values(networkInterfaces())
    .flat()
    .find((a) => a?.family === 'IPv4' && !a.internal)?.address;
  if (!outside) throw new Error('this test needs a non-loopback IPv4 interface to connect from');
  const refused = await new Promise<string>((resolve) => {
    const s = connect({ host: outside, port: appPort }, () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
  expect(refused).toBe('ECONNREFUSED');
  // and on loopback it answers (the same port is alive)
  expect((await fetch(`http://127.0.0.1:${appPort}/healthz`)).status).toBeLessThan(500);
});
