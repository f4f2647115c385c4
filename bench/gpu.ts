/**
 * GPU benchmark: per-kernel and whole-tick times (median, p99) and achieved bytes/s of the WebGPU
 * kernels beside the CPU reference in the same run, for chunks × edges, with peak RSS. Prints a
 * markdown table with the machine, adapter and date. Whole-tick rows run the same scheduler
 * through the CPU engine, the WebGPU engine with every phase on the GPU, and (full re-rank) the
 * WebGPU engine with only the rank phase on the GPU, and fail if their dispatch lists differ.
 * Run: `npm run bench:gpu [-- --sizes 100000,1000000,10000000 --edges 10,50,100 --iterations 7
 * --only kernels|tick --json out.json]`.
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import {
  ChunkScheduler,
  ChunkStatus,
  type TickResult,
  detectFailures,
  failoverAssign,
  generateDispatch,
  rankChunks,
  rankEdges,
} from '../scheduler/index.js';
import {
  createBufferManager,
  createDeviceManager,
  createProgramCache,
  detectFailuresGpu,
  failoverAssignGpu,
  generateDispatchGpu,
  kBestGpu,
  type GpuContext,
  type GpuDeviceManager,
} from '../gpu/index.js';
import { createCpuTickEngine, createWebGpuTickEngine, type TickEngine } from '../engine/index.js';
import { arg, xorshift, quantile } from './lib.js';
import { ensureXdgRuntimeDir } from '../cli/env.js';

let peakRss = 0;
const sampleRss = (): void => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
};

interface Row {
  chunks: number;
  edges: number;
  op: string;
  backend: string;
  medianMs: number;
  p99Ms: number;
  mbPerS: number;
  peakRssMiB: number;
}

function build(n: number, e: number, seed: number): ChunkScheduler {
  const s = new ChunkScheduler(
    { chunks: n, chunkBytes: 1 << 20, edgeCapacity: e },
    { maxDispatchPerTick: 4096 },
  );
  const rnd = xorshift(seed);
  for (let x = 0; x < e; x++)
    s.updateEdge(x, {
      bandwidth: (5 + (rnd() % 95)) * 1e6,
      rtt: 5 + (rnd() % 80),
      health: 0.5 + (rnd() % 50) / 100,
      available: true,
      maxParallel: 16,
      timeoutMs: 5000,
    });
  const t = s.chunks;
  const reps = Math.min(e, 10);
  for (let c = 0; c < n; c++)
    for (let r = 0; r < reps; r++) {
      const x = rnd() % e;
      t.candidates[c * t.words + (x >>> 5)] |= 1 << (x & 31);
    }
  s.requestFullRerank();
  return s;
}

async function time(iterations: number, fn: () => unknown): Promise<number[]> {
  const xs: number[] = [];
  await fn(); // warm-up (pipeline compile, first upload)
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    await fn();
    xs.push(performance.now() - t0);
    sampleRss();
  }
  return xs;
}

type Push = (n: number, e: number, op: string, backend: string, xs: number[], bytes: number) => void;

/**
 * Whole ticks of one scheduler per engine, the same events for each: `full` re-ranks every chunk
 * each tick; `incremental` is the steady state (between ticks 90% of the last dispatches complete,
 * 5% fail, the rest time out later; only their chunks are dirty). Throws when an engine's
 * dispatches differ from the CPU engine's.
 */
