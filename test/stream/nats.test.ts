import { createSilentLogger } from '../../common/logger.js';
import { createEmbeddedHost, createMemoryStateStore } from '../../runtime/index.js';
import { EdgeActor, GpuStreamActor, type PortalServices } from '../../actors/index.js';
import {
  createStreamProcessor,
  edgeTelemetryKernel,
  edgeUpdates,
  runCpu,
  streamSubjects,
  telemetrySampleLayout,
} from '../../stream/index.js';
import { createNatsStreamTransport, type NatsStreamTransport } from '../../stream/index.js';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';
import { fakeExecutor, idsOf, seqKernel, seqRecords, waitFor } from './fixtures.js';
import { streamRequireGpuFromEnv } from '../../cli/env.js';
import { actorProxy } from '../../actors/api.js';

const logger = createSilentLogger();
let server: TestNatsServer;
let transport: NatsStreamTransport;

beforeAll(async () => {
  server = await startNatsServer();
  transport = await createNatsStreamTransport({ servers: server.url, logger });
});
afterAll(async () => {
  await transport?.close();
  await server?.stop();
});

/** Publishes messages with up to `window` publishes in flight (a fast producer). */
async function produce(streamId: string, msgs: Uint8Array[], window = 64): Promise<void> {
  const inflight = new Set<Promise<void>>();
  for (const m of msgs) {
    const p: Promise<void> = transport.publishRecords(streamId, m).finally(() => inflight.delete(p));
    inflight.add(p);
    if (inflight.size >= window) await Promise.race(inflight);
  }
  await Promise.all(inflight);
}

function hostWith() {
  const services: PortalServices = {
    streamTransport: transport,
    streamKernels: { seq: seqKernel },
    streamRequireGpu: streamRequireGpuFromEnv(),
  };
  const host = createEmbeddedHost({ store: createMemoryStateStore(), logger, services });
  host.register(GpuStreamActor);
  host.register(EdgeActor);
  return host;
}

test('integration: 100K records published to JetStream are all processed once by the GpuStreamActor, metrics add up and device memory is freed', async () => {
  const host = hostWith();
  const id = 'e2e100k';
  const seen = new Uint8Array(100_000);
  let outputs = 0;
  const sub = transport.subscribe(streamSubjects.output(id), (data) => {
    for (const x of idsOf(data, 4)) seen[x]++;
    outputs += data.byteLength / 16;
  });
  const actor = actorProxy(host, 'GpuStreamActor', id);
  const st = await actor.invoke('start', { kernel: { type: 'registered', name: 'seq' } });
  expect(st.source).toBe('nats');
  await produce(
    id,
    Array.from({ length: 100 }, (_, i) => seqRecords(i * 1000, 1000)),
  );
  await waitFor(() => outputs >= 100_000, 30_000, '100K outputs');
  await waitFor(
    async () => (await transport.consumerInfo(`stream_${id}`)).ackPending === 0,
    10_000,
    'all acked',
  );
  await new Promise((r) => setTimeout(r, 100)); // a duplicate would arrive by now
  expect(outputs).toBe(100_000);
  expect(seen.every((c) => c === 1)).toBe(true);
  const m = await actor.invoke('metrics');
  expect(m).toMatchObject({
    totalItemsProcessed: 100_000,
    totalItemsFailed: 0,
    itemsReceived: 100_000,
    bufferCurrentSize: 0,
    gpuMemoryInUse: 0,
    totalItemsDropped: 0,
  });
  expect(m.totalBatchesProcessed).toBeGreaterThanOrEqual(10);
  expect(m.averageBatchSize).toBeCloseTo(100_000 / m.totalBatchesProcessed, 6);
  expect(m.p99LatencyMs).toBeGreaterThanOrEqual(m.p50LatencyMs);
  expect(m.currentThroughput).toBeGreaterThan(0);
  expect(m.lastProcessedTime).not.toBeNull();
  expect(await transport.consumerInfo(`stream_${id}`)).toEqual({ pending: 0, ackPending: 0 });
  await actor.invoke('stop');
  sub.unsubscribe();
  await host.stop();
});

