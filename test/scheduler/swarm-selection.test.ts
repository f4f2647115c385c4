import { ChunkScheduler, ChunkStatus, SwarmSelection, hasCandidate } from '../../scheduler/index.js';

const CHUNK = 262_144;
const ORIGIN = 0;

/** A scheduler of `n` chunks: edge 0 is the origin (holds all), edges 1.. are peer slots (hold nothing yet). */
function make(n: number, peers: number): ChunkScheduler {
  const s = new ChunkScheduler({ chunks: n, chunkBytes: CHUNK, edgeCapacity: 1 + peers });
  s.updateEdge(ORIGIN, { bandwidth: 20e6, rtt: 1, available: true, maxParallel: 8, timeoutMs: 5000 });
  for (let e = 1; e <= peers; e++)
    s.updateEdge(e, { bandwidth: 200e6, rtt: 1, available: true, maxParallel: 8, timeoutMs: 5000 });
  s.setEdgeHoldsAll(ORIGIN);
  return s;
}

/** A bitmap of `n` chunks with exactly `held` set. */
function bitmap(n: number, held: Iterable<number>): Uint8Array {
  const b = new Uint8Array(Math.ceil(n / 8));
  for (const c of held) b[c >>> 3] |= 1 << (c & 7);
  return b;
}

/** Chunks whose origin candidacy is on. */
function originOpen(s: ChunkScheduler): Set<number> {
  const open = new Set<number>();
  for (let c = 0; c < s.chunks.n; c++) if (hasCandidate(s.chunks, c, ORIGIN)) open.add(c);
  return open;
}

describe('swarm selection: who fetches which chunk from the origin', () => {
  test('alone, a member takes every chunk from the origin, in a pseudo-random order of its own', () => {
    const s = make(64, 0);
    const sel = new SwarmSelection(s, 'a', [ORIGIN]);
    sel.sync(0);
    expect(originOpen(s).size).toBe(64);
    expect(sel.ownedCount()).toBe(64);
    const order = s.tick(0).dispatch.map((d) => d.chunk);
    expect(order).toHaveLength(8);
    expect(order).not.toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    // another member's order differs
    const t = make(64, 0);
    new SwarmSelection(t, 'b', [ORIGIN]).sync(0);
    expect(t.tick(0).dispatch.map((d) => d.chunk)).not.toEqual(order);
  });

  test('three members that know each other split the chunks: each chunk is open to the origin at exactly one', () => {
    const n = 300;
    const ids = ['a', 'b', 'c'];
    const open = ids.map((self) => {
      const s = make(n, 2);
      const sel = new SwarmSelection(s, self, [ORIGIN]);
      ids
        .filter((id) => id !== self)
        .forEach((id, k) => {
          s.setEdgeHoldings(1 + k, bitmap(n, []));
          sel.peerHoldings(1 + k, id, bitmap(n, []), 0);
        });
      sel.sync(0);
      expect(sel.members().sort()).toEqual(ids);
      return originOpen(s);
    });
    for (let c = 0; c < n; c++) expect(open.filter((o) => o.has(c)).length).toBe(1);
    // and about a third each
    for (const o of open) expect(o.size).toBeGreaterThan(n / 3 - 40);
  });

  test('a chunk a live peer holds is never sent to the origin, not even as a spill when the peer is full', () => {
    const n = 64;
    const s = make(n, 1);
    const sel = new SwarmSelection(s, 'a', [ORIGIN]);
    const held = Array.from({ length: 40 }, (_, i) => i);
    s.setEdgeHoldings(1, bitmap(n, held));
    sel.peerHoldings(1, 'b', bitmap(n, held), 0);
    // the peer takes 1 fetch at a time: the other held chunks would spill to the origin's free slots
    s.updateEdge(1, { maxParallel: 1 });
    sel.sync(0);
    for (const c of held) expect(hasCandidate(s.chunks, c, ORIGIN)).toBe(false);
    const d = s.tick(0).dispatch;
    for (const x of d) if (held.includes(x.chunk)) expect(x.edge).toBe(1);
    for (const x of d) if (x.edge === ORIGIN) expect(held.includes(x.chunk)).toBe(false);
  });

  test("another member's chunk goes to the origin only once that member is gone or stuck", () => {
    const n = 200;
    const s = make(n, 1);
    const sel = new SwarmSelection(s, 'a', [ORIGIN], { stealAfterMs: 5000 });
    s.setEdgeHoldings(1, bitmap(n, []));
    sel.peerHoldings(1, 'b', bitmap(n, []), 0);
    sel.sync(0);
    const mine = originOpen(s);
    expect(mine.size).toBe(sel.ownedCount());
    expect(mine.size).toBeLessThan(n);
    const theirs = [...Array(n).keys()].filter((c) => !mine.has(c));
    // b grows its own chunks: not stuck
    sel.peerHoldings(1, 'b', bitmap(n, theirs.slice(0, 5)), 4000);
    s.setEdgeHoldings(1, bitmap(n, theirs.slice(0, 5)));
    sel.sync(8000);
    expect(originOpen(s)).toEqual(mine);
    // nothing new from b for 5 s: its unheld chunks open here too (the 5 it holds stay with it)
    sel.sync(9000);
    expect(originOpen(s).size).toBe(n - 5);
    // b leaves: its chunks are this member's now, and the 5 it held are no longer held by a live peer
    s.updateEdge(1, { available: false });
    sel.sync(9100);
    expect(sel.members()).toEqual(['a']);
    expect(originOpen(s).size).toBe(n);
  });

  test('a chunk its only holder failed goes back to the origin instead of failing the transfer', () => {
    const n = 16;
    const s = make(n, 1);
    const sel = new SwarmSelection(s, 'a', [ORIGIN]);
    const all = [...Array(n).keys()];
    s.setEdgeHoldings(1, bitmap(n, all));
    sel.peerHoldings(1, 'b', bitmap(n, all), 0);
    sel.sync(0);
    expect(originOpen(s).size).toBe(0);
    const d = s.tick(0).dispatch;
    expect(d.every((x) => x.edge === 1)).toBe(true);
    // the peer answers 404 for the first chunk: excluded for it, no candidate left
    const first = d[0];
    expect(s.report({ chunk: first.chunk, attempt: first.attempt, edge: 1, ok: false, reason: 'http' })).toBe(
      'failed',
    );
    s.tick(10);
    expect(s.chunks.status[first.chunk]).toBe(ChunkStatus.FAILED_PERMANENT);
    expect(sel.rescue()).toBe(1);
    expect(s.chunks.status[first.chunk]).toBe(ChunkStatus.PENDING);
    expect(s.tick(20).dispatch).toContainEqual(expect.objectContaining({ chunk: first.chunk, edge: ORIGIN }));
  });

  test('bad arguments are refused with the argument named', () => {
    const s = make(8, 1);
    expect(() => new SwarmSelection(s, '', [ORIGIN])).toThrow(/selfId/);
    expect(() => new SwarmSelection(s, 'a', [5])).toThrow(/sourceEdges/);
    const sel = new SwarmSelection(s, 'a', [ORIGIN]);
    expect(() => sel.peerHoldings(ORIGIN, 'b', bitmap(8, []), 0)).toThrow(/edge/);
    expect(() => sel.peerHoldings(1, 'b', new Uint8Array(0), 0)).toThrow(/bitmap/);
  });
});
