import type { ChunkTable, EdgeTable } from '../tables.js';
import type { EdgeRanking } from './cost.js';
import { ChunkStatus, INF_RANK, NO_EDGE } from '../types.js';

/**
 * Scheduling order: chunks are visited by priority (higher first), then by id. `order` is the
 * permutation (undefined = identity, when all priorities are equal); `start` skips a prefix known
 * to hold no pending chunk.
 */
export interface ScanOrder {
  order: Uint32Array | undefined;
  start: number;
}

/**
 * The load_balance kernel: a PENDING chunk assigned to an edge at or above `over` × max_parallel
 * moves to its first backup below `under` × max_parallel (counting chunks moved there this pass).
 * Visits chunks in scheduling order and stops as soon as no edge is below `under`.
 * Returns the number of chunks moved.
 */
export function loadBalance(
  t: ChunkTable,
  edges: EdgeTable,
  ranking: EdgeRanking,
  scan: ScanOrder,
  over: number,
  under: number,
): number {
  const E = edges.e;
  const movedIn = new Uint32Array(E);
  let overloaded = 0;
  let underloaded = 0;
  for (let e = 0; e < E; e++) {
    if (ranking.rank[e] === INF_RANK) continue;
    const load = edges.queueDepth[e] / edges.maxParallel[e];
    if (load >= over) overloaded++;
    if (load < under) underloaded++;
  }
  if (overloaded === 0 || underloaded === 0) return 0;
  const k = t.k;
  let moves = 0;
  for (let i = scan.start; i < t.n && underloaded > 0; i++) {
    const c = scan.order ? scan.order[i] : i;
    if (t.status[c] !== ChunkStatus.PENDING) continue;
    const a = t.assigned[c];
    if (a === NO_EDGE || edges.queueDepth[a] / edges.maxParallel[a] < over) continue;
    for (let j = 0; j < k; j++) {
      const b = t.backups[c * k + j];
      if (b === NO_EDGE || b === a || ranking.rank[b] === INF_RANK) continue;
      const mp = edges.maxParallel[b];
      if ((edges.queueDepth[b] + movedIn[b]) / mp >= under) continue;
      t.assigned[c] = b;
      movedIn[b]++;
      moves++;
      if ((edges.queueDepth[b] + movedIn[b]) / mp >= under) underloaded--;
      break;
    }
  }
  return moves;
}

/**
 * The generate_dispatch kernel: visits PENDING chunks in scheduling order and dispatches each to
 * its assigned edge while that edge has a free slot (queue_depth < max_parallel); when the
 * assigned edge is full, the chunk spills to its lowest-ranked candidate edge that has a free slot,
 * so every edge that holds pending work is kept busy, cheapest first. Stops at `limit` dispatches
 * or once every edge is full. A dispatched chunk becomes IN_FLIGHT with attempt id
 * `nextAttempt + i`, `dispatchedAt = now` and `deadline = now + timeout of its edge`. Writes the
 * chunk ids into `out`; returns how many, and how many spilled.
 */
export function generateDispatch(
  t: ChunkTable,
  edges: EdgeTable,
  ranking: EdgeRanking,
  scan: ScanOrder,
  now: number,
  limit: number,
  nextAttempt: number,
  out: Uint32Array,
): { count: number; spilled: number } {
  const rank = ranking.rank;
  let free = 0;
  for (let e = 0; e < edges.e; e++)
    if (rank[e] !== INF_RANK && edges.queueDepth[e] < edges.maxParallel[e]) free++;
  let n = 0;
  let spilled = 0;
  for (let i = scan.start; i < t.n && n < limit && free > 0; i++) {
    const c = scan.order ? scan.order[i] : i;
    if (t.status[c] !== ChunkStatus.PENDING) continue;
    let a = t.assigned[c];
    if (a === NO_EDGE) continue;
    if (rank[a] === INF_RANK || edges.queueDepth[a] >= edges.maxParallel[a]) {
      const bestEdge = spillEdge(t, c, rank, edges.queueDepth, edges.maxParallel);
      if (bestEdge === NO_EDGE) continue;
      a = bestEdge;
      t.assigned[c] = a;
      spilled++;
    }
    t.status[c] = ChunkStatus.IN_FLIGHT;
    t.attempt[c] = (nextAttempt + n) >>> 0;
    t.dispatchedAt[c] = now;
    t.deadline[c] = Math.min(0xffffffff, now + Math.ceil(edges.timeoutMs[a]));
    edges.queueDepth[a]++;
    if (edges.queueDepth[a] >= edges.maxParallel[a]) free--;
    out[n++] = c;
  }
  return { count: n, spilled };
}

/**
 * The spill target of chunk `c` whose assigned edge is full: its lowest-ranked candidate edge with
 * a free slot (`queueDepth < maxParallel`), or NO_EDGE. Shared by the CPU dispatch kernel and the
 * host side of the GPU one, so both decide spills the same way.
 */
export function spillEdge(
  t: ChunkTable,
  c: number,
  rank: Int32Array,
  queueDepth: Uint32Array,
  maxParallel: Uint32Array,
): number {
  let best = INF_RANK;
  let bestEdge = NO_EDGE;
  const words = t.words;
  for (let w = 0; w < words; w++) {
    let bits = t.candidates[c * words + w];
    while (bits !== 0) {
      const low = bits & -bits;
      const e = (w << 5) + (31 - Math.clz32(low));
      bits = (bits ^ low) >>> 0;
      if (rank[e] < best && queueDepth[e] < maxParallel[e]) {
        best = rank[e];
        bestEdge = e;
      }
    }
  }
  return bestEdge;
}
