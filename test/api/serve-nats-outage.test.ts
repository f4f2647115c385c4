import { jest } from '@jest/globals';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeActorId } from '../../runtime/state-keys.js';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';
import { waitFor } from '../helpers/dapr.js';
import { startEmbeddedServe, stopEmbeddedServe, type EmbeddedServe } from '../helpers/portal-cli.js';
import { createSourceEdge, type SourceEdge } from '../transfer/fixtures.js';

// `portal serve` on a real nats-server that goes away while a transfer runs: the SchedulerActor's tick turn
// published its dispatch batches to JetStream and waited (up to the 60 s publish timeout) for the server to store
// them, so a cancel, queued behind that turn, did not answer until NATS came back. The actor API must keep
// answering from memory during a bus outage, and the node must carry on once NATS is back.
jest.setTimeout(180_000);

const CHUNK = 64 * 1024;

let src: SourceEdge;
let nats: TestNatsServer;
let serve: EmbeddedServe;

beforeAll(async () => {
  // ~4 s for the whole file: the transfer is still running when NATS goes, and its chunks time out quickly
  src = await createSourceEdge('serve-nats-outage', {
    size: 64 * CHUNK,
    chunkSize: CHUNK,
    seed: 3,
    edge: { id: 'outage-edge', bandwidthBytesPerSec: 1024 * 1024 },
  });
  nats = await startNatsServer();
  serve = await startEmbeddedServe(['--output-root', src.dir], { NATS_URL: nats.url });
});
afterAll(async () => {
  await stopEmbeddedServe(serve);
  await nats?.stop();
  await src?.close();
});

/** Calls a SchedulerActor method; `ms` bounds the wait for the answer (an AbortError past it). */
async function call(
  id: string,
  method: string,
  body?: unknown,
  ms = 30_000,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
): Promise<{ status: number; body: any; ms: number }> {
  const t0 = Date.now();
  const res = await fetch(`${serve.base}/SchedulerActor/${encodeActorId(id)}/method/${method}`, {
    method: 'POST',
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(ms),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, ms: Date.now() - t0 };
}

test('while nats-server is down, status and cancel of a running transfer answer at once; a start answers too; after NATS is back the transfer started meanwhile completes and serve is still up', async () => {
  const id = 'outage-1';
  expect(await call(id, 'start', src.startBody(id, join(src.dir, 'out-1.bin')))).toMatchObject({
    status: 200,
  });
  await waitFor(async () => (await call(id, 'status')).body.complete >= 2, 30_000, 'two chunks arrive');
  await nats.kill();
  // the chunks in flight cannot report: they time out and are dispatched again, to a JetStream that is away
  const before = (await call(id, 'status')).body.counters.timeouts as number;
  const slowest = { status: 0 };
  await waitFor(
    async () => {
      const s = await call(id, 'status', undefined, 3000);
      slowest.status = Math.max(slowest.status, s.ms);
      return s.body.counters.timeouts > before;
    },
    30_000,
    'a chunk times out and is dispatched again while NATS is down',
  );
  await new Promise((r) => setTimeout(r, 500)); // the redispatch is being published (a tick turn)
  const status = await call(id, 'status', undefined, 3000);
  expect(status).toMatchObject({ status: 200, body: { state: 'running' } });
  const cancel = await call(id, 'cancel', undefined, 3000);
  expect(cancel).toMatchObject({ status: 200, body: { state: 'cancelled' } });
  expect(Math.max(slowest.status, status.ms, cancel.ms)).toBeLessThan(3000);
  expect((await call(id, 'status', undefined, 3000)).body.state).toBe('cancelled');

  // a start while NATS is away answers too (its subscriptions go out on reconnect)
  const id2 = 'outage-2';
  const out2 = join(src.dir, 'out-2.bin');
  const started = await call(id2, 'start', src.startBody(id2, out2), 3000);
  expect(started).toMatchObject({ status: 200, body: { state: 'running' } });
  await new Promise((r) => setTimeout(r, 1500)); // its first dispatch waits for the bus

  await nats.start();
  // the node reconnects: the transfer started during the outage runs to a verified output
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let s: any;
  await waitFor(
    async () => {
      // a serve that died answers nothing: the abort below then reports what it printed
      s = (await call(id2, 'status').catch(() => ({ body: {} }))).body;
      return ['done', 'failed', 'cancelled'].includes(s.state);
    },
    90_000,
    () => `transfer after the outage ends (last ${JSON.stringify(s)}; serve: ${serve.output().slice(-6000)})`,
    () => serve.child.exitCode !== null,
  );
  expect(s).toMatchObject({ state: 'done', verified: true });
  expect(
    createHash('sha256')
      .update(await readFile(out2))
      .digest('hex'),
  ).toBe(src.manifest.fileSha256);
  expect((await call(id, 'status')).body.state).toBe('cancelled');
});
