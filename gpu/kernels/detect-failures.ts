/// <reference types="@webgpu/types" />
import type { ChunkTable, EdgeTable } from '../../scheduler/tables.js';
import { ChunkStatus } from '../../scheduler/types.js';
import { type GpuContext, planPartitions } from '../context.js';
import { dispatch } from '../programs.js';

/** Failed chunks found by detect_failures, ascending by id, with their FailureCause. */
export interface DetectedFailures {
  ids: Uint32Array;
  causes: Uint8Array;
}

/**
 * The detect_failures kernel on the GPU: scans every chunk, compacts the failed IN_FLIGHT ones
 * through an atomic counter, then sorts them by id so the result is the CPU reference's (which
 * scans the ascending in-flight list). Does not mutate the table; see `applyDetectedFailures`.
 */
export async function detectFailuresGpu(
  ctx: GpuContext,
  t: ChunkTable,
  edges: EdgeTable,
  now: number,
): Promise<DetectedFailures> {
  const pipeline = await ctx.programs.pipeline('detect-failures');
  const available = Uint32Array.from(edges.available);
  const availBuf = ctx.buffers.scratch('detect:available', available.byteLength, undefined, available);
  const ids: number[] = [];
  const causes: number[] = [];
  for (const part of planPartitions(ctx, t.n, 4)) {
    const n = part.end - part.start;
    const status = ctx.buffers.sync(`status:${part.index}`, t.status.subarray(part.start, part.end));
    const assigned = ctx.buffers.sync(`assigned:${part.index}`, t.assigned.subarray(part.start, part.end));
    const deadline = ctx.buffers.sync(`deadline:${part.index}`, t.deadline.subarray(part.start, part.end));
    const counter = ctx.buffers.scratch('detect:counter', 4, undefined, new Uint32Array(1));
    const outIds = ctx.buffers.scratch('detect:ids', n * 4);
    const outCauses = ctx.buffers.scratch('detect:causes', n * 4);
    await dispatch(
      ctx.device,
      pipeline,
      Uint32Array.of(n, now >>> 0, part.start, edges.e),
      [status, assigned, deadline, availBuf, counter, outIds, outCauses],
      n,
      'detect-failures',
    );
    const found = new Uint32Array(await ctx.buffers.readback(counter, 0, 4))[0];
    if (found === 0) continue;
    const pi = new Uint32Array(await ctx.buffers.readback(outIds, 0, found * 4));
    const pc = new Uint32Array(await ctx.buffers.readback(outCauses, 0, found * 4));
    for (let i = 0; i < found; i++) {
      ids.push(pi[i]);
      causes.push(pc[i]);
    }
  }
  const order = ids.map((_, i) => i).sort((a, b) => ids[a] - ids[b]);
  return { ids: Uint32Array.from(order, (i) => ids[i]), causes: Uint8Array.from(order, (i) => causes[i]) };
}

/** Marks the detected chunks FAILED, as the CPU reference does while it scans. */
export function applyDetectedFailures(t: ChunkTable, d: DetectedFailures): void {
  for (const c of d.ids) t.status[c] = ChunkStatus.FAILED;
}
