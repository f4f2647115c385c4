import {
  edgeParallelCap,
  NO_LIMIT_PARALLEL,
  ParallelLimits,
  tailGate,
  type TailEdge,
} from '../../actors/parallel-limit.js';

const MiB = 2 ** 20;

// A simulated edge with `n` fetches in flight of `chunk` bytes each, all sharing the edge's rate (`shared`: an
// uplink, a token bucket) or each getting `capBps` of its own (a per-connection cap); `rttMs` before each
// chunk's first byte. Returns the limit after each completion.
function drive(
  limits: ParallelLimits,
  o: {
    shared: boolean;
    capBps: number;
    configured: number;
    chunk: number;
    rttMs?: number;
    completions: number;
  },
): number[] {
  const seen: number[] = [];
  for (let i = 0; i < o.completions; i++) {
    const n = limits.limit(0, o.configured);
    const perFetchBps = o.shared ? o.capBps / n : o.capBps;
    const transferMs = (o.rttMs ?? 0) + (o.chunk / perFetchBps) * 1000;
    limits.onComplete(0, o.chunk, transferMs, n, o.configured, o.chunk);
    seen.push(limits.limit(0, o.configured));
  }
  return seen;
}

test('a slow shared edge (2 MB/s, 1 MiB chunks) keeps 2 fetches in flight instead of its max_parallel 8', () => {
  const limits = new ParallelLimits();
  const seen = drive(limits, {
    shared: true,
    capBps: 2e6,
    configured: 8,
    chunk: MiB,
    rttMs: 100,
    completions: 20,
  });
  expect(seen[seen.length - 1]).toBe(2);
  // its measured rate is the edge's, not one fetch's share
  expect(limits.rateBytesPerSec(0)).toBeGreaterThan(1.6e6);
  expect(limits.rateBytesPerSec(0)).toBeLessThan(2.1e6);
});

test('a fast shared edge (12 MB/s) gets its whole max_parallel: 1 s of its rate is 11 chunks', () => {
  const limits = new ParallelLimits();
  const seen = drive(limits, {
    shared: true,
    capBps: 12e6,
    configured: 8,
    chunk: MiB,
    rttMs: 4,
    completions: 20,
  });
  expect(seen[seen.length - 1]).toBe(8);
});

test('a middle edge (4 MB/s) settles at ⌊4 MB/s · 1 s / 1 MiB⌋ = 3', () => {
  const limits = new ParallelLimits();
  const seen = drive(limits, { shared: true, capBps: 4e6, configured: 8, chunk: MiB, completions: 30 });
  expect(seen[seen.length - 1]).toBe(3);
});

test('a per-connection cap: the rate grows with the fetches in flight and the limit climbs to max_parallel', () => {
  const limits = new ParallelLimits({ initial: 2 });
  const seen = drive(limits, {
    shared: false,
    capBps: 0.5e6,
    configured: 6,
    chunk: 256 * 1024,
    completions: 30,
  });
  expect(seen[0]).toBeGreaterThan(2);
  expect(seen[seen.length - 1]).toBe(6);
});

test('an edge short of chunks (fewer in flight than its limit) is not measured and keeps its limit', () => {
  const limits = new ParallelLimits();
  for (let i = 1; i <= 50; i++) expect(limits.onComplete(0, MiB, 5000, 1, 8, MiB)).toBe(false);
  expect(limits.limit(0, 8)).toBe(4);
  expect(limits.rateBytesPerSec(0)).toBe(0);
});

test('the configured max_parallel caps the limit, and 0 (a gated edge) stays 0', () => {
  const limits = new ParallelLimits({ initial: 4 });
  expect(limits.limit(0, 3)).toBe(3);
  expect(limits.limit(1, 0)).toBe(0);
});

