import {
  rankEdges,
  rankChunks,
  detectFailures,
  failoverAssign,
  loadBalance,
  generateDispatch,
  ChunkStatus,
  defaultSchedulerConfig,
} from '../../scheduler/index.js';
import {
  kBestGpu,
  rankChunksGpu,
  detectFailuresGpu,
  applyDetectedFailures,
  failoverAssignGpu,
  loadBalanceGpu,
  generateDispatchGpu,
  orderedCompactGpu,
  orderedFlag,
  type GpuContext,
  type GpuDeviceManager,
} from '../../gpu/index.js';
import {
  cloneTables,
  contextOf,
  gpuOrSkip,
  randomTables,
  rng,
  snapshot,
  type TableSpec,
} from './fixtures.js';

const mgr: GpuDeviceManager | undefined = await gpuOrSkip();
const d = mgr ? test : test.skip;

const CASES: Array<[string, TableSpec, number | undefined]> = [
  ['random 3000 chunks × 100 edges', { n: 3000, edges: 100, seed: 1 }, undefined],
  ['one edge', { n: 500, edges: 1, seed: 2, replicas: 1 }, undefined],
  ['33 edges (not a multiple of 32)', { n: 700, edges: 33, seed: 3 }, undefined],
  ['130 edges, 40 replicas each', { n: 600, edges: 130, seed: 4, replicas: 40 }, undefined],
  ['ties: every edge costs the same', { n: 800, edges: 40, seed: 5, ties: true }, undefined],
  [
    'all-infinite rows: most edges offline, many empty rows',
    { n: 900, edges: 20, seed: 6, offline: 0.8, emptyRows: 0.3 },
    undefined,
  ],
  ['empty transfer', { n: 0, edges: 10, seed: 7 }, undefined],
  ['partition borders every 64 chunks', { n: 1000, edges: 70, seed: 8 }, 64],
  ['K = 5 across 128-chunk partitions', { n: 777, edges: 50, seed: 9, k: 5 }, 128],
];

const contexts = new Map<number | undefined, GpuContext>();
async function ctxFor(p: number | undefined): Promise<GpuContext> {
  let c = contexts.get(p);
  if (!c) {
    c = await contextOf(mgr!, p);
    contexts.set(p, c);
  }
  return c;
}

afterAll(async () => {
  await mgr?.close();
});

d.each(CASES)('k_best: GPU equals the CPU reference for %s', async (_name, spec, part) => {
  const ctx = await ctxFor(part);
  const a = randomTables(spec);
  const b = cloneTables(a.t, a.edges);
  const ranking = rankEdges(a.edges, 1 << 20, defaultSchedulerConfig);
  const cpuRanked = rankChunks(a.t, ranking);
  const gpuRanked = await rankChunksGpu(ctx, b.t, ranking);
  expect(gpuRanked).toBe(cpuRanked);
  expect(snapshot(b.t)).toEqual(snapshot(a.t));
  // list mode: a shuffled dirty list with duplicates, spanning partitions
  const r = rng(spec.seed + 100);
  const list = Uint32Array.from({ length: Math.min(300, spec.n * 2) }, () => r() % Math.max(1, spec.n));
  if (spec.n === 0) return;
  for (const e of [0, spec.edges - 1]) a.edges.available[e] ^= 1;
  const r2 = rankEdges(a.edges, 1 << 20, defaultSchedulerConfig);
  expect(await rankChunksGpu(ctx, b.t, r2, list, list.length)).toBe(rankChunks(a.t, r2, list, list.length));
  expect(snapshot(b.t)).toEqual(snapshot(a.t));
});

d(
  'k_best: the raw kernel output is the K lowest ranks among candidate bits, on random data at 20k chunks',
  async () => {
    const ctx = await ctxFor(undefined);
    const { t, edges } = randomTables({ n: 20_000, edges: 100, seed: 11 });
    t.status.fill(ChunkStatus.PENDING);
    const ranking = rankEdges(edges, 1 << 20, defaultSchedulerConfig);
    const best = await kBestGpu(ctx, t, ranking);
    const ref = cloneTables(t, edges);
    rankChunks(ref.t, ranking);
    expect(Buffer.from(best.buffer).equals(Buffer.from(ref.t.backups.buffer))).toBe(true);
  },
);

d.each(CASES)(
  'detect_failures: GPU (atomic compaction, sorted) equals the CPU reference for %s',
  async (_name, spec, part) => {
    const ctx = await ctxFor(part);
    const a = randomTables(spec);
    const b = cloneTables(a.t, a.edges);
    const inFlight = Uint32Array.from({ length: spec.n }, (_, i) => i).filter(
      (c) => a.t.status[c] === ChunkStatus.IN_FLIGHT,
    );
    const ids = new Uint32Array(Math.max(1, spec.n));
    const causes = new Uint8Array(Math.max(1, spec.n));
    const now = 2000;
    const n = detectFailures(a.t, a.edges, now, inFlight, inFlight.length, ids, causes);
    const g = await detectFailuresGpu(ctx, b.t, b.edges, now);
    applyDetectedFailures(b.t, g);
    expect(Array.from(g.ids)).toEqual(Array.from(ids.subarray(0, n)));
    expect(Array.from(g.causes)).toEqual(Array.from(causes.subarray(0, n)));
    expect(snapshot(b.t)).toEqual(snapshot(a.t));
  },
);

