import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createNatsBus, durableName, TRANSFERS_STREAM, type NatsBus } from '../../bus/nats-bus.js';
import { subjects } from '../../bus/types.js';
import type { ChunkReport, DispatchBatch } from '../../common/index.js';
import { createSilentLogger } from '../../common/logger.js';
import { createEmbeddedHost, createMemoryStateStore, type EmbeddedHost } from '../../runtime/index.js';
import { createCpuTickEngine } from '../../engine/index.js';
import { SchedulerActor, EdgeActor, GpuWorkerActor } from '../../actors/index.js';
import { probeEdge } from '../../node/index.js';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { createGate, type Gate } from '../runtime/fixtures.js';

// reports were acknowledged to JetStream as soon as they were queued for the SchedulerActor, so
// reports acknowledged just before a crash were lost. A report must be acknowledged only after it is applied.

const logger = createSilentLogger();
let gate: Gate;
const applied: number[] = [];

/** A SchedulerActor whose `reports` turn waits for the test's gate before applying. */
class GatedScheduler extends SchedulerActor {
  override async reports(arg: { items: ChunkReport[] }): Promise<{ applied: number; ignored: number }> {
    await gate.wait();
    const r = await super.reports(arg);
    applied.push(Date.now());
    return r;
  }
}

async function waitFor(fn: () => boolean | Promise<boolean>, ms = 20_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

let server: TestNatsServer;
let raw: NatsConnection;
let mesh: Mesh;
const buses: NatsBus[] = [];
let host: EmbeddedHost | undefined;

beforeAll(async () => {
  server = await startNatsServer();
  raw = await connect({ servers: server.url });
});
afterEach(async () => {
  gate?.open();
  await host?.stop();
  await Promise.all(buses.splice(0).map((b) => b.close()));
  await mesh?.close();
});
afterAll(async () => {
  await raw?.close();
  await server?.stop();
});

test('a chunk report is acknowledged to JetStream only after the SchedulerActor applied it', async () => {
  gate = createGate();
  mesh = await createMesh(8 * 16384, 16384, [{ holds: 'all' }]);
  const transferId = mesh.manifest.id;
  const schedulerBus = await createNatsBus({ servers: server.url, logger, name: 'sched', ackWaitMs: 1000 });
  const executorBus = await createNatsBus({ servers: server.url, logger, name: 'exec' });
  buses.push(schedulerBus, executorBus);
  const dispatched: DispatchBatch[] = [];
  const ds = executorBus.subscribe<DispatchBatch>(subjects.dispatch(transferId), (b) => {
    dispatched.push(b);
  });
  await ds.ready;
  const engine = createCpuTickEngine();
  host = createEmbeddedHost({
    store: createMemoryStateStore(),
    logger,
    services: { bus: schedulerBus, tickEngine: engine, probeEdge },
  });
  host.register(GatedScheduler, 'SchedulerActor');
  host.register(EdgeActor);
  host.register(GpuWorkerActor);
  const actor = host.proxy('SchedulerActor', transferId);
  await actor.invoke('start', {
    transferId,
    manifest: mesh.manifest,
    output: path.join(mesh.dir, 'out.bin'),
    edges: mesh.edges,
    tickMs: 20,
  });
  await waitFor(() => dispatched.length > 0, 10_000, 'a dispatch');
  const it = dispatched[0].items[0];
  const report: ChunkReport = {
    transferId,
    chunk: it.chunk,
    attempt: it.attempt,
    edgeIndex: it.edgeIndex,
    ok: true,
    bytes: it.length,
    firstByteMs: 1,
    transferMs: 2,
    executorId: 'test',
  };
  await executorBus.publish(subjects.report(transferId), report);

  const jsm = await jetstreamManager(raw);
  const durable = durableName('sched', subjects.report(transferId));
  const info = () => jsm.consumers.info(TRANSFERS_STREAM, durable);
  await waitFor(async () => (await info()).num_ack_pending === 1, 10_000, 'the report delivered');
  // held for three ack waits: delivered, not acknowledged, and not redelivered (in progress)
  await new Promise((r) => setTimeout(r, 3000));
  let i = await info();
  expect(i.num_ack_pending).toBe(1);
  expect(i.ack_floor.stream_seq).toBe(0);
  expect(i.num_redelivered).toBe(0);
  expect(applied).toHaveLength(0);

  gate.open();
  await waitFor(async () => (await info()).num_ack_pending === 0, 10_000, 'the report acknowledged');
  i = await info();
  expect(i.ack_floor.stream_seq).toBeGreaterThan(0);
  expect(applied).toHaveLength(1);
  await engine.close();
}, 60_000);
