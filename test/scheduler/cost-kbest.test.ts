import {
  createChunkTable,
  createEdgeTable,
  rankEdges,
  rankChunk,
  rankChunks,
  setCandidate,
  EdgeFlags,
  INF_RANK,
  NO_EDGE,
  ChunkStatus,
  defaultSchedulerConfig,
} from '../../scheduler/index.js';

const cfg = { weights: defaultSchedulerConfig.weights, maxAcceptableTimeMs: undefined };

function edges3() {
  const e = createEdgeTable(3);
  // chunk 1 MB: times 1000/10=100ms+0, 1000/5=200ms+0, 1000/2=500ms+0 with bandwidth in MB/s
  e.bandwidth.set([10e6, 5e6, 2e6]);
  e.rtt.set([0, 0, 0]);
  e.available.set([1, 1, 1]);
  e.maxParallel.set([4, 4, 4]);
  return e;
}

describe('cost model', () => {
  test('cost model: weights time, load², health, metered and battery as in docs/architecture.md', () => {
    const e = edges3();
    e.queueDepth.set([2, 0, 4]); // loads 0.5, 0, 1
    e.health.set([1, 0.5, 1]);
    e.flags.set([0, EdgeFlags.METERED, EdgeFlags.BATTERY_LOW | EdgeFlags.METERED]);
    const r = rankEdges(e, 1e6, cfg);
    // maxTime auto = 500 ms (slowest edge): time factors 0.2, 0.4, 1.0
    expect(r.cost[0]).toBeCloseTo(0.4 * 0.2 + 0.2 * 0.25 + 0 + 0 + 0, 12);
    expect(r.cost[1]).toBeCloseTo(0.4 * 0.4 + 0 + 0.2 * 0.5 + 0.1 + 0, 12);
    expect(r.cost[2]).toBeCloseTo(0.4 * 1 + 0.2 * 1 + 0 + 0.1 + 0.1, 12);
    expect(Array.from(r.rank)).toEqual([0, 1, 2]);
  });

  test('cost model: RTT adds to transfer time and a fixed maxAcceptableTime normalizes it', () => {
    const e = edges3();
    e.rtt.set([100, 0, 0]);
    const r = rankEdges(e, 1e6, { ...cfg, maxAcceptableTimeMs: 1000 });
    expect(r.cost[0]).toBeCloseTo(0.4 * 0.2, 12); // (100 + 100) / 1000
    expect(r.cost[1]).toBeCloseTo(0.4 * 0.2, 12); // 200 / 1000
    // equal cost: tie broken by the lower edge id
    expect(r.rank[0]).toBeLessThan(r.rank[1]);
  });

  test('cost model: an unavailable edge or one with max_parallel 0 has infinite cost and no rank', () => {
    const e = edges3();
    e.available[1] = 0;
    e.maxParallel[2] = 0;
    const r = rankEdges(e, 1e6, cfg);
    expect(r.cost[1]).toBe(Infinity);
    expect(r.cost[2]).toBe(Infinity);
    expect(r.rank[1]).toBe(INF_RANK);
    expect(r.rank[2]).toBe(INF_RANK);
    expect(r.usable).toBe(1);
  });

  test('cost model: custom weights change the order', () => {
    const e = edges3();
    e.flags[0] = EdgeFlags.METERED;
    const heavy = { ...cfg, weights: { ...cfg.weights, metered: 10 } };
    expect(Array.from(rankEdges(e, 1e6, heavy).rank)).toEqual([2, 0, 1]);
  });
});