describe('tailGate', () => {
  // the throttled-mirrors bench: 12, 4 and 2 MB/s mirrors (one died), 1 MiB chunks
  const mirrors = (inFlight: number[]): TailEdge[] =>
    [12e6, 4e6, 2e6].map((r, i) => ({
      inFlight: inFlight[i],
      rateBytesPerSec: r,
      usable: true,
      holdsAll: true,
    }));

  test('far from the end nothing is gated', () => {
    expect(tailGate(mirrors([8, 3, 2]), 100 * MiB, MiB)).toEqual([false, false, false]);
  });

  test('near the end the slow mirrors stop taking chunks they would finish after the rest, the fastest never', () => {
    // 18 MiB left: about 1 s for all three; one more chunk on the 2 MB/s mirror (2 in flight) ends after 1.6 s
    expect(tailGate(mirrors([8, 3, 2]), 18 * MiB, MiB)).toEqual([false, false, true]);
    // 10 MiB left: 0.58 s; the 4 MB/s mirror (3 in flight) would need 1 s for one more
    expect(tailGate(mirrors([8, 3, 2]), 10 * MiB, MiB)).toEqual([false, true, true]);
    // 1 MiB left: even the fastest would finish late, but one edge holding everything stays open
    expect(tailGate(mirrors([8, 3, 2]), MiB, MiB)).toEqual([false, true, true]);
  });

  test('an edge that does not hold every chunk is never gated (its chunks may have no other source)', () => {
    const edges = mirrors([8, 3, 2]);
    edges[2].holdsAll = false;
    expect(tailGate(edges, 10 * MiB, MiB)).toEqual([false, true, false]);
  });

  test('unmeasured and unusable edges are left alone; without any measured rate nothing is gated', () => {
    const edges = mirrors([8, 3, 2]);
    edges[1].rateBytesPerSec = 0;
    edges[0].usable = false;
    // only the 2 MB/s mirror is measured and usable: the rest would take 5 s there, so nothing is late
    expect(tailGate(edges, 10 * MiB, MiB)).toEqual([false, false, false]);
    expect(
      tailGate(
        mirrors([0, 0, 0]).map((e) => ({ ...e, rateBytesPerSec: 0 })),
        MiB,
        MiB,
      ),
    ).toEqual([false, false, false]);
  });
});

test('a seeded edge starts at the limit its journaled rate sizes, not the initial 4, and keeps averaging from it', () => {
  const l = new ParallelLimits();
  l.seed(0, 12_000_000, MiB); // 12 MB/s: ⌊12e6 · 1 s / 1 MiB⌋ = 11
  expect(l.limit(0, 16)).toBe(11);
  expect(l.rateBytesPerSec(0)).toBeCloseTo(12_000_000);
  l.seed(1, 2_000_000, MiB); // 2 MB/s: 1, raised to the minimum 2
  expect(l.limit(1, 8)).toBe(2);
  // a sample at 6 MB/s (11 in flight, each 1 MiB in 1922 ms) moves the EMA a quarter of the way: 10.5 MB/s → 10
  l.onComplete(0, MiB, (11 * MiB * 1000) / 6_000_000, 11, 16, MiB);
  expect(l.rateBytesPerSec(0)).toBeCloseTo(10_500_000, -3);
  expect(l.limit(0, 16)).toBe(10);
  // nothing usable is ignored: the edge keeps the initial 4
  for (const bad of [0, -1, NaN, Infinity]) l.seed(2, bad, MiB);
  expect(l.limit(2, 8)).toBe(4);
});

test('edgeParallelCap: maxParallel 0 is no limit (NO_LIMIT_PARALLEL), any other value caps as given', () => {
  expect(edgeParallelCap(0)).toBe(NO_LIMIT_PARALLEL);
  expect(NO_LIMIT_PARALLEL).toBe(1024);
  expect(edgeParallelCap(1)).toBe(1);
  expect(edgeParallelCap(8)).toBe(8);
  // the adaptive limit still decides under "no limit": 4 before the edge's first measurement
  expect(new ParallelLimits().limit(0, edgeParallelCap(0))).toBe(4);
});
