import {
  AccessTracker,
  ChunkPriority,
  ChunkScheduler,
  ChunkStatus,
  readAheadChunks,
} from '../../scheduler/index.js';
import { READ_PRIORITY } from '../../scheduler/access.js';

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

/**
 * Runs readers against `s` in rounds, as content servers drive it (transfer/content-server.ts): each reader reads
 * windows of `window` chunks from its position whenever the chunk there is missing; then a tick; then every fetch in
 * flight completes. Returns the chunks each tick dispatched, round by round, until the readers are served or after
 * `maxRounds`; `join` adds readers before the given round.
 */
function readRounds(
  s: ChunkScheduler,
  readers: Array<{ id: string; first: number; last: number; window: number; join?: number }>,
  maxRounds: number,
): number[][] {
  const a = new AccessTracker(s, { tickMs: 50 });
  const pos = new Map(readers.map((r) => [r.id, r.first]));
  const rounds: number[][] = [];
  for (let round = 0; round < maxRounds; round++) {
    const now = round * 100;
    for (const r of readers) {
      if ((r.join ?? 0) > round) continue;
      let p = pos.get(r.id)!;
      while (p <= r.last && s.chunks.status[p] === ChunkStatus.COMPLETE) p++;
      pos.set(r.id, p);
      if (p <= r.last) a.read({ readerId: r.id, first: p, last: Math.min(r.last, p + r.window - 1), now });
    }
    if (readers.every((r) => pos.get(r.id)! > r.last)) break;
    const d = s.tick(now).dispatch;
    rounds.push(d.map((x) => x.chunk));
    for (const x of d) s.report({ chunk: x.chunk, attempt: x.attempt, edge: x.edge, ok: true });
  }
  return rounds;
}

