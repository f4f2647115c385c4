import { PortalError } from '../../common/errors.js';
import { Registry } from 'prom-client';
import { ManualClock } from '../../common/clock.js';
import {
  AdaptiveBatchSizer,
  BackpressureBuffer,
  LogHistogram,
  SlidingWindowRate,
  adaptBatchSize,
  createKernelExecutor,
  createStreamProcessor,
  defineLayout,
  edgeTelemetryKernel,
  optimalBatchSize,
  registerStreamMetrics,
  resolveStreamConfig,
  streamPromSamples,
  defaultBatchConfig,
  type PushTicket,
  type StreamEvent,
} from '../../stream/index.js';
import { collectSink, fakeExecutor, idsOf, seqKernel, seqRecords, waitFor } from './fixtures.js';

const bp = (o: Partial<ReturnType<typeof resolveStreamConfig>['backpressure']> = {}) =>
  resolveStreamConfig({ backpressure: o }).backpressure;
const flush = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
  await new Promise((r) => setImmediate(r));
};

describe('batch accumulation', () => {
  test('batching: a stream smaller than the min batch is flushed when the max wait passes, not before', async () => {
    const clock = new ManualClock();
    const sink = collectSink();
    const ex = fakeExecutor(seqKernel);
    const p = createStreamProcessor({
      executor: ex,
      sink,
      clock,
      config: { batch: { minBatchSize: 32, maxBatchWaitMs: 100 } },
    });
    await p.push(seqRecords(0, 10));
    await flush();
    clock.advance(99);
    await flush();
    expect(ex.runs).toEqual([]);
    clock.advance(1);
    await waitFor(() => sink.outCount === 10);
    expect(ex.runs).toEqual([10]);
    await p.stop();
  });

  test('batching: a stream larger than the max batch is split into batches no larger than the max', async () => {
    const sink = collectSink();
    const ex = fakeExecutor(seqKernel);
    const p = createStreamProcessor({
      executor: ex,
      sink,
      config: { batch: { maxBatchSize: 1000, enableAdaptiveBatching: false } },
    });
    await p.push(seqRecords(0, 5500));
    await p.drain();
    expect(ex.runs.every((n) => n <= 1000)).toBe(true);
    expect(ex.runs.reduce((a, b) => a + b, 0)).toBe(5500);
    expect(ex.runs.length).toBeGreaterThanOrEqual(6);
    expect(idsOf(Buffer.concat(sink.outputs), 4)).toEqual(Array.from({ length: 5500 }, (_, i) => i));
    await p.stop();
  });

  test('batching: exactly the min batch size is processed at once, without waiting for the timeout', async () => {
    const clock = new ManualClock();
    const sink = collectSink();
    const ex = fakeExecutor(seqKernel);
    const p = createStreamProcessor({
      executor: ex,
      sink,
      clock,
      config: { batch: { minBatchSize: 32, maxBatchWaitMs: 100 } },
    });
    await p.push(seqRecords(0, 32));
    await waitFor(() => sink.outCount === 32);
    expect(clock.now()).toBe(0);
    expect(ex.runs).toEqual([32]);
    await p.stop();
  });

  test('batching: device memory bounds the batch size on a GPU, and adaptive sizing follows measured throughput', async () => {
    const cfg = { ...defaultBatchConfig };
    // 100 KB × 0.7 / (8 B in + 16 B out) = 2986 records
    expect(optimalBatchSize(cfg, { backend: 'gpu', deviceMemoryBytes: 100_000, bytesPerRecord: 24 })).toBe(
      2916,
    );
    expect(optimalBatchSize(cfg, { backend: 'gpu', deviceMemoryBytes: 1e12, bytesPerRecord: 24 })).toBe(
      10_000,
    );
    expect(optimalBatchSize(cfg, { backend: 'gpu', deviceMemoryBytes: 100, bytesPerRecord: 24 })).toBe(32);
    const ex = fakeExecutor(seqKernel, { backend: 'gpu' });
    const p = createStreamProcessor({ executor: ex, sink: collectSink(), deviceMemoryBytes: 100_000 });
    expect(p.sizer.current).toBe(2916);
    await p.stop();
    // the seed's rule: +20 % when throughput rose by > 10 %, −20 % when it fell by > 10 %
    expect(adaptBatchSize(1000, 120, 100, 32, 10_000)).toBe(1200);
    expect(adaptBatchSize(1000, 80, 100, 32, 10_000)).toBe(800);
    expect(adaptBatchSize(1000, 105, 100, 32, 10_000)).toBe(1000);
    const s = new AdaptiveBatchSizer(cfg, 1000, 1);
    s.observe(1000, 10); // 100/ms
    s.observe(1000, 5); // 200/ms: grow
    expect(s.current).toBe(1000); // ceiling is the memory bound
    const s2 = new AdaptiveBatchSizer(cfg, 5000, 1);
    s2.observe(5000, 10);
    s2.observe(5000, 100); // throughput fell tenfold: shrink
    expect(s2.current).toBe(4000);
    s2.observe(4000, 10); // rose: grow back
    expect(s2.current).toBe(4800);
  });

  test('batching: on the CPU fallback the batch size is the max batch size (capped by the kernel)', async () => {
    const ex = await createKernelExecutor({ kernel: seqKernel, prefer: 'cpu' });
    expect(ex.backend).toBe('cpu');
    const p = createStreamProcessor({
      executor: ex,
      sink: collectSink(),
      config: { batch: { maxBatchSize: 7777 } },
    });
    expect(p.sizer.current).toBe(7777);
    expect(p.metrics().deviceType).toBe('CPU');
    await p.stop();
    const ex2 = await createKernelExecutor({ kernel: edgeTelemetryKernel(4), prefer: 'cpu' });
    const p2 = createStreamProcessor({
      executor: ex2,
      sink: collectSink(),
      config: { batch: { maxBatchSize: 1_000_000 } },
    });
    expect(p2.sizer.current).toBe(65_536);
    await p2.stop();
  });
});

