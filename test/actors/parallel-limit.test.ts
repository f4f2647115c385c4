import { ParallelLimits } from '../../actors/parallel-limit.js';

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
