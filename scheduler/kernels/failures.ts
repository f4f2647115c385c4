import type { ChunkTable, EdgeTable } from '../tables.js';
import type { EdgeRanking } from './cost.js';
import { rankChunk } from './k-best.js';
import { candidatesEmpty, hasCandidate } from '../tables.js';
import { ChunkStatus, INF_RANK, NO_EDGE } from '../types.js';

/** Why detect_failures flagged a chunk. */
export const FailureCause = { TIMEOUT: 1, EDGE_DOWN: 2 } as const;

/**
 * The detect_failures kernel: an IN_FLIGHT chunk whose deadline has passed (`now` > deadline) or
 * whose edge is no longer available is marked FAILED. Scans the `count` chunk ids in `inFlight`
 * (ascending); writes the failed ids and causes compacted into `outIds`/`outCauses` in input order
 * and returns how many. (The GPU kernel scans all chunks and compacts with an atomic counter, then
 * sorts; the result is the same set in the same order.)
 */
export function detectFailures(
  t: ChunkTable,
  edges: EdgeTable,
  now: number,
  inFlight: Uint32Array,
  count: number,
  outIds: Uint32Array,
  outCauses: Uint8Array,
): number {
  let n = 0;
  for (let i = 0; i < count; i++) {
    const c = inFlight[i];
    if (t.status[c] !== ChunkStatus.IN_FLIGHT) continue;
    const e = t.assigned[c];
    let cause = 0;
    if (e === NO_EDGE || edges.available[e] !== 1) cause = FailureCause.EDGE_DOWN;
    else if (now > t.deadline[c]) cause = FailureCause.TIMEOUT;
    if (cause === 0) continue;
    t.status[c] = ChunkStatus.FAILED;
    outIds[n] = c;
    outCauses[n] = cause;
    n++;
  }
  return n;
}

/** Outcome of one chunk's failover, as counted in FailoverCounts. */
export const FailoverOutcome = { BACKUP: 1, RECOMPUTED: 2, PARKED: 3, PERMANENT: 4 } as const;

/** Counts of what failover_assign did. */
export interface FailoverCounts {
  backup: number;
  recomputed: number;
  parked: number;
  permanent: number;
}

/**
 * The failover_assign kernel. For each FAILED chunk in `failed` (the edge it failed on is still in
 * `assigned`):
 * 1. the first precomputed backup that is not the failed edge, is usable and still a candidate
 *    becomes the assignment (instant failover, no recomputation);
 * 2. when the backups are exhausted but other edges hold the chunk, its K best are recomputed from
 *    the current ranking and the best taken (the failed edge only if nothing else can serve it);
 * 3. when every holder is unavailable right now the chunk waits, PENDING with no edge (it is
 *    re-ranked when an edge comes online);
 * 4. FAILED_PERMANENT only when no edge holds the chunk any more, or it ran out of attempts.
 * `outcome[i]` receives the FailoverOutcome of `failed[i]`.
 */
export function failoverAssign(
  t: ChunkTable,
  edges: EdgeTable,
  ranking: EdgeRanking,
  failed: Uint32Array,
  count: number,
  maxAttempts: number,
  outcome: Uint8Array,
): FailoverCounts {
  const counts: FailoverCounts = { backup: 0, recomputed: 0, parked: 0, permanent: 0 };
  const k = t.k;
  const scratch = new Int32Array(k);
  for (let i = 0; i < count; i++) {
    const c = failed[i];
    if (t.status[c] !== ChunkStatus.FAILED) continue;
    const bad = t.assigned[c];
    if (t.retries[c] < 255) t.retries[c]++;
    if (t.retries[c] >= maxAttempts) {
      t.status[c] = ChunkStatus.FAILED_PERMANENT;
      t.assigned[c] = NO_EDGE;
      outcome[i] = FailoverOutcome.PERMANENT;
      counts.permanent++;
      continue;
    }
    let next = NO_EDGE;
    for (let j = 0; j < k; j++) {
      const b = t.backups[c * k + j];
      if (b === NO_EDGE || b === bad || ranking.rank[b] === INF_RANK || !hasCandidate(t, c, b)) continue;
      next = b;
      break;
    }
    t.status[c] = ChunkStatus.PENDING;
    if (next !== NO_EDGE) {
      t.assigned[c] = next;
      outcome[i] = FailoverOutcome.BACKUP;
      counts.backup++;
      continue;
    }
    const found = rankChunk(t, ranking, c, scratch);
    if (found > 0) {
      let pick = t.backups[c * k];
      for (let j = 0; j < found; j++) {
        if (t.backups[c * k + j] !== bad) {
          pick = t.backups[c * k + j];
          break;
        }
      }
      t.assigned[c] = pick;
      outcome[i] = FailoverOutcome.RECOMPUTED;
      counts.recomputed++;
    } else if (candidatesEmpty(t, c)) {
      t.status[c] = ChunkStatus.FAILED_PERMANENT;
      t.assigned[c] = NO_EDGE;
      outcome[i] = FailoverOutcome.PERMANENT;
      counts.permanent++;
    } else {
      t.assigned[c] = NO_EDGE;
      outcome[i] = FailoverOutcome.PARKED;
      counts.parked++;
    }
  }
  return counts;
}
