/// <reference types="@webgpu/types" />
import type { ChunkTable } from '../../scheduler/tables.js';
import type { EdgeRanking } from '../../scheduler/kernels/cost.js';
import { ChunkStatus } from '../../scheduler/types.js';
import { BufferUsage } from '../constants.js';
import { type GpuContext, planPartitions, rankingArrays } from '../context.js';
import { dispatch } from '../programs.js';

const FRAGMENTS = ['k-best-select.wgsl'];

/**
 * The k_best kernel on the GPU: the K best edges (best first, NO_EDGE padded) of every chunk, or of
 * the `count` chunks listed in `chunks`, returned as `count × K` edge ids without touching the
 * table. Partitions the table when it exceeds one binding. Rejects with PortalError on device loss
 * or validation failure.
 */
export async function kBestGpu(
  ctx: GpuContext,
  t: ChunkTable,
  ranking: EdgeRanking,
  chunks?: Uint32Array,
  count?: number,
): Promise<Uint16Array> {
  const k = t.k;
  const W = t.words;
  const total = chunks ? (count ?? chunks.length) : t.n;
  const out = new Uint16Array(total * k);
  if (total === 0) return out;
  const pipeline = await ctx.programs.pipeline('k-best', FRAGMENTS);
  const { rank, edgeOfRank } = rankingArrays(t, ranking);
  const rankBuf = ctx.buffers.scratch('kbest:rank', rank.byteLength, undefined, rank);
  const eorBuf = ctx.buffers.scratch('kbest:eor', edgeOfRank.byteLength, undefined, edgeOfRank);
  const parts = planPartitions(ctx, t.n, Math.max(W, k) * 4);
  const P = parts.length > 0 ? parts[0].end - parts[0].start : 1;

  // list mode: group the listed chunks by partition, remembering where each result goes
  let groups: Array<{ local: Uint32Array; at: Uint32Array }> | undefined;
  if (chunks) {
    const sizes = new Uint32Array(parts.length);
    for (let i = 0; i < total; i++) sizes[Math.floor(chunks[i] / P)]++;
    groups = parts.map((_, p) => ({ local: new Uint32Array(sizes[p]), at: new Uint32Array(sizes[p]) }));
    const fill = new Uint32Array(parts.length);
    for (let i = 0; i < total; i++) {
      const c = chunks[i];
      const p = Math.floor(c / P);
      const g = groups[p];
      g.local[fill[p]] = c - parts[p].start;
      g.at[fill[p]++] = i;
    }
  }

  for (const part of parts) {
    const rows = part.end - part.start;
    const g = groups?.[part.index];
    const n = g ? g.local.length : rows;
    if (n === 0) continue;
    const cand = ctx.buffers.sync(`cand:${part.index}`, t.candidates.subarray(part.start * W, part.end * W));
    const list = g
      ? ctx.buffers.scratch(
          'kbest:list',
          g.local.byteLength,
          BufferUsage.STORAGE | BufferUsage.COPY_DST,
          g.local,
        )
      : ctx.buffers.scratch('kbest:list', 4, BufferUsage.STORAGE | BufferUsage.COPY_DST);
    const outBuf = ctx.buffers.scratch('kbest:out', n * k * 4);
    await dispatch(
      ctx.device,
      pipeline,
      Uint32Array.of(n, g ? 1 : 0, k, W),
      [cand, rankBuf, eorBuf, list, outBuf],
      n,
      'k-best',
    );
    const res = new Uint32Array(await ctx.buffers.readback(outBuf, 0, n * k * 4));
    if (g) {
      for (let j = 0; j < n; j++) {
        const dst = g.at[j] * k;
        for (let q = 0; q < k; q++) out[dst + q] = res[j * k + q];
      }
    } else {
      const dst = part.start * k;
      for (let q = 0; q < n * k; q++) out[dst + q] = res[q];
    }
  }
  return out;
}

/**
 * Applies K-best results the way the CPU reference `rankChunks` does: PENDING and IN_FLIGHT chunks
 * get the new backups, a PENDING chunk is pointed at its best. Returns the number re-ranked.
 */
export function applyKBest(t: ChunkTable, best: Uint16Array, chunks?: Uint32Array, count?: number): number {
  const k = t.k;
  const total = chunks ? (count ?? chunks.length) : t.n;
  let ranked = 0;
  for (let i = 0; i < total; i++) {
    const c = chunks ? chunks[i] : i;
    const s = t.status[c];
    if (s !== ChunkStatus.PENDING && s !== ChunkStatus.IN_FLIGHT) continue;
    const src = i * k;
    const dst = c * k;
    for (let q = 0; q < k; q++) t.backups[dst + q] = best[src + q];
    if (s === ChunkStatus.PENDING) t.assigned[c] = best[src];
    ranked++;
  }
  return ranked;
}

/** GPU equivalent of the CPU reference `rankChunks`: same mutation of the table, same return value. */
export async function rankChunksGpu(
  ctx: GpuContext,
  t: ChunkTable,
  ranking: EdgeRanking,
  chunks?: Uint32Array,
  count?: number,
): Promise<number> {
  const best = await kBestGpu(ctx, t, ranking, chunks, count);
  return applyKBest(t, best, chunks, count);
}
