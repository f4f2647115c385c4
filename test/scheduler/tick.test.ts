import {
  ChunkScheduler,
  ChunkStatus,
  NO_EDGE,
  hasCandidate,
  ChunkPriority,
  type SchedulerConfig,
} from '../../scheduler/index.js';

/** A scheduler over `n` chunks where every edge in `holders` holds every chunk. */
function make(n: number, bws: number[], cfg: Partial<SchedulerConfig> = {}, maxParallel = 4): ChunkScheduler {
  const s = new ChunkScheduler({ chunks: n, chunkBytes: 1_000_000, edgeCapacity: bws.length }, cfg);
  bws.forEach((bw, e) =>
    s.updateEdge(e, { bandwidth: bw, rtt: 0, available: true, maxParallel, timeoutMs: 1000 }),
  );
  for (let c = 0; c < n; c++) for (let e = 0; e < bws.length; e++) s.setAvailability(c, e, true);
  return s;
}

/**
 * Two chunks, one on each of two edges (per-fetch bandwidths `bws`, one fetch each, late only after 10 × the
 * expected time); edge 0's chunk has completed, so edge 0 is free and edge 1 holds the last chunk.
 */
function tailOnSlowEdge(bws: [number, number]): { s: ChunkScheduler; slow: { chunk: number } } {
  const s = make(2, bws, { endgameChunks: 4, hedgeAfterFraction: 10 }, 1);
  s.updateEdge(0, { timeoutMs: 10_000 });
  s.updateEdge(1, { timeoutMs: 10_000 });
  const r0 = s.tick(0);
  const fast = r0.dispatch.find((d) => d.edge === 0)!;
  const slow = r0.dispatch.find((d) => d.edge === 1)!;
  s.report({ chunk: fast.chunk, attempt: fast.attempt, edge: 0, ok: true });
  return { s, slow };
}

