import {
  ChunkScheduler,
  ChunkStatus,
  NO_EDGE,
  INF_RANK,
  createChunkTable,
  createEdgeTable,
  rankEdges,
  rankChunk,
  rankChunks,
  rankChunkRange,
  buildRankLut,
  defaultSchedulerConfig,
  type ChunkTable,
  type EdgeRanking,
} from '../../scheduler/index.js';
import { createParallelRank, createParallelCpuTickEngine, isRankShared } from '../../engine/index.js';

// The workers run the compiled dist/engine/threaded/worker.js (`npm test` builds first).

const cfg = { weights: defaultSchedulerConfig.weights, maxAcceptableTimeMs: undefined };

function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** A random table: per chunk 0..maxReplicas random candidate edges, random statuses. */
function randomTable(
  n: number,
  edges: number,
  k: number,
  seed: number,
  maxReplicas: number,
  shared = false,
): ChunkTable {
  const rnd = xorshift(seed);
  const t = createChunkTable(n, edges, k, { shared });
  for (let c = 0; c < n; c++) {
    const reps = rnd() % (maxReplicas + 1);
    for (let r = 0; r < reps; r++) {
      const e = rnd() % edges;
      t.candidates[c * t.words + (e >>> 5)] |= 1 << (e & 31);
    }
    const s = rnd() % 10;
    t.status[c] =
      s < 5
        ? ChunkStatus.PENDING
        : s < 7
          ? ChunkStatus.IN_FLIGHT
          : s === 7
            ? ChunkStatus.COMPLETE
            : s === 8
              ? ChunkStatus.FAILED
              : ChunkStatus.FAILED_PERMANENT;
    t.assigned[c] = rnd() % edges; // stale values must be overwritten exactly as the reference does
  }
  return t;
}

/** A random ranking over `edges` edges with about `unavailablePct`% of them unusable. */
function randomRanking(edges: number, seed: number, unavailablePct: number): EdgeRanking {
  const rnd = xorshift(seed);
  const e = createEdgeTable(edges);
  for (let x = 0; x < edges; x++) {
    e.bandwidth[x] = (1 + (rnd() % 1000)) * 1e5;
    e.rtt[x] = rnd() % 100;
    e.health[x] = (rnd() % 101) / 100;
    e.available[x] = rnd() % 100 < unavailablePct ? 0 : 1;
    e.maxParallel[x] = rnd() % 20 === 0 ? 0 : 8;
  }
  return rankEdges(e, 1 << 20, cfg);
}

/** The reference: the per-chunk scan (rankChunk), as rankChunks did before the byte-LUT kernel. */
function reference(t: ChunkTable, ranking: EdgeRanking, chunks?: Uint32Array, count?: number): number {
  const scratch = new Int32Array(t.k);
  const total = chunks ? (count ?? chunks.length) : t.n;
  let ranked = 0;
  for (let i = 0; i < total; i++) {
    const c = chunks ? chunks[i] : i;
    const s = t.status[c];
    if (s !== ChunkStatus.PENDING && s !== ChunkStatus.IN_FLIGHT) continue;
    rankChunk(t, ranking, c, scratch);
    if (s === ChunkStatus.PENDING) t.assigned[c] = t.backups[c * t.k];
    ranked++;
  }
  return ranked;
}

/** Chunks the rank kernels rank (pending or in flight) among the first `upTo` of the table or of `chunks`. */
function rankable(t: ChunkTable, chunks: Uint32Array | undefined, upTo: number): number {
  let n = 0;
  for (let i = 0; i < upTo; i++) {
    const s = t.status[chunks ? chunks[i] : i];
    if (s === ChunkStatus.PENDING || s === ChunkStatus.IN_FLIGHT) n++;
  }
  return n;
}

/** An independent check of one chunk: sort its usable candidates by rank. */
function naiveBest(t: ChunkTable, ranking: EdgeRanking, c: number): number[] {
  const rs: number[] = [];
  for (let e = 0; e < t.edges; e++) {
    if (((t.candidates[c * t.words + (e >>> 5)] >>> (e & 31)) & 1) === 1 && ranking.rank[e] !== INF_RANK)
      rs.push(ranking.rank[e]);
  }
  rs.sort((a, b) => a - b);
  const out: number[] = [];
  for (let i = 0; i < t.k; i++) out.push(i < rs.length ? ranking.edgeOfRank[rs[i]] : NO_EDGE);
  return out;
}

function copyTable(t: ChunkTable, shared = false): ChunkTable {
  const u = createChunkTable(t.n, t.edges, t.k, { shared });
  u.status.set(t.status);
  u.assigned.set(t.assigned);
  u.backups.set(t.backups);
  u.candidates.set(t.candidates);
  return u;
}