test('integration: a fast producer and a slow consumer — pulling pauses at 90 %, resumes at 50 %, the buffer stays bounded and nothing is lost', async () => {
  const id = 'slow';
  const seen = new Uint8Array(60_000);
  let outputs = 0;
  const sub = transport.subscribe(streamSubjects.output(id), (data) => {
    for (const x of idsOf(data, 4)) seen[x]++;
    outputs += data.byteLength / 16;
  });
  const ex = fakeExecutor(seqKernel, { delayMs: 15 });
  let maxBuffered = 0;
  let pendingWhilePaused = 0;
  const p = createStreamProcessor({
    executor: ex,
    sink: transport.sink(id, { output: 16, input: 8 }),
    logger,
    config: {
      batch: { maxBatchSize: 1000, enableAdaptiveBatching: false },
      backpressure: { bufferCapacity: 5000 },
    },
    onEvent: (e) => {
      if (e.type === 'paused')
        void transport.consumerInfo(`stream_${id}`).then((i) => {
          pendingWhilePaused = Math.max(pendingWhilePaused, i.pending);
        });
    },
  });
  // the producer publishes everything first: JetStream holds what the consumer has not pulled
  await produce(
    id,
    Array.from({ length: 60 }, (_, i) => seqRecords(i * 1000, 1000)),
  );
  const src = await transport.attach(id, p, { maxMessagesPerPull: 8 });
  const timer = setInterval(() => {
    maxBuffered = Math.max(maxBuffered, p.buffer.size);
  }, 2);
  await waitFor(() => outputs >= 60_000, 30_000, '60K outputs');
  clearInterval(timer);
  await waitFor(
    async () => (await transport.consumerInfo(src.durable)).ackPending === 0,
    10_000,
    'all acked',
  );
  const m = p.metrics();
  const s = src.stats();
  expect(m.totalPauseCount).toBeGreaterThanOrEqual(1);
  expect(m.totalPauseDurationMs).toBeGreaterThan(0);
  expect(m.paused).toBe(false); // resumed
  expect(s.pullsWhilePaused).toBe(0);
  expect(s.pausedWaits).toBeGreaterThanOrEqual(1);
  expect(pendingWhilePaused).toBeGreaterThan(0); // the server still held messages: pulling had stopped
  expect(p.buffer.stats().highWater).toBeLessThanOrEqual(5000);
  expect(maxBuffered).toBeLessThanOrEqual(5000);
  expect(m.totalItemsDropped).toBe(0);
  expect(seen.every((c) => c === 1)).toBe(true);
  expect(s.acked).toBe(60);
  await src.stop();
  await p.stop();
  sub.unsubscribe();
});

test('integration: 1M telemetry samples are processed in sub-batches, aggregate exactly, and feed the EdgeActors', async () => {
  const host = hostWith();
  const id = 'tele1m';
  const edges = 8;
  const edgeIds = Array.from({ length: edges }, (_, e) => `edge${e}`);
  for (const e of edgeIds)
    await actorProxy(host, 'EdgeActor', e).invoke('configure', {
      url: `http://${e}.test`,
      kind: 'portal',
      flags: 0,
      maxParallel: 4,
    });
  const total = { samples: 0, bytes: 0 };
  const sub = transport.subscribe(streamSubjects.output(id), (data) => {
    for (const u of edgeUpdates(data)) {
      total.samples += u.samples;
      total.bytes += u.bytes;
    }
  });
  const actor = actorProxy(host, 'GpuStreamActor', id);
  await actor.invoke('start', { kernel: { type: 'edge-telemetry', edges, edgeIds } });
  const msgs: Uint8Array[] = [];
  let expectBytes = 0;
  for (let i = 0; i < 1000; i++) {
    const recs = Array.from({ length: 1000 }, (_, j) => ({
      edge: (i + j) % edges,
      ok: 1,
      bytes: 1_000_000 + j,
      firstByteUs: 2000 + j,
      transferUs: 50_000,
    }));
    for (const r of recs) expectBytes += r.bytes;
    msgs.push(telemetrySampleLayout.encode(recs));
  }
  await produce(id, msgs);
  await waitFor(
    async () => (await actor.invoke('metrics')).totalItemsProcessed >= 1_000_000,
    60_000,
    '1M processed',
  );
  await waitFor(() => total.samples >= 1_000_000, 10_000, 'all aggregates');
  const m = await actor.invoke('metrics');
  expect(total).toEqual({ samples: 1_000_000, bytes: expectBytes });
  expect(m.totalItemsProcessed).toBe(1_000_000);
  expect(m.totalBatchesProcessed).toBeGreaterThanOrEqual(100); // no batch above the max of 10,000
  expect(m.averageBatchSize).toBeLessThanOrEqual(10_000);
  expect(m.batchEfficiency).toBeCloseTo(m.averageBatchSize / 10_000, 9);
  const st = await actor.invoke('status');
  expect(st.edgeFeedErrors).toBe(0);
  const v = await actorProxy(host, 'EdgeActor', 'edge3').invoke('snapshot');
  expect(v.samples).toBeGreaterThan(0);
  expect(v.bandwidth).toBeGreaterThan((1_000_000 / 0.05) * 0.5);
  // the GPU (or CPU) output equals the CPU reference for one message
  const k = edgeTelemetryKernel(edges);
  expect(runCpu(k, msgs[0], 1000).outputCount).toBe(edges);
  await actor.invoke('stop');
  sub.unsubscribe();
  await host.stop();
});