describe('scheduler tick', () => {
  test('dispatch: respects each edge max_parallel and fills the best edge first', () => {
    const s = make(20, [10e6, 5e6]);
    const r = s.tick(0);
    expect(r.fullRerank).toBe(true);
    // all 20 chunks rank edge 0 first; edge 0 takes 4; load balance moves pending chunks to edge 1
    const perEdge = [0, 0];
    for (const d of r.dispatch) perEdge[d.edge]++;
    expect(perEdge[0]).toBe(4);
    expect(perEdge[1]).toBeLessThanOrEqual(4);
    expect(s.edges.queueDepth[0]).toBe(4);
    expect(r.dispatch.every((d) => s.chunks.status[d.chunk] === ChunkStatus.IN_FLIGHT)).toBe(true);
  });

  test('dispatch: the rate limit caps dispatches per tick', () => {
    const s = make(50, [10e6, 10e6, 10e6], { maxDispatchPerTick: 5 }, 10);
    expect(s.tick(0).dispatch.length).toBe(5);
    expect(s.tick(50).dispatch.length).toBe(5);
  });

  test('dispatch: higher priority chunks go first, then lower ids', () => {
    const s = make(10, [10e6], {}, 3);
    // below DEMAND: ordinary dispatch, in priority order
    s.setPriority(7, 1.5);
    s.setPriority(3, 1.5);
    s.setPriority(9, 1);
    expect(s.tick(0).dispatch.map((d) => d.chunk)).toEqual([3, 7, 9]);
  });

  test('rank: an edge gated to max_parallel 0 (a background task waiting for idle capacity) is dispatched to again once its limit is back', () => {
    const s = make(10, [10e6], {}, 0);
    s.tick(0);
    expect(s.tick(10).dispatch).toEqual([]);
    s.updateEdge(0, { maxParallel: 2 });
    expect(s.tick(20).dispatch.map((d) => d.chunk)).toEqual([0, 1]);
  });

  test('demand: a DEMAND chunk goes at once to the edge that delivers it soonest, pre-empting its NORMAL fetches, and that edge takes nothing else until it ends', () => {
    const s = make(20, [10e6, 5e6], {}, 2);
    const first = s.tick(0);
    const onFast = first.dispatch.filter((d) => d.edge === 0).map((d) => d.chunk);
    expect(onFast).toHaveLength(2);
    expect(s.edges.queueDepth[1]).toBe(2);
    s.setPriority(15, ChunkPriority.DEMAND);
    const r = s.tick(10);
    expect(r.dispatch.map((d) => [d.chunk, d.edge])).toEqual([[15, 0]]);
    expect(r.cancels.map((c) => c.chunk).sort()).toEqual([...onFast].sort());
    for (const c of onFast) expect(s.chunks.status[c]).toBe(ChunkStatus.PENDING);
    expect(s.edges.queueDepth[0]).toBe(1);
    expect(s.counters.preempted).toBe(2);
    // the pre-empted attempts' cancelled reports change nothing
    for (const c of first.dispatch.filter((d) => d.edge === 0))
      expect(s.report({ chunk: c.chunk, attempt: c.attempt, edge: 0, ok: false, reason: 'cancelled' })).toBe(
        'stale',
      );
    // while chunk 15 runs, the fast edge takes no other chunk
    expect(s.tick(20).dispatch.filter((d) => d.edge === 0)).toEqual([]);
    expect(s.report({ chunk: 15, attempt: s.chunks.attempt[15], edge: 0, ok: true })).toBe('completed');
    const after = s.tick(30).dispatch.filter((d) => d.edge === 0);
    expect(after.map((d) => d.chunk).sort()).toEqual([...onFast].sort());
  });

  test('demand: READ_AHEAD fetches are not pre-empted, and a DEMAND chunk waits when every slot of its edges holds one', () => {
    const s = make(20, [10e6], {}, 2);
    s.setPriority(5, ChunkPriority.READ_AHEAD);
    s.setPriority(6, ChunkPriority.READ_AHEAD);
    expect(s.tick(0).dispatch.map((d) => d.chunk)).toEqual([5, 6]);
    s.setPriority(12, ChunkPriority.DEMAND);
    const r = s.tick(10);
    expect(r.dispatch).toEqual([]);
    expect(r.cancels).toEqual([]);
    expect(s.counters.preempted).toBe(0);
    expect(s.report({ chunk: 5, attempt: s.chunks.attempt[5], edge: 0, ok: true })).toBe('completed');
    expect(s.tick(20).dispatch.map((d) => d.chunk)).toEqual([12]);
  });

  test('preemptEdge: every fetch below the priority on that edge is cancelled and pending again, at no attempt cost; the other edge keeps its fetches', () => {
    const s = make(20, [10e6, 5e6], { maxAttemptsPerChunk: 1 }, 2);
    const first = s.tick(0);
    const onFast = first.dispatch.filter((d) => d.edge === 0);
    const onSlow = first.dispatch.filter((d) => d.edge === 1);
    expect(onFast).toHaveLength(2);
    expect(onSlow).toHaveLength(2);
    expect(() => s.preemptEdge(2)).toThrow(/edge/);
    // a background task yielding edge 0: its gate (max_parallel 0) and then the cancel of what runs there
    s.updateEdge(0, { maxParallel: 0 });
    expect(s.preemptEdge(0, Number.POSITIVE_INFINITY)).toBe(2);
    for (const d of onFast) expect(s.chunks.status[d.chunk]).toBe(ChunkStatus.PENDING);
    expect(s.edges.queueDepth[0]).toBe(0);
    expect(s.counters.preempted).toBe(2);
    const r = s.tick(10);
    expect(r.cancels.map((c) => [c.chunk, c.edge, c.attempt])).toEqual(
      onFast.map((d) => [d.chunk, 0, d.attempt]),
    );
    expect(r.dispatch.filter((d) => d.edge === 0)).toEqual([]);
    for (const d of onSlow) expect(s.chunks.status[d.chunk]).toBe(ChunkStatus.IN_FLIGHT);
    // the executor's cancelled reports are stale; with one attempt allowed, the chunks still run again
    for (const d of onFast)
      expect(s.report({ chunk: d.chunk, attempt: d.attempt, edge: 0, ok: false, reason: 'cancelled' })).toBe(
        'stale',
      );
    s.updateEdge(0, { maxParallel: 2 });
    const again = s.tick(20).dispatch.filter((d) => d.edge === 0);
    expect(again.map((d) => d.chunk).sort()).toEqual(onFast.map((d) => d.chunk).sort());
    // a priority bound keeps the fetches at or above it
    s.setPriority(again[0].chunk, ChunkPriority.READ_AHEAD);
    expect(s.preemptEdge(0)).toBe(1);
    expect(s.chunks.status[again[0].chunk]).toBe(ChunkStatus.IN_FLIGHT);
  });

  test('load balance: moves pending chunks off an edge at ≥ 90% to backups under 50%, no further', () => {
    const s = make(40, [100e6, 9e6, 8e6], {}, 10);
    // fill edge 0 to 9/10 in flight by hand-dispatching through ticks with edges 1,2 offline
    s.updateEdge(1, { available: false });
    s.updateEdge(2, { available: false });
    s.tick(0);
    expect(s.edges.queueDepth[0]).toBe(10);
    // complete one on edge 0 → 9/10 = 90% (overloaded); bring edges 1,2 back
    const first = 0;
    expect(s.report({ chunk: first, attempt: s.chunks.attempt[first], edge: 0, ok: true })).toBe('completed');
    s.updateEdge(1, { available: true });
    s.updateEdge(2, { available: true });
    const r = s.tick(10);
    // full re-rank keeps edge 0 best; balance moves pending chunks until edges 1 and 2 reach 50%
    expect(r.moved).toBe(10);
    expect(Array.from(s.chunks.assigned.subarray(10, 20))).toEqual([1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    // dispatch fills edge 0's last slot, then the moved chunks, then spills the rest into free slots
    const perEdge = [0, 0, 0];
    for (const d of r.dispatch) perEdge[d.edge]++;
    expect(perEdge).toEqual([1, 10, 10]);
    expect(s.counters.spilled).toBe(10);
  });

  test('load balance: nothing moves when no edge is at the overload threshold', () => {
    const s = make(6, [10e6, 9e6], {}, 10);
    const r = s.tick(0);
    expect(r.moved).toBe(0);
    expect(r.dispatch.every((d) => d.edge === 0)).toBe(true);
    expect(s.counters.spilled).toBe(0);
  });

  test('failure: a timeout fails over to the next precomputed backup within one tick', () => {
    const s = make(1, [10e6, 5e6, 2e6]);
    let r = s.tick(0);
    expect(r.dispatch[0]).toMatchObject({ chunk: 0, edge: 0 });
    const attempt = r.dispatch[0].attempt;
    r = s.tick(1001); // deadline = 0 + 1000
    expect(r.failed).toBe(1);
    expect(r.failover.backup).toBe(1);
    expect(r.cancels).toEqual([{ chunk: 0, edge: 0, attempt }]);
    expect(r.dispatch[0]).toMatchObject({ chunk: 0, edge: 1 });
    expect(s.counters.timeouts).toBe(1);
    // a timeout is slowness, not bad data: the slow edge stays a candidate for the chunk
    expect(hasCandidate(s.chunks, 0, 0)).toBe(true);
  });

  test('failure: attempt ids start at firstAttempt so reports of a previous incarnation are stale', () => {
    const s = new ChunkScheduler({ chunks: 1, chunkBytes: 1000, edgeCapacity: 1 }, {}, 2 ** 24);
    s.updateEdge(0, { bandwidth: 1e6, available: true, maxParallel: 1 });
    s.setAvailability(0, 0, true);
    const d = s.tick(0).dispatch[0];
    expect(d.attempt).toBe(2 ** 24);
    expect(s.report({ chunk: 0, attempt: 1, edge: 0, ok: true })).toBe('stale');
  });

  test('failure: an explicit failure report fails over; a stale report for the old attempt is ignored', () => {
    const s = make(1, [10e6, 5e6, 2e6]);
    const d0 = s.tick(0).dispatch[0];
    expect(s.report({ chunk: 0, attempt: d0.attempt, edge: 0, ok: false, reason: 'http' })).toBe('failed');
    const d1 = s.tick(10).dispatch[0];
    expect(d1.edge).toBe(1);
    expect(s.report({ chunk: 0, attempt: d0.attempt, edge: 0, ok: true })).toBe('stale');
    expect(s.report({ chunk: 0, attempt: d1.attempt, edge: 1, ok: true })).toBe('completed');
    expect(s.report({ chunk: 0, attempt: d1.attempt, edge: 1, ok: true })).toBe('duplicate');
    expect(s.done).toBe(true);
  });

  test('failure: an edge that goes offline fails its in-flight chunks over', () => {
    const s = make(2, [10e6, 5e6]);
    s.tick(0);
    s.updateEdge(0, { available: false });
    const r = s.tick(5);
    expect(r.failed).toBe(2);
    expect(r.dispatch.map((d) => d.edge)).toEqual([1, 1]);
  });

  test('failover: walks the backups in order, then recomputes from other holders beyond K', () => {
    const s = make(1, [10e6, 9e6, 8e6, 7e6], { k: 2 });
    const order: number[] = [];
    let now = 0;
    for (let i = 0; i < 4; i++) {
      const d = s.tick(now).dispatch[0];
      order.push(d.edge);
      s.report({ chunk: 0, attempt: d.attempt, edge: d.edge, ok: false, reason: 'http' });
      now += 10;
    }
    expect(order).toEqual([0, 1, 2, 3]);
    expect(s.counters.recomputed).toBeGreaterThanOrEqual(1);
    const r = s.tick(now);
    expect(r.failover.permanent).toBe(1);
    expect(s.chunks.status[0]).toBe(ChunkStatus.FAILED_PERMANENT);
  });

  test('failover: FAILED_PERMANENT only when no edge holds the chunk; a chunk whose holders are offline waits', () => {
    const s = make(1, [10e6, 5e6]);
    const d = s.tick(0).dispatch[0];
    s.updateEdge(1, { available: false });
    s.report({ chunk: 0, attempt: d.attempt, edge: 0, ok: false, reason: 'http' });
    let r = s.tick(10);
    expect(r.failover.parked).toBe(1);
    expect(s.chunks.status[0]).toBe(ChunkStatus.PENDING);
    expect(s.chunks.assigned[0]).toBe(NO_EDGE);
    s.updateEdge(1, { available: true });
    r = s.tick(20);
    expect(r.dispatch[0]).toMatchObject({ chunk: 0, edge: 1 });
  });

  test('failover: when the only live holder was excluded for a corrupt copy, it gets another try instead of a stall', () => {
    const s = make(1, [10e6, 5e6]);
    const d = s.tick(0).dispatch[0];
    expect(d.edge).toBe(0);
    s.updateEdge(1, { available: false }); // the other holder dies
    s.report({ chunk: 0, attempt: d.attempt, edge: 0, ok: false, reason: 'corrupt' });
    const r = s.tick(10);
    expect(r.failover.parked).toBe(0);
    expect(r.dispatch[0]).toMatchObject({ chunk: 0, edge: 0 });
    expect(s.counters.forgiven).toBe(1);
    // a second corrupt copy from the same edge is not forgiven again: the chunk waits for another holder
    s.report({ chunk: 0, attempt: r.dispatch[0].attempt, edge: 0, ok: false, reason: 'corrupt' });
    expect(s.tick(20).failover.parked).toBe(1);
  });

  test('failover: a corrupt chunk excludes that edge for that chunk even if it announces it again', () => {
    const s = make(1, [10e6, 5e6], { perEdgeRetryLimit: 3 });
    const d = s.tick(0).dispatch[0];
    s.report({ chunk: 0, attempt: d.attempt, edge: 0, ok: false, reason: 'corrupt' });
    s.setAvailability(0, 0, true);
    s.tick(10);
    const r = s.tick(20);
    expect(s.chunks.assigned[0]).toBe(1);
    expect(r.dispatch.length).toBe(0);
    expect(s.counters.corrupt).toBe(1);
  });

  test('failover: a busy edge (5xx) is retried later, not excluded', () => {
    const s = make(1, [10e6]);
    const d = s.tick(0).dispatch[0];
    s.report({ chunk: 0, attempt: d.attempt, edge: 0, ok: false, reason: 'busy' });
    expect(s.tick(10).dispatch[0]).toMatchObject({ chunk: 0, edge: 0 });
    expect(hasCandidate(s.chunks, 0, 0)).toBe(true);
  });

  test('failover: per-edge retry limit allows retries on the same edge up to the limit', () => {
    const s = make(1, [10e6], { perEdgeRetryLimit: 2 });
    let d = s.tick(0).dispatch[0];
    s.report({ chunk: 0, attempt: d.attempt, edge: 0, ok: false, reason: 'http' });
    d = s.tick(10).dispatch[0];
    expect(d.edge).toBe(0);
    s.report({ chunk: 0, attempt: d.attempt, edge: 0, ok: false, reason: 'http' });
    s.tick(20);
    expect(s.chunks.status[0]).toBe(ChunkStatus.FAILED_PERMANENT);
  });

  test('incremental: only dirty chunks are re-ranked until a trigger forces a full re-rank', () => {
    const s = make(100, [10e6, 5e6], {}, 1);
    expect(s.tick(0).ranked).toBe(100);
    s.setAvailability(50, 1, false);
    let r = s.tick(10);
    expect(r.fullRerank).toBe(false);
    expect(r.ranked).toBe(1);
    s.updateEdge(1, { bandwidth: 5.5e6 }); // +10%: not significant
    expect(s.tick(20).fullRerank).toBe(false);
    s.updateEdge(1, { bandwidth: 9e6 }); // +80%: significant
    r = s.tick(30);
    expect(r.fullRerank).toBe(true);
    expect(r.ranked).toBe(100);
    s.updateEdge(0, { available: false });
    expect(s.tick(40).fullRerank).toBe(true);
  });

  test('endgame: hedges the slowest in-flight chunk on another edge and cancels the loser', () => {
    const s = make(2, [10e6, 5e6], { endgameChunks: 4 }, 1);
    s.updateEdge(0, { timeoutMs: 10_000 });
    s.updateEdge(1, { timeoutMs: 10_000 });
    const r0 = s.tick(0);
    expect(r0.dispatch.map((d) => d.edge)).toEqual([0, 1]);
    const a = r0.dispatch.find((d) => d.edge === 0)!;
    const b = r0.dispatch.find((d) => d.edge === 1)!;
    // chunk on edge 0 finishes; the one on edge 1 is slow (expected 200 ms) → hedge on edge 0
    s.report({ chunk: a.chunk, attempt: a.attempt, edge: 0, ok: true });
    const r1 = s.tick(500);
    expect(r1.hedges).toBe(1);
    const h = r1.dispatch[0];
    expect(h).toMatchObject({ chunk: b.chunk, edge: 0, hedge: true });
    expect(s.report({ chunk: b.chunk, attempt: h.attempt, edge: 0, ok: true })).toBe('completed');
    const r2 = s.tick(510);
    expect(r2.cancels).toEqual([{ chunk: b.chunk, edge: 1, attempt: b.attempt }]);
    expect(s.edges.queueDepth[1]).toBe(0);
    expect(s.report({ chunk: b.chunk, attempt: b.attempt, edge: 1, ok: false, reason: 'cancelled' })).toBe(
      'duplicate',
    );
    expect(s.done).toBe(true);
    expect(s.counters.hedgeWins).toBe(1);
  });

  test('endgame: a tail chunk on a slow edge is hedged on an idle fast edge before it is late', () => {
    const { s, slow } = tailOnSlowEdge([20e6, 1e6]);
    // 10 ms into a ~1000 ms fetch on edge 1, edge 0 (expected 50 ms) is free: hedge now
    const r1 = s.tick(10);
    expect(r1.hedges).toBe(1);
    expect(r1.dispatch[0]).toMatchObject({ chunk: slow.chunk, edge: 0, hedge: true });
  });

  test("endgame: a fast edge's whole throughput, not its per-fetch share, decides a hedge of a slow edge's tail chunk", () => {
    // Edge 0: a 12 MB/s mirror that ran 11 fetches at once, so each measured ~1.1 MB/s (~910 ms a chunk);
    // edge 1: a 2 MB/s mirror running the last chunk (500 ms alone, 1 MB/s per fetch as it ran 2).
    const { s, slow } = tailOnSlowEdge([1.1e6, 1e6]);
    // by per-fetch estimates edge 0 (~910 ms) is not clearly faster than what is left on edge 1 (~990 ms)
    expect(s.tick(10).hedges).toBe(0);
    // edge 0 delivers 12 MB/s with all its fetches together, so one chunk alone there takes ~83 ms
    s.setEdgeThroughput(0, 12e6);
    expect(s.hedgeChunkMs(0)).toBeCloseTo(83.3, 0);
    const r1 = s.tick(20);
    expect(r1.hedges).toBe(1);
    expect(r1.dispatch[0]).toMatchObject({ chunk: slow.chunk, edge: 0, hedge: true });
  });

  test('endgame: no hedge while the free edge would not be clearly faster and the fetch is not late', () => {
    const s = make(2, [10e6, 9e6], { endgameChunks: 4, hedgeAfterFraction: 10 }, 1);
    s.updateEdge(0, { timeoutMs: 10_000 });
    s.updateEdge(1, { timeoutMs: 10_000 });
    const r0 = s.tick(0);
    const a = r0.dispatch.find((d) => d.edge === 0)!;
    s.report({ chunk: a.chunk, attempt: a.attempt, edge: 0, ok: true });
    expect(s.tick(10).hedges).toBe(0);
  });

  test('endgame: a failed primary is replaced by its running hedge without a new dispatch', () => {
    const s = make(1, [10e6, 5e6], { endgameChunks: 4 }, 1);
    s.updateEdge(0, { timeoutMs: 10_000 });
    s.updateEdge(1, { timeoutMs: 10_000 });
    const d = s.tick(0).dispatch[0];
    const h = s.tick(1000).dispatch[0];
    expect(h.hedge).toBe(true);
    expect(s.report({ chunk: 0, attempt: d.attempt, edge: d.edge, ok: false, reason: 'http' })).toBe(
      'promoted',
    );
    expect(s.tick(1010).dispatch.length).toBe(0);
    expect(s.report({ chunk: 0, attempt: h.attempt, edge: h.edge, ok: true })).toBe('completed');
  });

  test('bad input: unknown chunk and unknown edge are typed errors', () => {
    const s = make(2, [10e6]);
    expect(() => s.report({ chunk: 9, attempt: 1, edge: 0, ok: true })).toThrow(
      expect.objectContaining({ code: 'PORTAL_UNKNOWN_CHUNK' }),
    );
    expect(() => s.updateEdge(3, { available: true })).toThrow(
      expect.objectContaining({ code: 'PORTAL_UNKNOWN_EDGE' }),
    );
    expect(() => s.updateEdge(0, { health: 2 })).toThrow(
      expect.objectContaining({ code: 'PORTAL_INVALID_ARGUMENT' }),
    );
  });

  test('resume: chunks marked complete are never dispatched', () => {
    const s = make(4, [10e6], {}, 8);
    s.markComplete(1);
    s.markComplete(2);
    expect(s.tick(0).dispatch.map((d) => d.chunk)).toEqual([0, 3]);
    expect(Array.from(s.completionBitmap())).toEqual([0b0110]);
  });
});

describe('scheduler memory and bulk availability', () => {
  test('setEdgeHoldsAll gives the same tables and dispatch as setAvailability per chunk, and keeps exclusions', () => {
    const bulk = new ChunkScheduler({ chunks: 300, chunkBytes: 1_000_000, edgeCapacity: 3 });
    const each = make(300, [10e6, 5e6, 1e6], {}, 4);
    [10e6, 5e6, 1e6].forEach((bw, e) => {
      bulk.updateEdge(e, { bandwidth: bw, rtt: 0, available: true, maxParallel: 4, timeoutMs: 1000 });
      bulk.setEdgeHoldsAll(e);
    });
    const a = bulk.tick(0);
    const b = each.tick(0);
    expect(a.fullRerank).toBe(true);
    expect(a.dispatch).toEqual(b.dispatch);
    expect(Buffer.from(bulk.chunks.backups.buffer).equals(Buffer.from(each.chunks.backups.buffer))).toBe(
      true,
    );
    expect(
      Buffer.from(bulk.chunks.candidates.buffer).equals(Buffer.from(each.chunks.candidates.buffer)),
    ).toBe(true);
    // a corrupt copy excludes edge 0 for that chunk; declaring the whole file again does not bring it back
    const c = a.dispatch.find((d) => d.edge === 0)!;
    bulk.report({ chunk: c.chunk, attempt: c.attempt, edge: 0, ok: false, reason: 'corrupt' });
    bulk.setEdgeHoldsAll(0);
    expect(hasCandidate(bulk.chunks, c.chunk, 0)).toBe(false);
    expect(hasCandidate(bulk.chunks, c.chunk + 1, 0)).toBe(true);
  });

  test('per-chunk memory is the kernel table alone: 34 bytes per chunk with k = 3 and 33 edge slots, scratch stays small', () => {
    const n = 1_000_000;
    const s = new ChunkScheduler({ chunks: n, chunkBytes: 262_144, edgeCapacity: 33 });
    s.updateEdge(0, { bandwidth: 10e6, rtt: 1, available: true, maxParallel: 8, timeoutMs: 1000 });
    s.setEdgeHoldsAll(0);
    s.tick(0);
    const m = s.memoryBytes();
    // status 1 + assigned 2 + backups 3×2 + retries 1 + priority 4 + attempt 4 + dispatchedAt 4 + deadline 4
    // + candidates 2 words × 4 = 34 B
    expect(m.chunkTable).toBe(34 * n);
    // the re-rank flags (1 B per chunk) and a queue and scratch that do not grow with the transfer
    expect(m.queues).toBeLessThanOrEqual(n + 16 * 1024);
  });
});

describe('windowed re-rank of large transfers', () => {
  test('a transfer larger than rankWindow ranks a window ahead of the scan, moves it as chunks complete, and finishes', () => {
    const n = 1000;
    const s = new ChunkScheduler({ chunks: n, chunkBytes: 1_000_000, edgeCapacity: 2, rankWindow: 100 });
    s.updateEdge(0, { bandwidth: 10e6, rtt: 0, available: true, maxParallel: 8, timeoutMs: 1e6 });
    s.updateEdge(1, { bandwidth: 5e6, rtt: 0, available: true, maxParallel: 8, timeoutMs: 1e6 });
    s.setEdgeHoldsAll(0);
    s.setEdgeHoldsAll(1);
    expect(s.rankWork()).toMatchObject({ full: true, count: 100 });
    const first = s.tick(0);
    expect(first.fullRerank).toBe(true);
    expect(first.ranked).toBe(100);
    // ranked inside the window, never ranked beyond it
    expect(s.chunks.assigned[99]).not.toBe(NO_EDGE);
    expect(s.chunks.assigned[100]).toBe(NO_EDGE);
    expect(first.dispatch.length).toBe(16);
    let now = 0;
    let ticks = 1;
    let maxRanked = first.ranked;
    let pending = first.dispatch;
    while (!s.done && ticks < 2000) {
      for (const d of pending) s.report({ chunk: d.chunk, attempt: d.attempt, edge: d.edge, ok: true });
      const r = s.tick((now += 10));
      maxRanked = Math.max(maxRanked, r.ranked);
      pending = r.dispatch;
      ticks++;
    }
    expect(s.done).toBe(true);
    expect(s.progress().complete).toBe(n);
    // no tick ranked more than one window (plus nothing dirty here)
    expect(maxRanked).toBeLessThanOrEqual(100);
    expect(s.counters.fullReranks).toBe(1);
  });

  test('an edge going offline re-ranks one window, not the whole transfer', () => {
    const s = new ChunkScheduler({ chunks: 5000, chunkBytes: 1_000_000, edgeCapacity: 2, rankWindow: 256 });
    for (const e of [0, 1]) {
      s.updateEdge(e, { bandwidth: 10e6, rtt: 0, available: true, maxParallel: 4, timeoutMs: 1e6 });
      s.setEdgeHoldsAll(e);
    }
    s.tick(0);
    s.updateEdge(0, { available: false });
    const r = s.tick(10);
    expect(r.fullRerank).toBe(true);
    expect(r.ranked).toBe(256);
    expect(r.dispatch.every((d) => d.edge === 1)).toBe(true);
  });
});
