import type { ChunkTable, EdgeTable } from '../../scheduler/tables.js';
import type { EdgeRanking } from '../../scheduler/kernels/cost.js';
import type { ScanOrder } from '../../scheduler/kernels/dispatch.js';
import { INF_RANK, NO_EDGE } from '../../scheduler/types.js';
import type { GpuContext } from '../context.js';
import type { OrderedPhaseOptions } from './generate-dispatch.js';
import { forEachOrdered } from './ordered-compact.js';

/**
 * load_balance with the scan on the GPU. Each move consumes capacity that later chunks see (the
 * reference counts chunks moved to a backup this pass), so the moves are a sequential greedy in
 * scheduling order; the GPU's ordered compaction (ordered-*.wgsl) returns, in scheduling order and
 * in growing windows, only the chunks that can move at all (PENDING, assigned to an edge at or
 * above `over`), and the host runs the reference's loop over them until no edge is below `under`.
 * Moves are recorded and applied at the end (a GPU error leaves the table untouched). Skipped
 * chunks change nothing in the reference, so the result is identical.
 */
export async function loadBalanceGpu(
  ctx: GpuContext,
  t: ChunkTable,
  edges: EdgeTable,
  ranking: EdgeRanking,
  scan: ScanOrder,
  over: number,
  under: number,
  opts: OrderedPhaseOptions = {},
): Promise<number> {
  const E = edges.e;
  let overloaded = 0;
  let underloaded = 0;
  let room = 0;
  const edgeOk = new Uint32Array(E);
  for (let e = 0; e < E; e++) {
    const load = edges.queueDepth[e] / edges.maxParallel[e];
    // the reference skips a chunk when `load < over`; NaN (0/0) does not skip, so test the negation
    edgeOk[e] = load < over ? 0 : 1;
    if (ranking.rank[e] === INF_RANK) continue;
    if (load >= over) overloaded++;
    if (load < under) {
      underloaded++;
      room += Math.max(1, Math.ceil(under * edges.maxParallel[e]) - edges.queueDepth[e]);
    }
  }
  if (overloaded === 0 || underloaded === 0) return 0;
  const movedIn = new Uint32Array(E);
  const k = t.k;
  const moveChunk: number[] = [];
  const moveTo: number[] = [];
  const visit = (c: number): boolean => {
    const a = t.assigned[c];
    for (let j = 0; j < k; j++) {
      const b = t.backups[c * k + j];
      if (b === NO_EDGE || b === a || ranking.rank[b] === INF_RANK) continue;
      const mp = edges.maxParallel[b];
      if ((edges.queueDepth[b] + movedIn[b]) / mp >= under) continue;
      moveChunk.push(c);
      moveTo.push(b);
      movedIn[b]++;
      if ((edges.queueDepth[b] + movedIn[b]) / mp >= under) underloaded--;
      break;
    }
    return underloaded > 0;
  };
  await forEachOrdered(ctx, t, scan, edgeOk, opts.window ?? Math.max(256, 2 * room), visit);
  for (let i = 0; i < moveChunk.length; i++) t.assigned[moveChunk[i]] = moveTo[i];
  return moveChunk.length;
}