d.each(CASES)('failover_assign: GPU equals the CPU reference for %s', async (_name, spec, part) => {
  const ctx = await ctxFor(part);
  const a = randomTables(spec);
  const b = cloneTables(a.t, a.edges);
  const ranking = rankEdges(a.edges, 1 << 20, defaultSchedulerConfig);
  const r = rng(spec.seed + 7);
  // every FAILED chunk plus a few others and a duplicate, in shuffled order
  const failed = Array.from({ length: spec.n }, (_, i) => i).filter(
    (c) => a.t.status[c] === ChunkStatus.FAILED || r() % 50 === 0,
  );
  for (let i = failed.length - 1; i > 0; i--) {
    const j = r() % (i + 1);
    [failed[i], failed[j]] = [failed[j], failed[i]];
  }
  if (failed.length > 0) failed.push(failed[0]);
  const list = Uint32Array.from(failed);
  for (const maxAttempts of [64, 3]) {
    const x = cloneTables(a.t, a.edges);
    const y = cloneTables(b.t, b.edges);
    const oc = new Uint8Array(list.length);
    const og = new Uint8Array(list.length);
    const cc = failoverAssign(x.t, x.edges, ranking, list, list.length, maxAttempts, oc);
    const cg = await failoverAssignGpu(ctx, y.t, y.edges, ranking, list, list.length, maxAttempts, og);
    expect(cg).toEqual(cc);
    expect(Array.from(og)).toEqual(Array.from(oc));
    expect(snapshot(y.t)).toEqual(snapshot(x.t));
  }
});

function scanOf(
  t: { n: number; priority: Float32Array },
  prioritized: boolean,
  start: number,
): { order: Uint32Array | undefined; start: number } {
  if (!prioritized) return { order: undefined, start };
  const p = t.priority;
  return {
    order: Uint32Array.from({ length: t.n }, (_, i) => i).sort((x, y) => p[y] - p[x] || x - y),
    start,
  };
}

d.each(CASES)(
  'load_balance: GPU compaction + host greedy equals the CPU reference for %s',
  async (_name, spec, part) => {
    const ctx = await ctxFor(part);
    for (const prioritized of [false, true]) {
      const a = randomTables(spec);
      // make some edges overloaded and others idle, so moves happen
      for (let e = 0; e < spec.edges; e++) {
        a.edges.maxParallel[e] = 10;
        a.edges.queueDepth[e] = e % 3 === 0 ? 10 : e % 3 === 1 ? 0 : 6;
      }
      const b = cloneTables(a.t, a.edges);
      const ranking = rankEdges(a.edges, 1 << 20, defaultSchedulerConfig);
      const scan = scanOf(a.t, prioritized, 0);
      const mc = loadBalance(a.t, a.edges, ranking, scan, 0.9, 0.5);
      const mg = await loadBalanceGpu(ctx, b.t, b.edges, ranking, scan, 0.9, 0.5);
      expect(mg).toBe(mc);
      expect(snapshot(b.t, b.edges)).toEqual(snapshot(a.t, a.edges));
    }
  },
);

d.each(CASES)(
  'generate_dispatch: GPU compaction + host decisions equal the CPU reference (max_parallel, priority, spill) for %s',
  async (_name, spec, part) => {
    const ctx = await ctxFor(part);
    for (const [prioritized, limit, start] of [
      [false, 4096, 0],
      [true, 4096, 0],
      [true, 7, 0],
      [false, 100, 37],
    ] as const) {
      const a = randomTables(spec);
      const b = cloneTables(a.t, a.edges);
      const ranking = rankEdges(a.edges, 1 << 20, defaultSchedulerConfig);
      const scan = scanOf(a.t, prioritized, Math.min(start, spec.n));
      const oc = new Uint32Array(limit);
      const og = new Uint32Array(limit);
      const rc = generateDispatch(a.t, a.edges, ranking, scan, 5000, limit, 17, oc);
      const rg = await generateDispatchGpu(ctx, b.t, b.edges, ranking, scan, 5000, limit, 17, og);
      expect(rg).toEqual(rc);
      expect(Array.from(og)).toEqual(Array.from(oc));
      expect(snapshot(b.t, b.edges)).toEqual(snapshot(a.t, a.edges));
      for (let e = 0; e < spec.edges; e++)
        expect(b.edges.queueDepth[e] <= Math.max(b.edges.maxParallel[e], a.edges.queueDepth[e])).toBe(true);
    }
  },
);