describe('backpressure', () => {
  test('backpressure: the buffer pauses when it reaches the pause threshold', async () => {
    const b = new BackpressureBuffer(bp({ bufferCapacity: 100 }), 8, new ManualClock());
    await b.push(seqRecords(0, 89));
    expect(b.paused).toBe(false);
    expect(b.roomBeforePause).toBe(1);
    await b.push(seqRecords(89, 1));
    expect(b.paused).toBe(true);
    expect(b.stats().pauseCount).toBe(1);
  });

  test('backpressure: the buffer resumes at the resume threshold and counts the pause duration', async () => {
    const clock = new ManualClock();
    const b = new BackpressureBuffer(bp({ bufferCapacity: 100 }), 8, clock);
    await b.push(seqRecords(0, 95));
    let resumed = false;
    void b.whenResumed().then(() => {
      resumed = true;
    });
    clock.advance(250);
    b.take(40); // 55 left: still above 50
    await flush();
    expect(b.paused).toBe(true);
    expect(resumed).toBe(false);
    b.take(5); // 50: resume
    await flush();
    expect(resumed).toBe(true);
    expect(b.stats()).toMatchObject({ paused: false, pauseCount: 1, pauseDurationMs: 250 });
  });

  test('backpressure: a full buffer in drop-oldest mode drops the oldest records and counts every drop', async () => {
    const b = new BackpressureBuffer(
      bp({ bufferCapacity: 100, dropOldestOnFull: true }),
      8,
      new ManualClock(),
    );
    const first: PushTicket = { remaining: 80 };
    let firstSettled = false;
    first.onSettled = () => {
      firstSettled = true;
    };
    await b.push(seqRecords(0, 80), first);
    await b.push(seqRecords(80, 70));
    expect(b.stats().dropped).toBe(50);
    expect(b.size).toBe(100);
    const t = b.take(100);
    expect(idsOf(t.bytes, 2)).toEqual(Array.from({ length: 100 }, (_, i) => 50 + i));
    expect(firstSettled).toBe(false); // 30 of its records are still in the batch
    await b.push(seqRecords(150, 250)); // one push larger than the capacity: its own oldest go
    expect(b.stats().dropped).toBe(200);
    expect(idsOf(b.take(100).bytes, 2)[0]).toBe(300);
  });

  test('backpressure: a full buffer in block mode makes the producer wait and drops nothing', async () => {
    const b = new BackpressureBuffer(bp({ bufferCapacity: 100 }), 8, new ManualClock());
    await b.push(seqRecords(0, 100));
    let done = false;
    const pushing = b.push(seqRecords(100, 50)).then(() => {
      done = true;
    });
    await flush();
    expect(done).toBe(false);
    expect(b.stats().blockedPushes).toBe(1);
    const got: number[] = idsOf(b.take(30).bytes, 2);
    await flush();
    expect(done).toBe(false); // 30 of 50 went in
    got.push(...idsOf(b.take(100).bytes, 2));
    await pushing;
    got.push(...idsOf(b.take(100).bytes, 2));
    expect(got).toEqual(Array.from({ length: 150 }, (_, i) => i));
    expect(b.stats().dropped).toBe(0);
    expect(b.stats().highWater).toBe(100);
  });
});