describe('k-best', () => {
  test('k-best: picks the K lowest-cost candidates best first, padding with NO_EDGE', () => {
    const e = createEdgeTable(40);
    for (let i = 0; i < 40; i++) {
      e.available[i] = 1;
      e.bandwidth[i] = (i + 1) * 1e6;
    }
    const t = createChunkTable(2, 40, 3);
    for (const x of [1, 5, 33, 39]) setCandidate(t, 0, x, true);
    setCandidate(t, 1, 7, true);
    const r = rankEdges(e, 1e6, cfg);
    expect(rankChunk(t, r, 0, new Int32Array(3))).toBe(3);
    expect(Array.from(t.backups.subarray(0, 3))).toEqual([39, 33, 5]);
    expect(rankChunk(t, r, 1, new Int32Array(3))).toBe(1);
    expect(Array.from(t.backups.subarray(3, 6))).toEqual([7, NO_EDGE, NO_EDGE]);
  });

  test('k-best: ties go to the lower edge id', () => {
    const e = createEdgeTable(5);
    for (let i = 0; i < 5; i++) {
      e.available[i] = 1;
      e.bandwidth[i] = 1e6;
    }
    const t = createChunkTable(1, 5, 3);
    for (const x of [4, 2, 3, 0]) setCandidate(t, 0, x, true);
    rankChunk(t, rankEdges(e, 1e6, cfg), 0, new Int32Array(3));
    expect(Array.from(t.backups)).toEqual([0, 2, 3]);
  });

  test('k-best: candidates on unavailable edges are skipped; an all-infinite row yields no source', () => {
    const e = createEdgeTable(3);
    e.available.set([0, 1, 0]);
    e.bandwidth.fill(1e6);
    const t = createChunkTable(2, 3, 2);
    setCandidate(t, 0, 0, true);
    setCandidate(t, 0, 1, true);
    setCandidate(t, 1, 0, true);
    setCandidate(t, 1, 2, true);
    const r = rankEdges(e, 1e6, cfg);
    expect(rankChunks(t, r)).toBe(2);
    expect(Array.from(t.backups)).toEqual([1, NO_EDGE, NO_EDGE, NO_EDGE]);
    expect(t.assigned[0]).toBe(1);
    expect(t.assigned[1]).toBe(NO_EDGE);
  });

  test.each([
    [3, 77],
    [4, 77],
    [1, 5],
    [3, 130],
  ])('k-best: with K=%i over %i edges matches a brute-force cost matrix on random data', (K, E) => {
    let seed = 42 + K + E;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const N = 500;
    const e = createEdgeTable(E);
    for (let i = 0; i < E; i++) {
      e.available[i] = rnd() < 0.9 ? 1 : 0;
      e.bandwidth[i] = Math.floor(rnd() * 4) * 1e6 + 1e6; // many ties
      e.health[i] = Math.floor(rnd() * 3) / 2;
      e.queueDepth[i] = Math.floor(rnd() * 4);
      e.flags[i] = rnd() < 0.3 ? EdgeFlags.METERED : 0;
    }
    const t = createChunkTable(N, E, K);
    for (let c = 0; c < N; c++) for (let x = 0; x < E; x++) if (rnd() < 0.1) setCandidate(t, c, x, true);
    const r = rankEdges(e, 1e6, cfg);
    rankChunks(t, r);
    for (let c = 0; c < N; c++) {
      const row: Array<[number, number]> = [];
      for (let x = 0; x < E; x++) {
        const has = (t.candidates[c * t.words + (x >>> 5)] >>> (x & 31)) & 1;
        if (has && Number.isFinite(r.cost[x])) row.push([r.cost[x], x]);
      }
      row.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      const want = row.slice(0, K).map((p) => p[1]);
      while (want.length < K) want.push(NO_EDGE);
      expect(Array.from(t.backups.subarray(c * K, c * K + K))).toEqual(want);
    }
  });

  test('k-best: complete chunks are not re-ranked, in-flight chunks keep their assignment', () => {
    const e = edges3();
    const t = createChunkTable(2, 3, 2);
    for (let c = 0; c < 2; c++) for (let x = 0; x < 3; x++) setCandidate(t, c, x, true);
    t.status[0] = ChunkStatus.COMPLETE;
    t.status[1] = ChunkStatus.IN_FLIGHT;
    t.assigned[1] = 2;
    expect(rankChunks(t, rankEdges(e, 1e6, cfg))).toBe(1);
    expect(Array.from(t.backups.subarray(0, 2))).toEqual([NO_EDGE, NO_EDGE]);
    expect(Array.from(t.backups.subarray(2, 4))).toEqual([0, 1]);
    expect(t.assigned[1]).toBe(2);
  });
});
