import { ChunkScheduler, type TickResult } from '../../scheduler/index.js';
import type { GpuDeviceManager } from '../../gpu/index.js';
import {
  createCpuTickEngine,
  createTickEngine,
  createWebGpuTickEngine,
  isSoftwareAdapter,
  type TickEngine,
} from '../../engine/index.js';
import { gpuOrSkip, rng, snapshot } from '../gpu/fixtures.js';

const mgr: GpuDeviceManager | undefined = await gpuOrSkip();
const t_ = mgr ? test : test.skip;
afterAll(async () => {
  await mgr?.close();
});

/** Two identical schedulers are built from the same seed. */
function build(seed: number, n: number, e: number): ChunkScheduler {
  const r = rng(seed);
  const s = new ChunkScheduler(
    { chunks: n, chunkBytes: 1 << 20, edgeCapacity: e },
    { maxDispatchPerTick: 64, endgameChunks: 16 },
  );
  for (let x = 0; x < e; x++)
    s.updateEdge(x, {
      bandwidth: (1 + (r() % 50)) * 1e6,
      rtt: r() % 40,
      health: 0.5 + (r() % 50) / 100,
      available: r() % 8 !== 0,
      maxParallel: 1 + (r() % 6),
      timeoutMs: 200 + (r() % 400),
      flags: r() % 6 === 0 ? 1 : 0,
    });
  for (let c = 0; c < n; c++) for (let q = 0; q < 6; q++) s.setAvailability(c, r() % e, true);
  for (let c = 0; c < n; c += 97) s.setPriority(c, 1 + (c % 3));
  return s;
}

function view(r: TickResult): unknown {
  const { phaseMs: _p, ...rest } = r;
  return rest;
}

/** Drives `cpu` and `gpu` schedulers through the same events; asserts identical outputs each tick. */
interface Totals {
  dispatched: number;
  cancels: number;
  failed: number;
  failovers: number;
  moved: number;
  spilled: number;
  hedges: number;
}

async function lockstep(
  engine: TickEngine,
  seed: number,
  n: number,
  e: number,
  ticks: number,
  between?: (tick: number) => Promise<void>,
): Promise<Totals> {
  const a = build(seed, n, e);
  const b = build(seed, n, e);
  const cpu = createCpuTickEngine();
  const ev = rng(seed * 31 + 1);
  const tot: Totals = { dispatched: 0, cancels: 0, failed: 0, failovers: 0, moved: 0, spilled: 0, hedges: 0 };
  for (let i = 0; i < ticks; i++) {
    await between?.(i);
    const now = i * 50;
    const ra = cpu.runTick(a, now) as TickResult;
    const rb = await engine.runTick(b, now);
    expect(view(rb)).toEqual(view(ra));
    expect(snapshot(b.chunks, b.edges)).toEqual(snapshot(a.chunks, a.edges));
    expect(b.counters).toEqual(a.counters);
    expect(b.progress()).toEqual(a.progress());
    tot.dispatched += ra.dispatch.length;
    tot.cancels += ra.cancels.length;
    tot.failed += ra.failed;
    tot.moved += ra.moved;
    tot.hedges += ra.hedges;
    tot.failovers += ra.failover.backup + ra.failover.recomputed + ra.failover.parked + ra.failover.permanent;
    // the same reports and telemetry for both
    for (const d of ra.dispatch) {
      const x = ev() % 20;
      if (x < 12)
        for (const s of [a, b]) s.report({ chunk: d.chunk, attempt: d.attempt, edge: d.edge, ok: true });
      else if (x < 15)
        for (const s of [a, b])
          s.report({
            chunk: d.chunk,
            attempt: d.attempt,
            edge: d.edge,
            ok: false,
            reason: x === 14 ? 'corrupt' : 'http',
          });
      // else: no report; it times out
    }
    const y = ev() % 10;
    const edge = ev() % e;
    if (y === 0) for (const s of [a, b]) s.updateEdge(edge, { available: s.edges.available[edge] === 0 });
    else if (y === 1) for (const s of [a, b]) s.updateEdge(edge, { bandwidth: s.edges.bandwidth[edge] * 2 });
    else if (y < 5) {
      const c = ev() % n;
      const on = ev() % 2 === 0;
      for (const s of [a, b]) s.setAvailability(c, edge, on);
    }
    if (ev() % 7 === 0) {
      const c = ev() % n;
      const p = ev() % 5;
      for (const s of [a, b]) s.setPriority(c, p);
    }
  }
  expect(b.counters).toEqual(a.counters);
  tot.spilled = a.counters.spilled;
  return tot;
}