describe('access tracking (streaming reads)', () => {
  test('a read raises exactly its missing chunks above DEMAND; the chunks after it go to DEMAND for a reader as fast as the edges; the read’s own go first, two at a time per edge', () => {
    const s = make(100, [10e6]);
    s.markComplete(60);
    const a = new AccessTracker(s, { tickMs: 50 });
    const plan = a.read({ readerId: 'r', first: 59, last: 62, now: 0 });
    // rate unknown: the edges' 10 MB/s; a chunk alone takes 100 ms: urgent = ceil(10 · 0.35) + 1 = 5
    expect(plan).toMatchObject({
      complete: [60],
      missing: [59, 61, 62],
      sequential: false,
      readAhead: 5,
      changed: 8,
    });
    const at = (p: number): number[] =>
      [...s.chunks.priority.keys()].filter((c) => s.chunks.priority[c] === p);
    expect(at(READ_PRIORITY)).toEqual([59, 61, 62]);
    expect(at(ChunkPriority.DEMAND)).toEqual([63, 64, 65, 66, 67]);
    // two demanded chunks at once (DEMAND_PER_EDGE), the read's first; the edge running them takes nothing else
    expect(s.demandWaiting).toBe(true);
    expect(s.tick(0).dispatch.map((x) => x.chunk)).toEqual([59, 61]);
    // 62 and the read-ahead still wait for a DEMAND slot (the actor ticks on the next report, whatever its gap)
    expect(s.demandWaiting).toBe(true);
    expect(s.tick(10).dispatch).toEqual([]);
    expect(s.report({ chunk: 59, attempt: s.chunks.attempt[59], edge: 0, ok: true })).toBe('completed');
    // the read's last chunk next; read-ahead does not share an edge with it
    expect(s.tick(20).dispatch.map((x) => x.chunk)).toEqual([62]);
    expect(s.report({ chunk: 61, attempt: s.chunks.attempt[61], edge: 0, ok: true })).toBe('completed');
    expect(s.tick(30).dispatch).toEqual([]);
    expect(s.report({ chunk: 62, attempt: s.chunks.attempt[62], edge: 0, ok: true })).toBe('completed');
    expect(s.tick(40).dispatch.map((x) => x.chunk)).toEqual([63, 64]);
    for (const c of [63, 64, 65, 66, 67]) {
      if (s.chunks.status[c] === ChunkStatus.PENDING) s.tick(50);
      s.report({ chunk: c, attempt: s.chunks.attempt[c], edge: 0, ok: true });
    }
    expect(s.demandWaiting).toBe(false);
    expect(() => s.setEdgeThroughput(0, -1)).toThrow(/bytesPerSec/);
  });

  test('a reader whose reads follow each other gets read-ahead sized by its rate and the edges (Little’s law)', () => {
    const s = make(1000, [10e6, 10e6]);
    const a = new AccessTracker(s, { tickMs: 50 });
    a.read({ readerId: 'r', first: 0, last: 0, now: 0 });
    const slow = a.read({ readerId: 'r', first: 1, last: 1, now: 100, rateBytesPerSec: 2e6 });
    // a chunk takes 100 ms on either edge: total lead = 50 + 2·100 ms = 250 ms; 2 MB/s·0.25 s = 0.5 chunk → 1, + 1
    expect(slow).toMatchObject({ sequential: true, readAhead: 2 });
    // urgent lead = 50 + 3·100 ms (DEMAND_PER_EDGE + 1 chunks alone on the slowest edge): 2 MB/s·0.35 s → 1, + 1
    expect(readAheadChunks({ rateBytesPerSec: 2e6, chunkBytes: CHUNK, tickMs: 50, edges: s.edges })).toEqual({
      urgent: 2,
      total: 2,
    });
    const fast = a.read({ readerId: 'r', first: 2, last: 2, now: 200, rateBytesPerSec: 40e6 });
    // urgent: 40 MB/s·0.35 s = 14 chunks, + 1, all at DEMAND (the total, 40 MB/s·0.25 s + 1 = 11, is less)
    expect(fast.readAhead).toBe(15);
    for (let c = 3; c <= 17; c++) expect(s.chunks.priority[c]).toBe(ChunkPriority.DEMAND);
    expect(s.chunks.priority[18]).toBe(ChunkPriority.NORMAL);
    // slower edges: the same reader needs more chunks ahead
    const s2 = make(1000, [2e6, 2e6]);
    expect(readAheadChunks({ rateBytesPerSec: 2e6, chunkBytes: CHUNK, tickMs: 50, edges: s2.edges })).toEqual(
      {
        urgent: Math.ceil(2 * (0.05 + 3 * 0.5)) + 1,
        total: Math.ceil(2 * (0.05 + 3 * 0.5)) + 1,
      },
    );
  });

  test('read-ahead window: the urgent part follows the slowest edge’s chunk alone (measured throughput), the rest the shared per-fetch estimates', () => {
    // per-fetch estimates of 1 MB/s (an edge shared by several fetches), 2 edges
    const s = make(1000, [1e6, 1e6]);
    const est = (): ReturnType<typeof readAheadChunks> =>
      readAheadChunks({
        rateBytesPerSec: 8e6,
        chunkBytes: CHUNK,
        tickMs: 50,
        edges: s.edges,
        soloChunkMs: (e) => s.soloChunkMs(e),
      });
    // no throughput measured: the solo time is the per-fetch one (1 s): urgent = ceil(8·3.05) + 1 ≥ total
    expect(est()).toEqual({ urgent: Math.ceil(8 * 3.05) + 1, total: Math.ceil(8 * 3.05) + 1 });
    // measured: edge 0 delivers 8 MB/s alone, edge 1 4 MB/s: the slowest solo chunk is 250 ms
    s.setEdgeThroughput(0, 8e6);
    s.setEdgeThroughput(1, 4e6);
    expect(s.soloChunkMs(1)).toBe(250);
    // urgent lead = 50 ms + 3 · 250 ms
    expect(est()).toEqual({ urgent: Math.ceil(8 * 0.8) + 1, total: Math.ceil(8 * 2.05) + 1 });
    // twice the reader's rate, twice the chunks; an unknown rate, none
    expect(
      readAheadChunks({
        rateBytesPerSec: 16e6,
        chunkBytes: CHUNK,
        tickMs: 50,
        edges: s.edges,
        soloChunkMs: (e) => s.soloChunkMs(e),
      }).urgent,
    ).toBe(Math.ceil(16 * 0.8) + 1);
    expect(
      readAheadChunks({ rateBytesPerSec: undefined, chunkBytes: CHUNK, tickMs: 50, edges: s.edges }),
    ).toEqual({
      urgent: 0,
      total: 0,
    });
  });

  test('demand: a DEMAND chunk goes to the edge whose measured throughput delivers it soonest, not the best per-fetch estimate', () => {
    // per-fetch estimates say edge 0 (a share of 2 MB/s) beats edge 1 (a share of 1 MB/s) …
    const s = make(50, [2e6, 1e6]);
    // … but all their fetches together, edge 1 moves 8 MB/s and edge 0 4 MB/s
    s.setEdgeThroughput(0, 4e6);
    s.setEdgeThroughput(1, 8e6);
    s.tick(0);
    s.setPriority(40, ChunkPriority.DEMAND);
    const r = s.tick(10);
    expect(r.dispatch.map((d) => [d.chunk, d.edge])).toEqual([[40, 1]]);
    // without a measurement the per-fetch estimate decides
    const s2 = make(50, [2e6, 1e6]);
    s2.tick(0);
    s2.setPriority(40, ChunkPriority.DEMAND);
    expect(s2.tick(10).dispatch.map((d) => [d.chunk, d.edge])).toEqual([[40, 0]]);
    expect(() => s.setEdgeThroughput(0, -1)).toThrow(/bytesPerSec/);
    expect(() => s.setPriority(41, ChunkPriority.DEMAND, -1)).toThrow(/turn/);
  });

  test('concurrent readers take turns: a whole-file reader’s windows do not starve a Range at the end of the file; each reader’s first chunk goes in the first round', () => {
    // 2 edges × DEMAND_PER_EDGE (2) slots; a whole-file reader reads windows of 8 (content-server's windowChunks),
    // another the last 3 chunks. Chunk order alone sent the whole reader's windows first, round after round
    const s = make(160, [10e6, 10e6]);
    const rounds = readRounds(
      s,
      [
        { id: 'whole', first: 0, last: 159, window: 8 },
        { id: 'tail', first: 157, last: 159, window: 8 },
      ],
      60,
    );
    // one chunk of each reader in turn: the tail's three are sent in the first two rounds
    expect(rounds.slice(0, 3)).toEqual([
      [0, 157, 1, 158],
      [2, 159, 3, 4],
      [5, 6, 7, 8],
    ]);
    // the whole reader is not starved either: it gets every slot the tail does not take, in chunk order
    expect(rounds.flat().filter((c) => c < 157)).toEqual([...Array(157).keys()]);
  });

  test('concurrent readers take turns: a reader that joins later gets its first chunk in the next round, not behind the others’ queued windows', () => {
    const s = make(300, [10e6, 10e6]);
    const rounds = readRounds(
      s,
      [
        { id: 'a', first: 0, last: 299, window: 8 },
        { id: 'b', first: 100, last: 299, window: 8 },
        { id: 'c', first: 200, last: 202, window: 8, join: 3 },
      ],
      4,
    );
    expect(rounds).toEqual([
      [0, 100, 1, 101],
      [2, 102, 3, 103],
      [4, 104, 5, 105],
      [200, 6, 106, 201],
    ]);
  });

  test('a reader that asks again inside its read (a content server re-asking for the chunk it waits for) keeps the rest of its read and its turns', () => {
    const s = make(160, [10e6, 10e6]);
    const a = new AccessTracker(s, { tickMs: 50 });
    a.read({ readerId: 'whole', first: 0, last: 7, now: 0 });
    a.read({ readerId: 'tail', first: 157, last: 159, now: 0 });
    // content-server's poll: the chunk it waits for, length 1, then the whole reader's next window inside its last
    const poll = a.read({ readerId: 'tail', first: 157, last: 157, now: 250 });
    expect(poll.changed).toBe(0);
    expect(a.read({ readerId: 'whole', first: 4, last: 11, now: 250 }).changed).toBeGreaterThan(0);
    for (const c of [157, 158, 159, 0, 7, 11]) expect(s.chunks.priority[c]).toBe(READ_PRIORITY);
    expect(s.tick(300).dispatch.map((x) => x.chunk)).toEqual([0, 157, 1, 158]);
  });

  test('one reader alone, whatever it reads (forward, inside its last read, seeks back and forth), waits for its chunks of one priority in chunk order', () => {
    const s = make(400, [10e6, 10e6]);
    const a = new AccessTracker(s, { tickMs: 50 });
    // a fixed pseudo-random walk (LCG), with ticks and completions between reads
    let x = 12345;
    const rnd = (k: number): number => ((x = (x * 1103515245 + 12345) % 2 ** 31) % k) >>> 0;
    let pos = 0;
    for (let i = 0; i < 200; i++) {
      const kind = rnd(4);
      const first = kind === 0 ? rnd(392) : kind === 1 ? Math.max(0, pos - rnd(4)) : Math.min(399, pos);
      const last = Math.min(399, first + rnd(8));
      a.read({ readerId: 'r', first, last, now: i * 10 });
      pos = last + 1 > 399 ? 0 : last + 1;
      for (const p of [READ_PRIORITY, ChunkPriority.DEMAND]) {
        const waiting = [...s.chunks.priority.keys()].filter(
          (c) => s.chunks.priority[c] === p && s.chunks.status[c] === ChunkStatus.PENDING,
        );
        const byTurn = [...waiting].sort((c, d) => s.demandTurn(c) - s.demandTurn(d) || c - d);
        expect(byTurn).toEqual(waiting);
      }
      if (rnd(2) === 0)
        for (const d of s.tick(i * 10).dispatch)
          s.report({ chunk: d.chunk, attempt: d.attempt, edge: d.edge, ok: true });
    }
  });

  test('a reader that seeks elsewhere has the chunks it raised and still waits for lowered back to NORMAL', () => {
    const s = make(100, [10e6]);
    const a = new AccessTracker(s, { tickMs: 50 });
    a.read({ readerId: 'r', first: 10, last: 11, now: 0 });
    a.read({ readerId: 'r', first: 12, last: 12, now: 10, rateBytesPerSec: 50e6 });
    expect(s.chunks.priority[13]).toBe(ChunkPriority.DEMAND);
    expect(s.chunks.priority[20]).toBe(ChunkPriority.DEMAND);
    const seek = a.read({ readerId: 'r', first: 80, last: 80, now: 20 });
    expect(seek.sequential).toBe(false);
    for (const c of [10, 11, 12, 13, 20]) expect(s.chunks.priority[c]).toBe(ChunkPriority.NORMAL);
    expect(s.chunks.priority[80]).toBe(READ_PRIORITY);
    expect(s.chunks.status[80]).toBe(ChunkStatus.PENDING);
    // it keeps its place in line: the first turn it waited with (chunk 10's)
    expect(s.demandTurn(80)).toBe(1);
  });
});