async function wholeTicks(
  mgr: GpuDeviceManager,
  n: number,
  e: number,
  iterations: number,
  push: Push,
): Promise<void> {
  for (const mode of ['full', 'incremental'] as const) {
    const engines: Array<[string, () => Promise<TickEngine>]> = [
      ['cpu', async () => createCpuTickEngine()],
      ['webgpu (all phases)', () => createWebGpuTickEngine({ deviceManager: mgr, minGpuChunks: 0 })],
    ];
    if (mode === 'full')
      engines.push([
        'webgpu (rank only)',
        () =>
          createWebGpuTickEngine({
            deviceManager: mgr,
            phases: { detect: false, failover: false, balance: false, dispatch: false },
          }),
      ]);
    let reference: string[] | undefined;
    for (const [name, make] of engines) {
      const engine = await make();
      const s = build(n, e, n ^ (e << 20));
      const ev = xorshift(77);
      const xs: number[] = [];
      const sig: string[] = [];
      const phases: TickResult['phaseMs'][] = [];
      let now = 0;
      let last = await engine.runTick(s, (now += 50)); // warm-up: first full rank, pipelines, uploads
      for (let i = 0; i < iterations + 1; i++) {
        for (const d of last.dispatch) {
          const x = ev() % 20;
          if (x < 18) s.report({ chunk: d.chunk, attempt: d.attempt, edge: d.edge, ok: true });
          else if (x === 18)
            s.report({ chunk: d.chunk, attempt: d.attempt, edge: d.edge, ok: false, reason: 'http' });
        }
        if (mode === 'full') s.requestFullRerank();
        const t0 = performance.now();
        last = await engine.runTick(s, (now += 50));
        if (i > 0) {
          xs.push(performance.now() - t0);
          phases.push(last.phaseMs);
        } // the first timed tick still carries one-off uploads
        sampleRss();
        let h = 0;
        for (const d of last.dispatch) h = (Math.imul(h, 31) + d.chunk * 7 + d.edge) >>> 0;
        sig.push(`${last.dispatch.length}:${last.cancels.length}:${last.moved}:${h}`);
      }
      if (!reference) reference = sig;
      else if (sig.join() !== reference.join())
        throw new Error(`${name} ${mode} tick at ${n} × ${e}: dispatches differ from the CPU engine's`);
      process.stderr.write(
        `  phases (median ms): ${(['rank', 'detect', 'failover', 'balance', 'dispatch'] as const)
          .map(
            (k) =>
              `${k} ${quantile(
                phases.map((p) => p[k]),
                0.5,
              ).toFixed(1)}`,
          )
          .join(', ')}\n`,
      );
      push(
        n,
        e,
        `whole tick (${mode}${mode === 'full' ? ' re-rank' : ''})`,
        name,
        xs,
        mode === 'full' ? s.chunks.candidates.byteLength + n * s.chunks.k * 4 : 0,
      );
      await engine.close();
      (globalThis as { gc?: () => void }).gc?.();
    }
  }
}