t_(
  "engine: a WebGPU tick engine gives the CPU engine's dispatches and tables over many ticks (33 edges, partitions of 256)",
  async () => {
    const engine = await createWebGpuTickEngine({
      deviceManager: mgr,
      minGpuChunks: 0,
      maxPartitionChunks: 256,
    });
    expect(engine.backend).toMatch(/^webgpu:/);
    const tot = await lockstep(engine, 5, 3000, 33, 60);
    expect(tot.dispatched).toBeGreaterThan(100);
    const st = engine.stats();
    expect(st.gpuTicks).toBe(60);
    expect(st.fallbacks).toBe(0);
    expect(st.uploadedBytes).toBeGreaterThan(0);
    await engine.close();
  },
  120_000,
);

t_(
  'engine: every phase of the whole tick runs on the GPU — rank, detect, failover, balance, dispatch — with identical dispatches, cancels, counters and tables over windows of 3 chunks',
  async () => {
    // small window: dispatch and balance cross many GPU compaction windows; overloaded edges make load_balance move chunks
    const engine = await createWebGpuTickEngine({ deviceManager: mgr, minGpuChunks: 0, orderedWindow: 3 });
    const tot = await lockstep(engine, 21, 2000, 40, 50);
    expect(tot.moved).toBeGreaterThan(0);
    const st = engine.stats();
    expect(st.fallbacks).toBe(0);
    expect(st.gpuTicks).toBe(50);
    expect(st.gpuPhases!.rank).toBe(50);
    expect(st.gpuPhases!.detect).toBe(50);
    expect(st.gpuPhases!.balance).toBe(50);
    expect(st.gpuPhases!.dispatch).toBe(50);
    expect(st.gpuPhases!.failover).toBeGreaterThan(5);
    expect(tot.dispatched).toBeGreaterThan(200);
    expect(tot.failed).toBeGreaterThan(10);
    expect(tot.cancels).toBeGreaterThan(10);
    expect(tot.spilled).toBeGreaterThan(0);
    await engine.close();
  },
  120_000,
);

t_(
  'engine: 130 edges and a dirty-list threshold give identical results too',
  async () => {
    const engine = await createWebGpuTickEngine({ deviceManager: mgr, minGpuChunks: 3 });
    await lockstep(engine, 9, 1500, 130, 40);
    expect(engine.stats().gpuTicks).toBeGreaterThan(0);
    await engine.close();
  },
  120_000,
);

t_(
  'engine: a lost device falls back to the CPU, is counted, and recovers on a later tick with identical results',
  async () => {
    const { createDeviceManager } = await import('../../gpu/index.js');
    const own = await createDeviceManager();
    const engine = await createWebGpuTickEngine({
      deviceManager: own,
      minGpuChunks: 0,
      recoverIntervalMs: 0,
    });
    const backends: string[] = [];
    await lockstep(engine, 3, 800, 20, 12, async (tick) => {
      if (tick === 4) {
        (await own.acquire()).destroy();
        for (let i = 0; i < 50 && own.state === 'ready'; i++) await new Promise((r) => setTimeout(r, 10));
        expect(own.state).toBe('lost');
        expect(engine.backend).toBe('cpu');
      }
      backends.push(engine.backend);
    });
    const st = engine.stats();
    expect(st.deviceLosses).toBe(1);
    expect(st.recoveries).toBe(1);
    expect(engine.backend).toMatch(/^webgpu:/);
    expect(backends[4]).toBe('cpu');
    await engine.close();
    await own.close();
  },
  120_000,
);

t_(
  'engine: createTickEngine runs WebGPU when asked, keeps the CPU on a software adapter for auto, and the CPU when asked',
  async () => {
    const gpu = await createTickEngine({ prefer: 'webgpu', requireGpu: true });
    expect(gpu.backend).toMatch(/^webgpu:/);
    const software = isSoftwareAdapter(gpu.backend);
    await gpu.close();
    const auto = await createTickEngine({ prefer: 'auto' });
    expect(auto.backend).toMatch(software ? /^cpu(:\d+ threads)?$/ : /^webgpu:/);
    await auto.close();
    const cpu = await createTickEngine({ prefer: 'cpu', cpuThreads: 1 });
    expect(cpu.backend).toBe('cpu');
    expect(cpu.sharedMemory).toBeFalsy();
    const threaded = await createTickEngine({ prefer: 'cpu', cpuThreads: 3 });
    expect(threaded.backend).toBe('cpu:3 threads');
    expect(threaded.sharedMemory).toBe(true);
    await threaded.close();
    await expect(createTickEngine({ prefer: 'cpu', cpuThreads: 0 })).rejects.toMatchObject({
      code: 'PORTAL_CONFIG_INVALID',
    });
  },
);

test('engine: software adapters are recognised by their description', () => {
  expect(isSoftwareAdapter('webgpu:llvmpipe: Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6) 0.0.1')).toBe(true);
  expect(isSoftwareAdapter('webgpu:SwiftShader Device (Subzero)')).toBe(true);
  expect(isSoftwareAdapter('webgpu:NVIDIA H100 80GB HBM3')).toBe(false);
});
