import { ChunkScheduler, ChunkStatus, NO_EDGE, type TickResult } from '../../scheduler/index.js';
import { tailGate } from '../../actors/parallel-limit.js';

const CHUNK = 262144;

/**
 * Trial 3 H2 in the scheduler core: one chunk, three mirrors holding every chunk — edge 0 always sends other bytes,
 * edge 1 sends other bytes now, edge 2 is honest but closed by its caller (max_parallel 0: the tail gate, since the
 * liars measured faster). Each fetch the tick sends to edge 0 or 1 is reported corrupt. Returns the edges asked, in order.
 */
function corruptUntilIdle(s: ChunkScheduler): { asked: number[]; last: TickResult } {
  const asked: number[] = [];
  let now = 0;
  let last = s.tick(now);
  while (last.dispatch.length > 0) {
    for (const d of last.dispatch) {
      expect(d.edge).not.toBe(2);
      asked.push(d.edge);
      s.report({ chunk: d.chunk, attempt: d.attempt, edge: d.edge, ok: false, reason: 'corrupt' });
    }
    last = s.tick((now += 10));
  }
  return { asked, last };
}

function threeMirrors(): ChunkScheduler {
  const s = new ChunkScheduler({ chunks: 1, chunkBytes: CHUNK, edgeCapacity: 3 });
  for (let e = 0; e < 3; e++) {
    s.updateEdge(e, { bandwidth: 10e6, rtt: 1, available: true, maxParallel: 4, timeoutMs: 5000 });
    s.setEdgeHoldsAll(e);
  }
  s.updateEdge(2, { maxParallel: 0 });
  return s;
}

describe('stranded chunks: a chunk whose open sources all sent it corrupt waits for no closed edge forever', () => {
  test('the exact report sequence parks the chunk; the closed honest edge is named as held, and once opened it serves', () => {
    const s = threeMirrors();
    const { asked, last } = corruptUntilIdle(s);
    // each liar once, then once more after forgiveness (a corrupt copy is forgiven once per edge), then parked
    expect([...asked].sort()).toEqual([0, 0, 1, 1]);
    expect(s.counters.corrupt).toBe(4);
    expect(s.counters.forgiven).toBe(1);
    expect(last.failover.parked).toBe(1);
    expect(s.chunks.status[0]).toBe(ChunkStatus.PENDING);
    expect(s.chunks.assigned[0]).toBe(NO_EDGE);
    expect(s.progress()).toMatchObject({ inFlight: 0, pending: 1, failedPermanent: 0 });
    // a tick more sends nothing: this was the stall (nothing in flight until the 60 s stall timeout)
    expect(s.tick(1000).dispatch).toEqual([]);

    // edge 2 has not failed the chunk and is online: the core names it, and the tail gate keeps it open
    expect([...s.heldSourcesOfStrandedChunks()]).toEqual([2]);
    const edges = [0, 1, 2].map((e) => ({
      inFlight: 0,
      // edge 0 never delivered (unmeasured), edge 1 delivered other chunks fast before it turned, edge 2 is slow
      rateBytesPerSec: [0, 50e6, 1e6][e],
      usable: true,
      holdsAll: true,
    }));
    // the gate alone closes the honest edge for the last chunk (the liars stay open: they hold every chunk)
    expect(tailGate(edges, CHUNK, CHUNK)[2]).toBe(true);
    expect(
      tailGate(
        edges.map((x, e) => ({ ...x, needed: e === 2 })),
        CHUNK,
        CHUNK,
      )[2],
    ).toBe(false);

    s.updateEdge(2, { maxParallel: 4 });
    const r = s.tick(1010);
    expect(r.dispatch.map((d) => d.edge)).toEqual([2]);
    expect(s.heldSourcesOfStrandedChunks().size).toBe(0);
    s.report({ chunk: 0, attempt: r.dispatch[0].attempt, edge: 2, ok: true });
    expect(s.done).toBe(true);
  });

  test('an edge that is offline, or excluded for the chunk, is not named: only an online edge held at max_parallel 0', () => {
    const s = threeMirrors();
    s.updateEdge(2, { available: false });
    corruptUntilIdle(s);
    expect(s.progress()).toMatchObject({ inFlight: 0, pending: 1 });
    expect(s.heldSourcesOfStrandedChunks().size).toBe(0);
    // edge 2 back online but closed: named
    s.updateEdge(2, { available: true });
    expect([...s.heldSourcesOfStrandedChunks()]).toEqual([2]);
  });

  test('when every source sent the chunk corrupt it fails for good at once instead of waiting', () => {
    const s = threeMirrors();
    s.updateEdge(2, { maxParallel: 4 });
    const asked: number[] = [];
    let now = 0;
    let r = s.tick(now);
    while (r.dispatch.length > 0) {
      for (const d of r.dispatch) {
        asked.push(d.edge);
        s.report({ chunk: d.chunk, attempt: d.attempt, edge: d.edge, ok: false, reason: 'corrupt' });
      }
      r = s.tick((now += 10));
    }
    expect(new Set(asked)).toEqual(new Set([0, 1, 2]));
    expect(s.progress()).toMatchObject({ inFlight: 0, pending: 0, failedPermanent: 1 });
    expect(s.heldSourcesOfStrandedChunks().size).toBe(0);
  });
});