function expectSame(a: ChunkTable, b: ChunkTable): void {
  expect(
    Buffer.from(a.backups.buffer, a.backups.byteOffset, a.backups.byteLength).equals(
      Buffer.from(b.backups.buffer, b.backups.byteOffset, b.backups.byteLength),
    ),
  ).toBe(true);
  expect(
    Buffer.from(a.assigned.buffer, a.assigned.byteOffset, a.assigned.byteLength).equals(
      Buffer.from(b.assigned.buffer, b.assigned.byteOffset, b.assigned.byteLength),
    ),
  ).toBe(true);
}

const shapes: Array<{ edges: number; unavailable: number; replicas: number }> = [
  { edges: 33, unavailable: 10, replicas: 12 },
  { edges: 100, unavailable: 0, replicas: 10 },
  { edges: 100, unavailable: 30, replicas: 4 }, // few candidates: many chunks short of K in the top 64
  { edges: 130, unavailable: 15, replicas: 20 }, // 5 words: the generic word loop
  { edges: 60, unavailable: 50, replicas: 40 }, // usable < 64: no fallback scan needed
  { edges: 256, unavailable: 5, replicas: 30 }, // 8 words: widest LUT case
  { edges: 300, unavailable: 5, replicas: 30 }, // > 8 words: scan path
];

describe('byte-LUT k-best kernel', () => {
  for (const { edges, unavailable, replicas } of shapes) {
    for (const k of [1, 2, 3, 5, 8]) {
      test(`rankChunks equals the scan: ${edges} edges, ${unavailable}% unusable, ≤ ${replicas} replicas, K = ${k}`, () => {
        const seed = edges * 31 + k * 7 + unavailable;
        const t = randomTable(20_000, edges, k, seed, replicas);
        const ranking = randomRanking(edges, seed + 1, unavailable);
        const ref = copyTable(t);
        expect(rankChunks(t, ranking)).toBe(reference(ref, ranking));
        expectSame(t, ref);
        // a dirty list (incremental tick)
        const rnd = xorshift(seed + 2);
        const list = Uint32Array.from({ length: 5000 }, () => rnd() % t.n);
        const ranking2 = randomRanking(edges, seed + 3, unavailable);
        expect(rankChunks(t, ranking2, list, 4000)).toBe(reference(ref, ranking2, list, 4000));
        expectSame(t, ref);
        for (let c = 0; c < 500; c++) {
          if (t.status[c] !== ChunkStatus.PENDING && t.status[c] !== ChunkStatus.IN_FLIGHT) continue;
          if (!list.subarray(0, 4000).includes(c)) continue;
          expect(Array.from(t.backups.subarray(c * k, c * k + k))).toEqual(naiveBest(t, ranking2, c));
        }
      });
    }
  }

  test('rankChunkRange over disjoint ranges equals one rankChunks', () => {
    const t = randomTable(10_000, 100, 3, 99, 10);
    const ranking = randomRanking(100, 98, 10);
    const ref = copyTable(t);
    const lut = buildRankLut(ranking, t.words);
    expect(
      rankChunkRange(t, ranking, undefined, 0, 3333, lut) +
        rankChunkRange(t, ranking, undefined, 3333, 10_000),
    ).toBe(reference(ref, ranking));
    expectSame(t, ref);
  });
});

describe('parallel rank pool', () => {
  test('equals rankChunks for full and listed work, shared and migrated tables, several K and widths', async () => {
    const pool = createParallelRank({ threads: 3 });
    try {
      for (const { edges, unavailable, replicas } of shapes.slice(0, 4)) {
        for (const k of [1, 3, 5]) {
          const seed = edges + k * 1000;
          const t = randomTable(30_001, edges, k, seed, replicas, k === 3);
          const ref = copyTable(t);
          const ranking = randomRanking(edges, seed + 5, unavailable);
          const shared = k === 3;
          // the two workers take the first two thirds of the work, the calling thread the rest; an
          // unshared table is ranked on the calling thread alone
          let before = pool.workerRanked;
          expect(await pool.rank(t, ranking)).toBe(reference(ref, ranking));
          expect(pool.workerRanked - before).toBe(
            shared ? rankable(t, undefined, 2 * Math.ceil(t.n / 3)) : 0,
          );
          expect(isRankShared(t)).toBe(shared); // a table keeps its memory: unshared ones rank on the calling thread
          expectSame(t, ref);
          const rnd = xorshift(seed + 6);
          const list = Uint32Array.from({ length: 9000 }, () => rnd() % t.n);
          const ranking2 = randomRanking(edges, seed + 7, unavailable);
          before = pool.workerRanked;
          expect(await pool.rank(t, ranking2, list, 8999)).toBe(reference(ref, ranking2, list, 8999));
          expect(pool.workerRanked - before).toBe(shared ? rankable(t, list, 2 * Math.ceil(8999 / 3)) : 0);
          expectSame(t, ref);
        }
      }
    } finally {
      await pool.close();
    }
  });

  test('a closed pool rejects', async () => {
    const pool = createParallelRank({ threads: 2 });
    await pool.close();
    await pool.close();
    await expect(pool.rank(createChunkTable(10, 4, 3), randomRanking(4, 1, 0))).rejects.toThrow(/closed/);
  });
});

