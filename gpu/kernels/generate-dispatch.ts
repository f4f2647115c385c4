import type { ChunkTable, EdgeTable } from '../../scheduler/tables.js';
import type { EdgeRanking } from '../../scheduler/kernels/cost.js';
import type { ScanOrder } from '../../scheduler/kernels/dispatch.js';
import { ChunkStatus, INF_RANK, NO_EDGE } from '../../scheduler/types.js';
import type { GpuContext } from '../context.js';
import { compactPendingGpu } from './compact-pending.js';

/**
 * generate_dispatch with its candidate search on the GPU. Per-edge max_parallel, the per-tick
 * limit and spilling to the cheapest free candidate make each decision depend on every earlier
 * one in scheduling order (higher priority first), so the decisions run on the host, over the
 * GPU-compacted list of dispatchable chunks (PENDING with an assigned edge; compact-pending.wgsl)
 * in scheduling order. Chunks the compaction drops are the ones the reference skips without
 * effect, so dispatches, attempts, deadlines and queue depths are identical.
 */
export async function generateDispatchGpu(ctx: GpuContext, t: ChunkTable, edges: EdgeTable, ranking: EdgeRanking, scan: ScanOrder, now: number, limit: number, nextAttempt: number, out: Uint32Array): Promise<{ count: number; spilled: number }> {
  const rank = ranking.rank;
  let free = 0;
  for (let e = 0; e < edges.e; e++) if (rank[e] !== INF_RANK && edges.queueDepth[e] < edges.maxParallel[e]) free++;
  if (free === 0 || limit <= 0) return { count: 0, spilled: 0 };
  const list = await compactPendingGpu(ctx, t, new Uint32Array(edges.e).fill(1), scan);
  let n = 0;
  let spilled = 0;
  const words = t.words;
  for (let i = 0; i < list.length && n < limit && free > 0; i++) {
    const c = list[i];
    let a = t.assigned[c];
    if (t.status[c] !== ChunkStatus.PENDING || a === NO_EDGE) continue;
    if (rank[a] === INF_RANK || edges.queueDepth[a] >= edges.maxParallel[a]) {
      let best = INF_RANK;
      let bestEdge = NO_EDGE;
      for (let w = 0; w < words; w++) {
        let bits = t.candidates[c * words + w];
        while (bits !== 0) {
          const low = bits & -bits;
          const e = (w << 5) + (31 - Math.clz32(low));
          bits = (bits ^ low) >>> 0;
          if (rank[e] < best && edges.queueDepth[e] < edges.maxParallel[e]) { best = rank[e]; bestEdge = e; }
        }
      }
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
