/**
 * Tick benchmark: whole-tick time of the CPU reference scheduler for chunks × edges, full re-rank
 * and incremental (1% of chunks dirty), with peak memory. Run: `npm run bench:tick [-- --sizes
 * 100000,1000000 --edges 10,50 --iterations 15 --threads 1,2 --json out.json]`. `--threads 1` (the
 * default) is the plain tick (time = phaseMs.total); n > 1 runs ticks through
 * createParallelCpuTickEngine({ threads: n }) (time = wall time of runTick, parallel rank included).
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { ChunkScheduler } from '../scheduler/index.js';
import { createParallelCpuTickEngine } from '../engine/index.js';
import { arg, xorshift, quantile } from './lib.js';

interface Row {
  chunks: number;
  edges: number;
  threads: number;
  mode: 'full' | 'incremental';
  medianMs: number;
  p99Ms: number;
  minMs: number;
  iterations: number;
  rankedPerTick: number;
  peakRssMiB: number;
  tableMiB: number;
}

let peakRss = 0;
function sampleRss(): void {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}

function build(n: number, e: number, replicas: number, seed: number, threads: number): ChunkScheduler {
  const s = new ChunkScheduler(
    { chunks: n, chunkBytes: 1 << 20, edgeCapacity: e, sharedMemory: threads > 1 },
    { maxDispatchPerTick: 4096 },
  );
  const rnd = xorshift(seed);
  for (let x = 0; x < e; x++) {
    s.updateEdge(x, {
      bandwidth: (5 + (rnd() % 95)) * 1e6,
      rtt: 5 + (rnd() % 80),
      health: 0.5 + (rnd() % 50) / 100,
      flags: rnd() % 7 === 0 ? 1 : 0,
      available: true,
      maxParallel: 16,
      timeoutMs: 5000,
    });
  }
  // each chunk on `replicas` random edges, written straight into the bitset (setAvailability per bit is the API path, too slow for 1e9 bits)
  const t = s.chunks;
  for (let c = 0; c < n; c++) {
    for (let r = 0; r < replicas; r++) {
      const x = rnd() % e;
      t.candidates[c * t.words + (x >>> 5)] |= 1 << (x & 31);
    }
  }
  s.requestFullRerank();
  return s;
}

async function run(n: number, e: number, iterations: number, threads: number): Promise<Row[]> {
  const replicas = Math.min(e, 10);
  const s = build(n, e, replicas, n ^ (e << 20), threads);
  sampleRss();
  const t = s.chunks;
  const tableBytes =
    t.status.byteLength +
    t.assigned.byteLength +
    t.backups.byteLength +
    t.retries.byteLength +
    t.priority.byteLength +
    t.attempt.byteLength +
    t.dispatchedAt.byteLength +
    t.deadline.byteLength +
    t.candidates.byteLength;
  let now = 0;
  const engine = threads > 1 ? createParallelCpuTickEngine({ threads }) : undefined;
  const tick = async (at: number) => {
    if (!engine) {
      const r = s.tick(at);
      return { r, ms: r.phaseMs.total };
    }
    const a = performance.now();
    const r = await engine.runTick(s, at);
    return { r, ms: performance.now() - a };
  };
  await tick(now); // first tick: full rank + first dispatch wave
  const rows: Row[] = [];
  for (const mode of ['full', 'incremental'] as const) {
    const times: number[] = [];
    let ranked = 0;
    const rnd = xorshift(7 + n);
    for (let i = 0; i < iterations; i++) {
      now += 50;
      if (mode === 'full') s.requestFullRerank();
      else {
        const dirty = Math.max(1, Math.floor(n / 100));
        for (let d = 0; d < dirty; d++) {
          const c = rnd() % n;
          s.setAvailability(c, rnd() % e, true);
        }
      }
      const { r, ms } = await tick(now);
      times.push(ms);
      ranked += r.ranked;
      // keep the transfer moving: complete what was dispatched
      for (const d of r.dispatch) s.report({ chunk: d.chunk, attempt: d.attempt, edge: d.edge, ok: true });
      sampleRss();
    }
    rows.push({
      chunks: n,
      edges: e,
      threads,
      mode,
      medianMs: quantile(times, 0.5),
      p99Ms: quantile(times, 0.99),
      minMs: Math.min(...times),
      iterations,
      rankedPerTick: Math.round(ranked / iterations),
      peakRssMiB: Math.round(peakRss / 2 ** 20),
      tableMiB: Math.round(tableBytes / 2 ** 20),
    });
  }
  await engine?.close();
  return rows;
}

const sizes = arg('sizes', '100000,1000000,10000000').split(',').map(Number);
const edgeCounts = arg('edges', '10,50,100').split(',').map(Number);
const iterations = Number(arg('iterations', '15'));
const threadCounts = arg('threads', '1').split(',').map(Number);
const rows: Row[] = [];
console.log(
  `# tick benchmark — ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, node ${process.version}, ${new Date().toISOString()}`,
);
console.log(
  '| chunks | edges | threads | mode | median ms | p99 ms | min ms | ranked/tick | table MiB | peak RSS MiB |',
);
console.log('|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|');
for (const n of sizes) {
  for (const e of edgeCounts) {
    for (const th of threadCounts) {
      for (const r of await run(n, e, iterations, th)) {
        rows.push(r);
        console.log(
          `| ${r.chunks} | ${r.edges} | ${r.threads} | ${r.mode} | ${r.medianMs.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.minMs.toFixed(2)} | ${r.rankedPerTick} | ${r.tableMiB} | ${r.peakRssMiB} |`,
        );
      }
      (globalThis as { gc?: () => void }).gc?.();
    }
    (globalThis as { gc?: () => void }).gc?.();
  }
}
const out = arg('json', '');
if (out)
  writeFileSync(
    out,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        cpu: os.cpus()[0]?.model,
        cores: os.cpus().length,
        node: process.version,
        rows,
      },
      null,
      2,
    ),
  );
