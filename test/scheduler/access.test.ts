import {
  AccessTracker,
  ChunkPriority,
  ChunkScheduler,
  ChunkStatus,
  readAheadChunks,
} from '../../scheduler/index.js';

const CHUNK = 1_000_000;

/** A scheduler over `n` chunks of 1 MB held by edges of the given bandwidths (bytes/s), RTT 0, 4 slots each. */
function make(n: number, bws: number[]): ChunkScheduler {
  const s = new ChunkScheduler({ chunks: n, chunkBytes: CHUNK, edgeCapacity: bws.length });
  bws.forEach((bw, e) =>
    s.updateEdge(e, { bandwidth: bw, rtt: 0, available: true, maxParallel: 4, timeoutMs: 5000 }),
  );
  for (let c = 0; c < n; c++) for (let e = 0; e < bws.length; e++) s.setAvailability(c, e, true);
  return s;
}

describe('access tracking (streaming reads)', () => {
  test('a read raises exactly its missing chunks to DEMAND, and they are dispatched before lower chunk ids', () => {
    const s = make(100, [10e6]);
    s.markComplete(60);
    const a = new AccessTracker(s, { tickMs: 50 });
    const plan = a.read({ readerId: 'r', first: 59, last: 62, now: 0 });
    expect(plan).toMatchObject({
      complete: [60],
      missing: [59, 61, 62],
      sequential: false,
      readAhead: 0,
      changed: 3,
    });
    const raised = [...s.chunks.priority.keys()].filter((c) => s.chunks.priority[c] !== ChunkPriority.NORMAL);
    expect(raised).toEqual([59, 61, 62]);
    const d = s.tick(0).dispatch.map((x) => x.chunk);
    // the three demanded chunks at once; the edge running them takes nothing else meanwhile
    expect(d).toEqual([59, 61, 62]);
  });

  test('a reader whose reads follow each other gets read-ahead sized by its rate and the edges (Little’s law)', () => {
    const s = make(1000, [10e6, 10e6]);
    const a = new AccessTracker(s, { tickMs: 50 });
    a.read({ readerId: 'r', first: 0, last: 0, now: 0 });
    const slow = a.read({ readerId: 'r', first: 1, last: 1, now: 100, rateBytesPerSec: 2e6 });
    // a chunk takes 100 ms on either edge: lead = 50 + 2·100 ms = 250 ms; 2 MB/s·0.25 s = 0.5 chunk → 1, + 1
    expect(slow).toMatchObject({ sequential: true, readAhead: 2 });
    expect(readAheadChunks({ rateBytesPerSec: 2e6, chunkBytes: CHUNK, tickMs: 50, edges: s.edges })).toBe(2);
    const fast = a.read({ readerId: 'r', first: 2, last: 2, now: 200, rateBytesPerSec: 40e6 });
    expect(fast.readAhead).toBe(11); // 40 MB/s·0.25 s = 10 chunks, + 1
    expect(s.chunks.priority[13]).toBe(ChunkPriority.READ_AHEAD);
    expect(s.chunks.priority[14]).toBe(ChunkPriority.NORMAL);
    // slower edges: the same reader needs more chunks ahead
    const s2 = make(1000, [2e6, 2e6]);
    expect(readAheadChunks({ rateBytesPerSec: 2e6, chunkBytes: CHUNK, tickMs: 50, edges: s2.edges })).toBe(
      Math.ceil(2 * (0.05 + 2 * 0.5)) + 1,
    );
  });

  test('a reader that seeks elsewhere has the chunks it raised and still waits for lowered back to NORMAL', () => {
    const s = make(100, [10e6]);
    const a = new AccessTracker(s, { tickMs: 50 });
    a.read({ readerId: 'r', first: 10, last: 11, now: 0 });
    a.read({ readerId: 'r', first: 12, last: 12, now: 10, rateBytesPerSec: 50e6 });
    expect(s.chunks.priority[13]).toBe(ChunkPriority.READ_AHEAD);
    const seek = a.read({ readerId: 'r', first: 80, last: 80, now: 20 });
    expect(seek.sequential).toBe(false);
    for (const c of [10, 11, 12, 13]) expect(s.chunks.priority[c]).toBe(ChunkPriority.NORMAL);
    expect(s.chunks.priority[80]).toBe(ChunkPriority.DEMAND);
    expect(s.chunks.status[80]).toBe(ChunkStatus.PENDING);
  });
});