d(
  'device: kernels survive garbage collections while GPU work is in flight (the Dawn instance kept alive, docs/architecture.md)',
  async () => {
    const v8 = await import('node:v8');
    const vm = await import('node:vm');
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const ctx = await contextOf(mgr!);
    const { t, edges } = randomTables({ n: 20_000, edges: 100, seed: 12 });
    t.status.fill(ChunkStatus.PENDING);
    const ranking = rankEdges(edges, 1 << 20, defaultSchedulerConfig);
    const ref = cloneTables(t, edges);
    rankChunks(ref.t, ranking);
    for (let i = 0; i < 6; i++) {
      const p = kBestGpu(ctx, t, ranking);
      gc();
      const best = await p;
      gc();
      expect(Buffer.from(best.buffer).equals(Buffer.from(ref.t.backups.buffer))).toBe(true);
    }
  },
);

/** CPU reference of the ordered compaction: flagged scheduling-order positions ≥ from. */
function orderedRef(
  t: Parameters<typeof orderedFlag>[0],
  order: Uint32Array | undefined,
  edgeOk: Uint32Array,
  from: number,
): number[] {
  const out: number[] = [];
  for (let i = from; i < t.n; i++) if (orderedFlag(t, edgeOk, order ? order[i] : i)) out.push(i);
  return out;
}

d.each([
  ['identity order, all edges', 3000, 100, false, 0, 5000, 1],
  ['priority order, first 10 past position 700', 3000, 33, true, 700, 10, 2],
  ['one block exactly', 256, 8, false, 0, 300, 3],
  ['block borders ± 1, window of 1', 257, 8, true, 255, 1, 4],
  ['40 000 chunks (157 blocks), half the edges ok', 40_000, 130, true, 123, 2000, 5],
] as const)(
  'ordered compaction: the GPU prefix-sum scan returns the first flagged positions in scheduling order (%s)',
  async (_name, n, edges, prioritized, from, maxOut, seed) => {
    const ctx = await ctxFor(undefined);
    const { t } = randomTables({ n, edges, seed });
    const r = rng(seed + 50);
    const edgeOk = Uint32Array.from({ length: edges }, () => (seed === 5 ? r() % 2 : 1));
    const scan = scanOf(t, prioritized, 0);
    const ref = orderedRef(t, scan.order, edgeOk, from);
    const w = await orderedCompactGpu(ctx, t, { order: scan.order, start: 0 }, edgeOk, from, maxOut);
    expect(w.total).toBe(ref.length);
    expect(Array.from(w.positions)).toEqual(ref.slice(0, maxOut));
    // a bounded span [from, from + 300): what forEachOrdered compacts per window
    const end = Math.min(n, from + 300);
    const inSpan = ref.filter((p) => p < end);
    const s2 = await orderedCompactGpu(ctx, t, { order: scan.order, start: 0 }, edgeOk, from, maxOut, end);
    expect(s2.total).toBe(inSpan.length);
    expect(Array.from(s2.positions)).toEqual(inSpan.slice(0, maxOut));
  },
);

d.each(CASES)(
  'load_balance and generate_dispatch: windows of 1 and 5 chunks, and the host scan when the table does not fit the ordered compaction, equal the CPU reference for %s',
  async (_name, spec, part) => {
    const base = await ctxFor(part);
    const tiny: GpuContext = { ...base, limits: { ...base.limits, maxStorageBufferBindingSize: 16 } };
    for (const [ctx, window] of [
      [base, 1],
      [base, 5],
      [tiny, undefined],
    ] as const) {
      const a = randomTables(spec);
      for (let e = 0; e < spec.edges; e++) {
        a.edges.maxParallel[e] = 10;
        a.edges.queueDepth[e] = e % 3 === 0 ? 10 : e % 3 === 1 ? 0 : 6;
      }
      const b = cloneTables(a.t, a.edges);
      const ranking = rankEdges(a.edges, 1 << 20, defaultSchedulerConfig);
      const scan = scanOf(a.t, true, Math.min(5, spec.n));
      expect(await loadBalanceGpu(ctx, b.t, b.edges, ranking, scan, 0.9, 0.5, { window })).toBe(
        loadBalance(a.t, a.edges, ranking, scan, 0.9, 0.5),
      );
      expect(snapshot(b.t, b.edges)).toEqual(snapshot(a.t, a.edges));
      for (let e = 0; e < spec.edges; e++) a.edges.queueDepth[e] = b.edges.queueDepth[e] = e % 4;
      const oc = new Uint32Array(50);
      const og = new Uint32Array(50);
      const rc = generateDispatch(a.t, a.edges, ranking, scan, 100, 50, 3, oc);
      expect(await generateDispatchGpu(ctx, b.t, b.edges, ranking, scan, 100, 50, 3, og, { window })).toEqual(
        rc,
      );
      expect(Array.from(og)).toEqual(Array.from(oc));
      expect(snapshot(b.t, b.edges)).toEqual(snapshot(a.t, a.edges));
    }
  },
);