describe('execution', () => {
  test("execution: a successful batch publishes the kernel's results for every record", async () => {
    const sink = collectSink();
    const p = createStreamProcessor({
      executor: await createKernelExecutor({ kernel: seqKernel, prefer: 'cpu' }),
      sink,
    });
    await p.push(seqRecords(0, 1000));
    await p.drain();
    const out = seqKernel.output.decode(Buffer.concat(sink.outputs));
    expect(out).toHaveLength(1000);
    expect(out[7]).toEqual({ id: 7, w: (7 * 7 + 3) * 3 + 1, x: ((7 * 7 + 3) ^ 7) >>> 0, f: (7 * 7 + 3) * 2 });
    const m = await p.stop();
    expect(m.totalItemsProcessed).toBe(1000);
    expect(m.totalItemsFailed).toBe(0);
  });

  test('execution: a kernel failure fails that batch with a typed error, reports its records, and later batches run', async () => {
    const sink = collectSink();
    const events: StreamEvent[] = [];
    const ex = fakeExecutor(seqKernel, {
      fail: (i) => (i === 1 ? new PortalError('PORTAL_STREAM_KERNEL_FAILED', 'boom') : undefined),
    });
    const p = createStreamProcessor({
      executor: ex,
      sink,
      config: { batch: { maxBatchSize: 100, enableAdaptiveBatching: false } },
      onEvent: (e) => events.push(e),
    });
    const settled: number[] = [];
    for (let k = 0; k < 5; k++)
      await p.push(seqRecords(k * 100, 100), { remaining: 100, onSettled: () => settled.push(k) });
    await p.drain();
    expect(sink.failures).toHaveLength(1);
    expect(sink.failures[0].error.code).toBe('PORTAL_STREAM_KERNEL_FAILED');
    expect(idsOf(sink.failures[0].bytes, 2)).toEqual(Array.from({ length: 100 }, (_, i) => 100 + i));
    expect(sink.outCount).toBe(400);
    expect(settled.sort()).toEqual([0, 1, 2, 3, 4]);
    expect(events.filter((e) => e.type === 'batch-failed')).toHaveLength(1);
    const m = await p.stop();
    expect(m).toMatchObject({
      totalItemsProcessed: 400,
      totalItemsFailed: 100,
      totalBatchesFailed: 1,
      failuresByCode: { PORTAL_STREAM_KERNEL_FAILED: 100 },
    });
  });

  test('execution: an allocation failure fails the batch, halves the batch size and the stream degrades gracefully', async () => {
    const sink = collectSink();
    const ex = fakeExecutor(seqKernel, {
      backend: 'gpu',
      fail: (i) => (i === 0 ? new PortalError('PORTAL_STREAM_ALLOCATION_FAILED', 'oom') : undefined),
    });
    const p = createStreamProcessor({
      executor: ex,
      sink,
      config: { batch: { maxBatchSize: 1000, enableAdaptiveBatching: false } },
    });
    await p.push(seqRecords(0, 3000));
    await p.drain();
    expect(ex.runs[0]).toBe(1000);
    expect(ex.runs.slice(1).every((n) => n <= 500)).toBe(true);
    expect(p.sizer.current).toBe(500);
    expect(sink.failures.map((f) => f.error.code)).toEqual(['PORTAL_STREAM_ALLOCATION_FAILED']);
    expect(sink.outCount).toBe(2000);
    await p.stop();
  });
});

