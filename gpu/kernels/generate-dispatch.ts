import type { ChunkTable, EdgeTable } from '../../scheduler/tables.js';
import type { EdgeRanking } from '../../scheduler/kernels/cost.js';
import { spillEdge, type ScanOrder } from '../../scheduler/kernels/dispatch.js';
import { ChunkStatus, INF_RANK, NO_EDGE } from '../../scheduler/types.js';
import type { GpuContext } from '../context.js';
import { forEachOrdered } from './ordered-compact.js';

/** Options of generateDispatchGpu / loadBalanceGpu. */
export interface OrderedPhaseOptions {
  /** Positions in the first GPU window (tests use tiny windows to cross window borders). Default: 2 × the most dispatches possible, ≥ 256. */
  window?: number;
}

/**
 * generate_dispatch with the scan on the GPU. The reference's decisions are a sequential greedy:
 * per-edge max_parallel, the per-tick limit and spilling (a chunk whose edge is full goes to its
 * lowest-ranked candidate with a free slot) make each decision depend on every earlier one in
 * scheduling order, so no parallel formulation reproduces the spills exactly. What is parallel is
 * finding the chunks the greedy visits: the GPU's ordered compaction (flags → block counts →
 * prefix-sum scan → scatter; ordered-*.wgsl) returns only the first window of dispatchable chunks
 * (PENDING, with an edge) in scheduling order, and the host runs the greedy over that window —
 * O(window), about 2 × the dispatches of the tick — fetching a 4× larger window from where it
 * stopped only while the greedy still has slots and budget left. Decisions are recorded and
 * applied at the end, so a GPU error leaves the tables untouched. Chunks the compaction drops are
 * the ones the reference skips without effect, so dispatches, attempts, deadlines, queue depths
 * and the spill count are identical.
 */
export async function generateDispatchGpu(
  ctx: GpuContext,
  t: ChunkTable,
  edges: EdgeTable,
  ranking: EdgeRanking,
  scan: ScanOrder,
  now: number,
  limit: number,
  nextAttempt: number,
  out: Uint32Array,
  opts: OrderedPhaseOptions = {},
): Promise<{ count: number; spilled: number }> {
  const rank = ranking.rank;
  const E = edges.e;
  const mp = edges.maxParallel;
  const qd = edges.queueDepth.slice();
  let free = 0;
  let slots = 0;
  for (let e = 0; e < E; e++)
    if (rank[e] !== INF_RANK && qd[e] < mp[e]) {
      free++;
      slots += mp[e] - qd[e];
    }
  if (free === 0 || limit <= 0) return { count: 0, spilled: 0 };
  const picks = new Uint16Array(Math.min(limit, t.n));
  let n = 0;
  let spilled = 0;
  const visit = (c: number): boolean => {
    let a = t.assigned[c];
    if (t.status[c] !== ChunkStatus.PENDING || a === NO_EDGE) return true;
    if (rank[a] === INF_RANK || qd[a] >= mp[a]) {
      const bestEdge = spillEdge(t, c, rank, qd, mp);
      if (bestEdge === NO_EDGE) return true;
      a = bestEdge;
      spilled++;
    }
    qd[a]++;
    if (qd[a] >= mp[a]) free--;
    picks[n] = a;
    out[n++] = c;
    return n < limit && free > 0;
  };
  const window = opts.window ?? Math.max(256, 2 * Math.min(limit, slots));
  await forEachOrdered(ctx, t, scan, new Uint32Array(E).fill(1), window, visit);
  for (let i = 0; i < n; i++) {
    const c = out[i];
    const a = picks[i];
    t.assigned[c] = a;
    t.status[c] = ChunkStatus.IN_FLIGHT;
    t.attempt[c] = (nextAttempt + i) >>> 0;
    t.dispatchedAt[c] = now;
    t.deadline[c] = Math.min(0xffffffff, now + Math.ceil(edges.timeoutMs[a]));
  }
  edges.queueDepth.set(qd);
  return { count: n, spilled };
}
