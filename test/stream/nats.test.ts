import { createSilentLogger } from '../../common/logger.js';
import { createEmbeddedHost, createMemoryStateStore } from '../../runtime/index.js';
import { EdgeActor, GpuStreamActor, type PortalServices } from '../../actors/index.js';
import type { GpuStreamKernelSpec } from '../../actors/gpu-stream-types.js';
import {
  createStreamProcessor,
  edgeTelemetryKernel,
  runCpu,
  UNKNOWN_EDGE,
  wordsOf,
  streamSubjects,
  telemetrySampleLayout,
} from '../../stream/index.js';
import { createNatsStreamTransport, type NatsStreamTransport } from '../../stream/index.js';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';
import type { GpuDeviceManager } from '../../gpu/index.js';
import { fakeExecutor, gpuOrSkip, idsOf, seqKernel, seqRecords, waitFor } from './fixtures.js';
import { streamRequireGpuFromEnv } from '../../cli/env.js';
import { actorProxy } from '../../actors/api.js';

const logger = createSilentLogger();
let server: TestNatsServer;
let transport: NatsStreamTransport;
// The adapter the actors run on; undefined only where none exists and none is required (then they run
// the CPU reference). Under PORTAL_REQUIRE_GPU=1 / CI=true a missing adapter fails here instead.
const gpu: GpuDeviceManager | undefined = await gpuOrSkip();
const expectedBackend = gpu ? 'gpu' : 'cpu';

beforeAll(async () => {
  server = await startNatsServer();
  transport = await createNatsStreamTransport({ servers: server.url, logger });
});
afterAll(async () => {
  await transport?.close();
  await server?.stop();
  await gpu?.close();
});

/** Per-edge totals of edge-telemetry samples: counts, exact sums, min/max first-byte time (µs). */
interface EdgeTotals {
  samples: number;
  ok: number;
  failed: number;
  bytes: number;
  firstByteUs: number;
  transferUs: number;
  minFirstByteUs: number;
  maxFirstByteUs: number;
}

function totalsOf(m: Map<number, EdgeTotals>, edge: number): EdgeTotals {
  let t = m.get(edge);
  if (!t) {
    t = {
      samples: 0,
      ok: 0,
      failed: 0,
      bytes: 0,
      firstByteUs: 0,
      transferUs: 0,
      minFirstByteUs: Infinity,
      maxFirstByteUs: -Infinity,
    };
    m.set(edge, t);
  }
  return t;
}