describe('parallel CPU tick engine', () => {
  function build(n: number, e: number, seed: number): ChunkScheduler {
    const s = new ChunkScheduler(
      { chunks: n, chunkBytes: 1 << 20, edgeCapacity: e, sharedMemory: true },
      { maxDispatchPerTick: 512 },
    );
    const rnd = xorshift(seed);
    for (let x = 0; x < e; x++)
      s.updateEdge(x, {
        bandwidth: (5 + (rnd() % 95)) * 1e6,
        rtt: 5 + (rnd() % 80),
        health: 0.5 + (rnd() % 50) / 100,
        flags: rnd() % 7 === 0 ? 1 : 0,
        available: rnd() % 10 !== 0,
        maxParallel: 16,
        timeoutMs: 5000,
      });
    for (let c = 0; c < n; c++)
      for (let r = 0; r < 1 + (rnd() % 10); r++) s.setAvailability(c, rnd() % e, true);
    return s;
  }

  test('ticks equal the reference ChunkScheduler.tick over full and incremental ticks', async () => {
    const n = 40_000,
      E = 100;
    const a = build(n, E, 5);
    const b = build(n, E, 5);
    const engine = createParallelCpuTickEngine({ threads: 2, minParallelChunks: 1000 });
    expect(engine.backend).toBe('cpu:2 threads');
    let parallelTicks = 0; // ticks with at least minParallelChunks of rank work: the workers must rank those
    try {
      const rnd = xorshift(11);
      for (let i = 0; i < 8; i++) {
        const now = i * 100;
        if (i === 3) {
          a.updateEdge(7, { available: false });
          b.updateEdge(7, { available: false });
        }
        if (i === 5) {
          a.requestFullRerank();
          b.requestFullRerank();
        }
        if (i % 2 === 1) {
          for (let d = 0; d < 3000; d++) {
            const c = rnd() % n,
              e = rnd() % E;
            a.setAvailability(c, e, true);
            b.setAvailability(c, e, true);
          }
        }
        if (a.rankWork().count >= 1000) parallelTicks++;
        const ra = await engine.runTick(a, now);
        const rb = b.tick(now);
        expect(ra.ranked).toBe(rb.ranked);
        expect(ra.fullRerank).toBe(rb.fullRerank);
        expect(ra.dispatch).toEqual(rb.dispatch);
        expect(ra.cancels).toEqual(rb.cancels);
        expectSame(a.chunks, b.chunks);
        expect(
          Buffer.from(a.chunks.status.buffer, 0, n).equals(Buffer.from(b.chunks.status.buffer, 0, n)),
        ).toBe(true);
        for (const [j, d] of ra.dispatch.entries()) {
          const ok = j % 5 !== 0;
          const x = a.report({
            chunk: d.chunk,
            attempt: d.attempt,
            edge: d.edge,
            ok,
            reason: ok ? undefined : 'http',
          });
          expect(
            b.report({
              chunk: d.chunk,
              attempt: d.attempt,
              edge: d.edge,
              ok,
              reason: ok ? undefined : 'http',
            }),
          ).toBe(x);
        }
      }
      expect(a.counters).toEqual(b.counters);
      const st = engine.stats();
      expect(st.ticks).toBe(8);
      expect(st.fallbacks).toBe(0);
      // the ranks came from the worker thread (with the worker script missing the engine would silently rank
      // every tick on this thread and still equal the reference)
      expect(parallelTicks).toBeGreaterThanOrEqual(2);
      expect(st.parallelRanks).toBe(parallelTicks);
      expect(st.workerRanked).toBeGreaterThan(0);
    } finally {
      await engine.close();
    }
    await expect(engine.runTick(a, 10_000)).rejects.toThrow(/closed/);
  });

  test('small rank work runs on the calling thread', async () => {
    const s = build(500, 20, 3);
    const ref = build(500, 20, 3);
    const engine = createParallelCpuTickEngine({ threads: 2 });
    try {
      const r = await engine.runTick(s, 0);
      expect(r.dispatch).toEqual(ref.tick(0).dispatch);
      expect(isRankShared(s.chunks)).toBe(true);
      expect(engine.stats()).toMatchObject({ parallelRanks: 0, workerRanked: 0 });
    } finally {
      await engine.close();
    }
  });
});
