/// <reference types="@webgpu/types" />
import type { ChunkTable, EdgeTable } from '../../scheduler/tables.js';
import type { EdgeRanking } from '../../scheduler/kernels/cost.js';
import type { FailoverCounts } from '../../scheduler/kernels/failures.js';
import { FailoverOutcome } from '../../scheduler/kernels/failures.js';
import { type GpuContext, rankingArrays } from '../context.js';
import { dispatch } from '../programs.js';

const FRAGMENTS = ['k-best-select.wgsl'];
const NOT_FAILED = 0xff;

/**
 * The failover_assign kernel on the GPU, with the CPU reference's signature and effect: gathers
 * each listed chunk's state, backups and candidate row, runs one invocation per chunk (they are
 * independent), and scatters status, assigned, retries and recomputed backups back. A chunk
 * listed twice is processed once (the reference skips the second, no longer FAILED, occurrence).
 */
export async function failoverAssignGpu(
  ctx: GpuContext,
  t: ChunkTable,
  _edges: EdgeTable,
  ranking: EdgeRanking,
  failed: Uint32Array,
  count: number,
  maxAttempts: number,
  outcome: Uint8Array,
): Promise<FailoverCounts> {
  const counts: FailoverCounts = { backup: 0, recomputed: 0, parked: 0, permanent: 0 };
  if (count === 0) return counts;
  const k = t.k;
  const W = t.words;
  const state = new Uint32Array(count * 4);
  const backups = new Uint32Array(count * k);
  const cand = new Uint32Array(count * W);
  const seen = new Set<number>();
  for (let i = 0; i < count; i++) {
    const c = failed[i];
    state[i * 4] = seen.has(c) ? NOT_FAILED : t.status[c];
    seen.add(c);
    state[i * 4 + 1] = t.assigned[c];
    state[i * 4 + 2] = t.retries[c];
    for (let q = 0; q < k; q++) backups[i * k + q] = t.backups[c * k + q];
    for (let w = 0; w < W; w++) cand[i * W + w] = t.candidates[c * W + w];
  }
  const pipeline = await ctx.programs.pipeline('failover-assign', FRAGMENTS);
  const { rank, edgeOfRank } = rankingArrays(t, ranking);
  const b = ctx.buffers;
  const bufs = [
    b.scratch('failover:state', state.byteLength, undefined, state),
    b.scratch('failover:backups', backups.byteLength, undefined, backups),
    b.scratch('failover:cand', cand.byteLength, undefined, cand),
    b.scratch('failover:rank', rank.byteLength, undefined, rank),
    b.scratch('failover:eor', edgeOfRank.byteLength, undefined, edgeOfRank),
    b.scratch('failover:out', count * 16),
  ];
  const maxA = Math.max(0, Math.min(0xffffffff, Math.ceil(maxAttempts)));
  await dispatch(ctx.device, pipeline, Uint32Array.of(count, k, W, maxA), bufs, count, 'failover-assign');
  const out = new Uint32Array(await b.readback(bufs[5], 0, count * 16));
  const nb = new Uint32Array(await b.readback(bufs[1], 0, backups.byteLength));
  for (let i = 0; i < count; i++) {
    const o = out[i * 4];
    if (o === 0) continue;
    const c = failed[i];
    t.status[c] = out[i * 4 + 1];
    t.assigned[c] = out[i * 4 + 2];
    t.retries[c] = out[i * 4 + 3];
    if (o & 8) for (let q = 0; q < k; q++) t.backups[c * k + q] = nb[i * k + q];
    const kind = o & 7;
    outcome[i] = kind;
    if (kind === FailoverOutcome.BACKUP) counts.backup++;
    else if (kind === FailoverOutcome.RECOMPUTED) counts.recomputed++;
    else if (kind === FailoverOutcome.PARKED) counts.parked++;
    else counts.permanent++;
  }
  return counts;
}
