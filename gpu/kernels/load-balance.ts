import type { ChunkTable, EdgeTable } from '../../scheduler/tables.js';
import type { EdgeRanking } from '../../scheduler/kernels/cost.js';
import type { ScanOrder } from '../../scheduler/kernels/dispatch.js';
import { INF_RANK, NO_EDGE } from '../../scheduler/types.js';
import type { GpuContext } from '../context.js';
import { compactPendingGpu } from './compact-pending.js';

/**
 * load_balance with its candidate search on the GPU. The reference visits chunks in scheduling
 * order and each move consumes capacity that later chunks see, so the moves themselves are a
 * sequential greedy: the GPU compacts the chunks that can move at all (PENDING, assigned to an
 * edge at or above `over`; compact-pending.wgsl), and the host runs the reference's loop over that
 * list only. Skipped chunks change nothing in the reference, so the result is identical.
 */
export async function loadBalanceGpu(ctx: GpuContext, t: ChunkTable, edges: EdgeTable, ranking: EdgeRanking, scan: ScanOrder, over: number, under: number): Promise<number> {
  const E = edges.e;
  let overloaded = 0;
  let underloaded = 0;
  const edgeOk = new Uint32Array(E);
  for (let e = 0; e < E; e++) {
    const load = edges.queueDepth[e] / edges.maxParallel[e];
    // the reference skips a chunk when `load < over`; NaN (0/0) does not skip, so test the negation
    edgeOk[e] = load < over ? 0 : 1;
    if (ranking.rank[e] === INF_RANK) continue;
    if (load >= over) overloaded++;
    if (load < under) underloaded++;
  }
  if (overloaded === 0 || underloaded === 0) return 0;
  const list = await compactPendingGpu(ctx, t, edgeOk, scan);
  const movedIn = new Uint32Array(E);
  const k = t.k;
  let moves = 0;
  for (let i = 0; i < list.length && underloaded > 0; i++) {
    const c = list[i];
    const a = t.assigned[c];
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