/** Folds EdgeAggregate records (edgeAggregateLayout: 12 u32 words) into per-edge totals. */
function foldAggregates(m: Map<number, EdgeTotals>, bytes: Uint8Array): void {
  const w = wordsOf(bytes);
  for (let o = 0; o < w.length; o += 12) {
    const t = totalsOf(m, w[o]);
    t.samples += w[o + 1];
    t.ok += w[o + 2];
    t.failed += w[o + 3];
    t.bytes += w[o + 5] * 65536 + w[o + 4];
    t.firstByteUs += w[o + 7] * 65536 + w[o + 6];
    t.transferUs += w[o + 9] * 65536 + w[o + 8];
    if (w[o + 2] > 0) {
      t.minFirstByteUs = Math.min(t.minFirstByteUs, w[o + 10]);
      t.maxFirstByteUs = Math.max(t.maxFirstByteUs, w[o + 11]);
    }
  }
}

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
    gpuDeviceManager: gpu,
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
  expect(st.backend).toBe(expectedBackend);
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
  // the batches ran where the status says: device memory was allocated per batch and is all freed again
  if (gpu) {
    expect(m).toMatchObject({ deviceType: 'GPU', deviceName: gpu.description });
    expect(m.totalGpuMemoryAllocated).toBeGreaterThan(0);
  } else {
    expect(m).toMatchObject({ deviceType: 'CPU', totalGpuMemoryAllocated: 0 });
  }
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
  const turns: Array<{ type: string; bufferSize: number }> = [];
  const p = createStreamProcessor({
    executor: ex,
    sink: transport.sink(id, { output: 16, input: 8 }),
    logger,
    config: {
      batch: { maxBatchSize: 1000, enableAdaptiveBatching: false },
      backpressure: { bufferCapacity: 5000 },
    },
    onEvent: (e) => {
      if (e.type === 'paused' || e.type === 'resumed') turns.push({ type: e.type, bufferSize: e.bufferSize });
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
  // the 90 % / 50 % points (capacity 5000): a pause comes at the push that reaches 4500 records (pushes never
  // overfill, so ≤ 5000); a resume at the batch that brings the buffer to 2500 or below, and batches take at
  // most 1000 records, so it finds more than 1500 (a resume at 0, or a pause at 4000, fails here)
  expect(turns.length).toBe(2 * m.totalPauseCount);
  turns.forEach((t, i) => expect(t.type).toBe(i % 2 === 0 ? 'paused' : 'resumed'));
  for (const t of turns)
    if (t.type === 'paused') {
      expect(t.bufferSize).toBeGreaterThanOrEqual(4500);
      expect(t.bufferSize).toBeLessThanOrEqual(5000);
    } else {
      expect(t.bufferSize).toBeLessThanOrEqual(2500);
      expect(t.bufferSize).toBeGreaterThan(1500);
    }
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
  // every aggregate the actor published, folded per edge (the sums are exact: 16-bit halves per batch)
  const got = new Map<number, EdgeTotals>();
  const sub = transport.subscribe(streamSubjects.output(id), (data) => foldAggregates(got, data));
  const actor = actorProxy(host, 'GpuStreamActor', id);
  const st0 = await actor.invoke('start', { kernel: { type: 'edge-telemetry', edges, edgeIds } });
  expect(st0.backend).toBe(expectedBackend);
  const msgs: Uint8Array[] = [];
  // the reference: the same totals computed from the records in plain JS (no kernel code)
  const want = new Map<number, EdgeTotals>();
  for (let i = 0; i < 1000; i++) {
    const recs = Array.from({ length: 1000 }, (_, j) => {
      const ok = (i * 7 + j) % 11 === 0 ? 0 : 1;
      return {
        edge: j === 999 ? edges + 3 : (i + j) % edges, // one sample per message names no known edge
        ok,
        bytes: ok ? 1_000_000 + j : 0,
        firstByteUs: 2000 + ((i * 31 + j * 17) % 5000),
        transferUs: 50_000 + (j % 100) * 10,
      };
    });
    for (const r of recs) {
      const t = totalsOf(want, r.edge < edges ? r.edge : UNKNOWN_EDGE);
      t.samples++;
      if (!r.ok) {
        t.failed++;
        continue;
      }
      t.ok++;
      t.bytes += r.bytes;
      t.firstByteUs += r.firstByteUs;
      t.transferUs += r.transferUs;
      t.minFirstByteUs = Math.min(t.minFirstByteUs, r.firstByteUs);
      t.maxFirstByteUs = Math.max(t.maxFirstByteUs, r.firstByteUs);
    }
    msgs.push(telemetrySampleLayout.encode(recs));
  }
  await produce(id, msgs);
  await waitFor(
    async () => (await actor.invoke('metrics')).totalItemsProcessed >= 1_000_000,
    60_000,
    '1M processed',
  );
  const samplesOf = (m: Map<number, EdgeTotals>): number =>
    [...m.values()].reduce((a, t) => a + t.samples, 0);
  await waitFor(() => samplesOf(got) >= 1_000_000, 10_000, 'all aggregates');
  const m = await actor.invoke('metrics');
  // the GPU (or CPU) output equals the reference, edge by edge
  expect(samplesOf(got)).toBe(1_000_000);
  expect(new Map([...got].sort((a, b) => a[0] - b[0]))).toEqual(
    new Map([...want].sort((a, b) => a[0] - b[0])),
  );
  expect(m.totalItemsProcessed).toBe(1_000_000);
  expect(m.deviceType).toBe(gpu ? 'GPU' : 'CPU');
  expect(m.totalBatchesProcessed).toBeGreaterThanOrEqual(100); // no batch above the max of 10,000
  expect(m.averageBatchSize).toBeLessThanOrEqual(10_000);
  expect(m.batchEfficiency).toBeCloseTo(m.averageBatchSize / 10_000, 9);
  const st = await actor.invoke('status');
  expect(st.edgeFeedErrors).toBe(0);
  const v = await actorProxy(host, 'EdgeActor', 'edge3').invoke('snapshot');
  expect(v.samples).toBeGreaterThan(0);
  expect(v.bandwidth).toBeGreaterThan((1_000_000 / 0.05) * 0.5);
  // and the kernel's own CPU reference agrees with the plain-JS totals for one message
  const one = new Map<number, EdgeTotals>();
  foldAggregates(one, runCpu(edgeTelemetryKernel(edges), msgs[0], 1000).output);
  expect(samplesOf(one)).toBe(1000);
  expect(one.get(UNKNOWN_EDGE)?.samples).toBe(1);
  await actor.invoke('stop');
  sub.unsubscribe();
  await host.stop();
});

test("integration: a stream that feeds EdgeActors takes records only from JetStream — push is refused (403) and a direct source is refused at start — so no caller of push sets an edge's health", async () => {
  const host = hostWith();
  const edgeId = 'fed-edge';
  await actorProxy(host, 'EdgeActor', edgeId).invoke('configure', {
    url: 'http://fed-edge.test',
    kind: 'portal',
    flags: 0,
    maxParallel: 4,
  });
  const view = async () => {
    const v = await actorProxy(host, 'EdgeActor', edgeId).invoke('snapshot');
    return { available: v.available, samples: v.samples, successRate: v.successRate };
  };
  const before = await view();
  const failures = telemetrySampleLayout.encode(
    Array.from({ length: 1000 }, () => ({ edge: 0, ok: 0, bytes: 0, firstByteUs: 0, transferUs: 0 })),
  );
  const kernel: GpuStreamKernelSpec = { type: 'edge-telemetry', edges: 1, edgeIds: [edgeId] };
  // source direct: its records could only come from push
  const direct = actorProxy(host, 'GpuStreamActor', 'fed-direct');
  await expect(direct.invoke('start', { kernel, source: 'direct', backend: 'cpu' })).rejects.toMatchObject({
    code: 'PORTAL_CONFIG_INVALID',
    message: expect.stringMatching(/kernel\.edgeIds: .*only from JetStream/),
  });
  // source nats: push is refused, JetStream records feed the edge
  const fed = actorProxy(host, 'GpuStreamActor', 'fed-nats');
  await fed.invoke('start', { kernel, source: 'nats', backend: 'cpu' });
  await expect(
    fed.invoke('push', { records: Buffer.from(failures).toString('base64') }),
  ).rejects.toMatchObject({
    code: 'PORTAL_ACTOR_METHOD_FORBIDDEN',
  });
  await fed.invoke('drain');
  expect(await view()).toEqual(before);
  await produce('fed-nats', [failures]);
  await waitFor(async () => (await fed.invoke('metrics')).totalItemsProcessed >= 1000, 20_000, 'processed');
  await fed.invoke('drain');
  // the failures from JetStream reached the edge (the same records push could not deliver)
  await waitFor(async () => (await view()).successRate < before.successRate, 10_000, 'the edge fed');
  expect((await fed.invoke('status')).edgeFeedErrors).toBe(0);
  await fed.invoke('stop');
  await host.stop();
});