async function main(): Promise<void> {
  const sizes = arg('sizes', '100000,1000000').split(',').map(Number);
  const edgeCounts = arg('edges', '10,50,100').split(',').map(Number);
  const iterations = Number(arg('iterations', '7'));
  const mgr = await createDeviceManager();
  const device = await mgr.acquire();
  const ctx: GpuContext = {
    device,
    buffers: createBufferManager(device),
    programs: createProgramCache(device),
    limits: mgr.limits,
  };
  const rows: Row[] = [];
  const push = (n: number, e: number, op: string, backend: string, xs: number[], bytes: number): void => {
    const med = quantile(xs, 0.5);
    rows.push({
      chunks: n,
      edges: e,
      op,
      backend,
      medianMs: med,
      p99Ms: quantile(xs, 0.99),
      mbPerS: bytes / (med / 1000) / 1e6,
      peakRssMiB: peakRss / 2 ** 20,
    });
    process.stderr.write(`${n} × ${e} ${op} ${backend}: median ${med.toFixed(1)} ms\n`);
  };
  const only = arg('only', '');
  for (const n of sizes) {
    for (const e of edgeCounts) {
      if (only !== 'kernels') await wholeTicks(mgr, n, e, iterations, push);
      if (only === 'tick') continue;
      const s = build(n, e, n ^ (e << 20));
      const t = s.chunks;
      sampleRss();
      const ranking = rankEdges(s.edges, s.chunkBytes, s.config);
      const kbBytes = t.candidates.byteLength + n * t.k * 4;
      push(n, e, 'k_best (all chunks)', 'cpu', await time(iterations, () => rankChunks(t, ranking)), kbBytes);
      push(
        n,
        e,
        'k_best (all chunks)',
        'webgpu',
        await time(iterations, () => kBestGpu(ctx, t, ranking)),
        kbBytes,
      );
      // in flight: 1% of chunks, half of them past their deadline
      const inflight: number[] = [];
      for (let c = 0; c < n; c += 100) {
        t.status[c] = ChunkStatus.IN_FLIGHT;
        t.assigned[c] = c % e;
        t.deadline[c] = c % 200 === 0 ? 10 : 1e6;
        inflight.push(c);
      }
      const ids = Uint32Array.from(inflight);
      const outIds = new Uint32Array(n);
      const outCauses = new Uint8Array(n);
      const dBytes = n * (1 + 2 + 4);
      push(
        n,
        e,
        'detect_failures',
        'cpu (in-flight list)',
        await time(iterations, () =>
          detectFailures(
            { ...t, status: t.status.slice() },
            s.edges,
            1000,
            ids,
            ids.length,
            outIds,
            outCauses,
          ),
        ),
        dBytes,
      );
      push(
        n,
        e,
        'detect_failures',
        'webgpu (all chunks)',
        await time(iterations, () => detectFailuresGpu(ctx, t, s.edges, 1000)),
        dBytes,
      );
      const failed = ids.filter((c) => c % 200 === 0);
      const foBytes = failed.length * (t.words * 4 + t.k * 2 + 4);
      const fresh = (): typeof t => {
        const x = {
          ...t,
          status: t.status.slice(),
          assigned: t.assigned.slice(),
          backups: t.backups.slice(),
          retries: t.retries.slice(),
        };
        for (const c of failed) x.status[c] = ChunkStatus.FAILED;
        return x;
      };
      push(
        n,
        e,
        `failover_assign (${failed.length})`,
        'cpu',
        await time(iterations, () =>
          failoverAssign(fresh(), s.edges, ranking, failed, failed.length, 64, new Uint8Array(failed.length)),
        ),
        foBytes,
      );
      push(
        n,
        e,
        `failover_assign (${failed.length})`,
        'webgpu',
        await time(iterations, () =>
          failoverAssignGpu(
            ctx,
            fresh(),
            s.edges,
            ranking,
            failed,
            failed.length,
            64,
            new Uint8Array(failed.length),
          ),
        ),
        foBytes,
      );
      for (const c of inflight) t.status[c] = ChunkStatus.PENDING;
      const scan = { order: undefined, start: 0 };
      const out = new Uint32Array(4096);
      const qd = s.edges.queueDepth.slice();
      const dsp = (): typeof t => {
        s.edges.queueDepth.set(qd);
        return {
          ...t,
          status: t.status.slice(),
          assigned: t.assigned.slice(),
          attempt: t.attempt.slice(),
          dispatchedAt: t.dispatchedAt.slice(),
          deadline: t.deadline.slice(),
        };
      };
      push(
        n,
        e,
        'generate_dispatch',
        'cpu',
        await time(iterations, () => generateDispatch(dsp(), s.edges, ranking, scan, 0, 4096, 1, out)),
        n * 3,
      );
      push(
        n,
        e,
        'generate_dispatch',
        'webgpu (compaction + host)',
        await time(iterations, () =>
          generateDispatchGpu(ctx, dsp(), s.edges, ranking, scan, 0, 4096, 1, out),
        ),
        n * 3,
      );
      s.edges.queueDepth.set(qd);
      ctx.buffers.dispose();
      (globalThis as { gc?: () => void }).gc?.();
    }
  }
  const lines = [
    `GPU benchmark — ${new Date().toISOString().slice(0, 10)} — ${os.cpus()[0]?.model ?? 'cpu'} ×${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB — adapter: ${mgr.description} — node ${process.version}, ${iterations} iterations`,
    '',
    '| chunks | edges | op | backend | median ms | p99 ms | MB/s | peak RSS MiB |',
    '|---:|---:|---|---|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.chunks} | ${r.edges} | ${r.op} | ${r.backend} | ${r.medianMs.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.mbPerS.toFixed(0)} | ${r.peakRssMiB.toFixed(0)} |`,
    ),
  ];
  console.log(lines.join('\n'));
  const json = arg('json', '');
  if (json) writeFileSync(json, JSON.stringify({ adapter: mgr.description, rows }, null, 2));
  await mgr.close();
}

ensureXdgRuntimeDir();
main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
