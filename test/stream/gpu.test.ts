import {
  createKernelExecutor,
  createStreamGpuRunner,
  createStreamProcessor,
  defineUserKernel,
  edgeTelemetryKernel,
  edgeUpdates,
  runCpu,
  telemetrySampleLayout,
  type StreamGpuRunner,
} from '../../stream/index.js';
import type { GpuDeviceManager } from '../../gpu/index.js';
import { collectSink, gpuOrSkip, seqKernel, seqRecords } from './fixtures.js';

const mgr: GpuDeviceManager | undefined = await gpuOrSkip();
const d = mgr ? test : test.skip;
let runner: StreamGpuRunner | undefined;
beforeAll(async () => {
  if (mgr) runner = await createStreamGpuRunner({ deviceManager: mgr });
});
afterAll(async () => {
  await runner?.close();
  await mgr?.close();
});

function telemetry(n: number, edges: number, seed: number): Uint8Array {
  let s = seed;
  const r = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
  return telemetrySampleLayout.encode(
    Array.from({ length: n }, () => ({
      edge: r() % (edges + 3),
      ok: r() % 5 === 0 ? 0 : 1,
      bytes: r() >>> 0,
      firstByteUs: r() % 2_000_000,
      transferUs: r() >>> 1,
    })),
  );
}

d.each([
  ['1 record, 1 edge', 1, 1],
  ['1000 records over 10 edges (with unknown edges)', 1000, 10],
  ['65,536 records (the exactness bound) over 100 edges, values up to 2^32', 65_536, 100],
  ['20,000 records on 3 edges (heavy atomic contention)', 20_000, 3],
])('edge telemetry: the GPU equals the CPU reference bit for bit for %s', async (_name, n, edges) => {
  const k = edgeTelemetryKernel(edges);
  const input = telemetry(n, edges, n + edges);
  const gpu = await runner!.run(k, input, n);
  const cpu = runCpu(k, input, n);
  expect(gpu.backend).toBe('gpu');
  expect(Buffer.from(gpu.output).equals(Buffer.from(cpu.output))).toBe(true);
  const ups = edgeUpdates(gpu.output);
  expect(ups.reduce((a, u) => a + u.samples, 0)).toBe(n);
  // exact 64-bit sums against a direct JS sum
  const recs = telemetrySampleLayout.decode(input);
  const e0 = recs.filter((x) => x.edge === 0 && x.ok === 1);
  if (e0.length) expect(ups.find((u) => u.edge === 0)?.bytes).toBe(e0.reduce((a, x) => a + x.bytes, 0));
  expect(runner!.residentBytes).toBe(0);
});

d('user kernel: the GPU equals the CPU reference for a declared layout with u32 and f32 fields', async () => {
  const input = seqRecords(0xfffff000, 10_000);
  const gpu = await runner!.run(seqKernel, input, 10_000);
  const cpu = runCpu(seqKernel, input, 10_000);
  expect(Buffer.from(gpu.output).equals(Buffer.from(cpu.output))).toBe(true);
});

d(
  'user kernel: WGSL that does not compile fails the batch with PORTAL_STREAM_KERNEL_FAILED and the runner keeps working',
  async () => {
    const bad = defineUserKernel({
      name: 'bad',
      input: { name: 'A', fields: [{ name: 'x', type: 'u32' }] },
      output: { name: 'B', fields: [{ name: 'y', type: 'u32' }] },
      wgsl: 'fn process(r: A) -> B { return B(r.x + nope); }',
    });
    await expect(runner!.run(bad, new Uint8Array(16), 4)).rejects.toMatchObject({
      code: 'PORTAL_STREAM_KERNEL_FAILED',
    });
    const sink = collectSink();
    const p = createStreamProcessor({
      executor: await createKernelExecutor({ kernel: bad, deviceManager: mgr }),
      sink,
    });
    await p.push(new Uint8Array(400));
    await p.drain();
    expect(sink.failures[0].error.code).toBe('PORTAL_STREAM_KERNEL_FAILED');
    await p.stop();
    const ok = await runner!.run(seqKernel, seqRecords(0, 64), 64);
    expect(ok.outputCount).toBe(64);
  },
);

d(
  'gpu processor: batches run on the device, metrics name it, and device memory is freed after every batch',
  async () => {
    const sink = collectSink();
    const ex = await createKernelExecutor({ kernel: seqKernel, prefer: 'gpu', deviceManager: mgr });
    const p = createStreamProcessor({ executor: ex, sink, config: { batch: { maxBatchSize: 4096 } } });
    await p.push(seqRecords(0, 20_000));
    await p.drain();
    const m = await p.stop();
    expect(m.deviceType).toBe('GPU');
    expect(m.deviceName).toBe(mgr!.description);
    expect(m.totalItemsProcessed).toBe(20_000);
    expect(m.totalKernelExecutionTimeMs).toBeGreaterThan(0);
    expect(m.totalMemoryTransferTimeMs).toBeGreaterThan(0);
    expect(m.totalGpuMemoryAllocated).toBeGreaterThan(0);
    expect(m.gpuMemoryInUse).toBe(0);
    const cpu = runCpu(seqKernel, seqRecords(0, 20_000), 20_000);
    expect(Buffer.from(Buffer.concat(sink.outputs)).equals(Buffer.from(cpu.output))).toBe(true);
  },
);