describe('metrics', () => {
  test('metrics: p50 and p99 come from a histogram within its 1 % relative error', async () => {
    const h = new LogHistogram();
    for (let v = 1; v <= 1000; v++) h.record(v);
    expect(Math.abs(h.quantile(0.5) - 500) / 500).toBeLessThan(0.011);
    expect(Math.abs(h.quantile(0.99) - 990) / 990).toBeLessThan(0.011);
    expect(h.mean).toBeCloseTo(500.5, 6);
    expect(h.cumulative([10, 100, 10_000])).toEqual([expect.any(Number), expect.any(Number), 1000, 1000]);
    // item latency through a processor: 100 records waited 100 ms (flushed by timeout), 900 waited 0
    const clock = new ManualClock();
    const p = createStreamProcessor({
      executor: fakeExecutor(seqKernel),
      sink: collectSink(),
      clock,
      config: { batch: { minBatchSize: 1000, maxBatchWaitMs: 100 } },
    });
    await p.push(seqRecords(0, 100));
    clock.advance(100);
    await waitFor(() => p.metrics().totalItemsProcessed === 100);
    await p.push(seqRecords(100, 1000));
    await waitFor(() => p.metrics().totalItemsProcessed === 1100);
    const m = p.metrics();
    expect(m.p50LatencyMs).toBe(0);
    expect(Math.abs(m.p99LatencyMs - 100)).toBeLessThan(1.01);
    expect(m.averageLatencyMs).toBeCloseTo((100 * 100) / 1100, 6);
    await p.stop();
  });

  test('metrics: throughput is items per second over a 10 s sliding window', () => {
    const r = new SlidingWindowRate(0);
    for (let t = 0; t < 10_000; t += 100) r.record(1000, t); // 10k items/s for 10 s
    expect(r.rate(9_999)).toBeCloseTo(10_000, -1);
    expect(r.rate(15_000)).toBe(4_900); // records of t ≤ 5 s have aged out: slots 5.1 s … 9.9 s remain
    expect(r.rate(30_000)).toBe(0);
    const early = new SlidingWindowRate(0);
    early.record(500, 0);
    early.record(500, 400);
    expect(early.rate(500)).toBeCloseTo(2000, 6); // 1000 items in 0.5 s
  });

  test('metrics: kernel efficiency is kernel time over kernel plus transfer time, with bandwidth and batch efficiency', async () => {
    const ex = fakeExecutor(seqKernel, { backend: 'gpu', kernelMs: 3, transferMs: 1 });
    const p = createStreamProcessor({
      executor: ex,
      sink: collectSink(),
      config: { batch: { maxBatchSize: 500, enableAdaptiveBatching: false } },
    });
    await p.push(seqRecords(0, 1000));
    await p.drain();
    const m = p.metrics();
    expect(m.kernelEfficiency).toBeCloseTo(0.75, 9);
    expect(m.totalKernelExecutionTimeMs).toBe(6);
    expect(m.totalMemoryTransferTimeMs).toBe(2);
    expect(m.memoryBandwidthMBps).toBeCloseTo(8000 / 1e6 / 0.002, 6);
    expect(m.totalBatchesProcessed).toBe(2);
    expect(m.batchEfficiency).toBe(1);
    expect(m.totalGpuMemoryAllocated).toBe(2000);
    await p.stop();
  });
});

describe('stream extras', () => {
  test('layout: records round-trip, cut records and bad declarations are typed errors', () => {
    const l = defineLayout({
      name: 'R',
      fields: [
        { name: 'a', type: 'u32' },
        { name: 'b', type: 'i32' },
        { name: 'c', type: 'f32' },
      ],
    });
    expect(l.recordBytes).toBe(12);
    const bytes = l.encode([
      { a: 1, b: -2, c: 0.5 },
      { a: 0xffffffff, b: 7, c: 3 },
    ]);
    expect(l.decode(bytes)).toEqual([
      { a: 1, b: -2, c: 0.5 },
      { a: 0xffffffff, b: 7, c: 3 },
    ]);
    expect(l.wgslStruct()).toContain('b: i32,');
    expect(() => l.count(new Uint8Array(13))).toThrow(
      expect.objectContaining({ code: 'PORTAL_STREAM_BAD_RECORDS' }),
    );
    expect(() => defineLayout({ name: 'R', fields: [{ name: 'a', type: 'u64' as never }] })).toThrow(
      expect.objectContaining({ code: 'PORTAL_STREAM_BAD_LAYOUT' }),
    );
    expect(() => resolveStreamConfig({ backpressure: { resumeThreshold: 0.95 } })).toThrow(/resumeThreshold/);
  });

  test('prometheus: every seed metric is exported as samples and through a prom-client registry', async () => {
    const p = createStreamProcessor({ executor: fakeExecutor(seqKernel), sink: collectSink() });
    await p.push(seqRecords(0, 100));
    await p.drain();
    const samples = streamPromSamples(p.metrics(), { stream: 's1' });
    expect(samples.find((s) => s.name === 'portal_stream_items_processed_total')?.value).toBe(100);
    const reg = new Registry();
    const remove = registerStreamMetrics(reg, () => [{ labels: { stream: 's1' }, metrics: p.metrics() }]);
    const text = await reg.metrics();
    expect(text).toMatch(/portal_stream_items_processed_total\{stream="s1",device_type="CPU"\} 100/);
    expect(text).toMatch(/portal_stream_latency_p99_seconds/);
    expect(text).toMatch(/portal_stream_buffer_capacity_items\{[^}]*\} 100000/);
    remove();
    expect((await reg.metrics()).trim()).toBe('');
    await p.stop();
  });

  test('no loss: with random push sizes, random kernel failures and drops off, every record is published or reported exactly once', async () => {
    let seed = 42;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    const sink = collectSink();
    const ex = fakeExecutor(seqKernel, {
      fail: () => (rnd() < 0.1 ? new PortalError('PORTAL_STREAM_KERNEL_FAILED', 'random') : undefined),
    });
    const p = createStreamProcessor({
      executor: ex,
      sink,
      config: {
        batch: { minBatchSize: 8, maxBatchSize: 300, maxBatchWaitMs: 1 },
        backpressure: { bufferCapacity: 1000 },
      },
    });
    let id = 0;
    let settledRecords = 0;
    const pushes: Promise<void>[] = [];
    while (id < 50_000) {
      const n = 1 + Math.floor(rnd() * 400);
      const t: PushTicket = {
        remaining: n,
        onSettled: () => {
          settledRecords += n;
        },
      };
      pushes.push(p.push(seqRecords(id, n), t));
      id += n;
      if (rnd() < 0.3) await Promise.all(pushes.splice(0));
    }
    await Promise.all(pushes);
    await p.drain();
    const seen = new Uint8Array(id);
    for (const o of sink.outputs) for (const x of idsOf(o, 4)) seen[x]++;
    for (const f of sink.failures) for (const x of idsOf(f.bytes, 2)) seen[x]++;
    expect(seen.every((c) => c === 1)).toBe(true);
    expect(settledRecords).toBe(id);
    const m = await p.stop();
    expect(m.totalItemsProcessed + m.totalItemsFailed).toBe(id);
    expect(m.bufferCurrentSize).toBe(0);
    expect(p.buffer.stats().highWater).toBeLessThanOrEqual(1000);
  });
});
