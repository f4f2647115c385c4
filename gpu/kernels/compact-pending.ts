/// <reference types="@webgpu/types" />
import type { ChunkTable } from '../../scheduler/tables.js';
import type { ScanOrder } from '../../scheduler/kernels/dispatch.js';
import { type GpuContext, planPartitions } from '../context.js';
import { dispatch } from '../programs.js';

const inverses = new WeakMap<Uint32Array, Uint32Array>();

function inverseOf(order: Uint32Array): Uint32Array {
  let inv = inverses.get(order);
  if (!inv) {
    inv = new Uint32Array(order.length);
    for (let i = 0; i < order.length; i++) inv[order[i]] = i;
    inverses.set(order, inv);
  }
  return inv;
}

/**
 * Compaction helper: the ids of the PENDING chunks whose assigned edge e has `edgeOk[e] = 1`,
 * compacted on the GPU through an atomic counter, then put in scheduling order on the host
 * (priority order when `scan.order` is set, else by id) with positions before `scan.start`
 * dropped, i.e. exactly the chunks the CPU reference's scan would act on, in its visiting order.
 */
export async function compactPendingGpu(
  ctx: GpuContext,
  t: ChunkTable,
  edgeOk: Uint32Array,
  scan: ScanOrder,
): Promise<Uint32Array> {
  const pipeline = await ctx.programs.pipeline('compact-pending');
  const okBuf = ctx.buffers.scratch('compact:edge-ok', Math.max(4, edgeOk.byteLength), undefined, edgeOk);
  const chunks: Uint32Array[] = [];
  let total = 0;
  for (const part of planPartitions(ctx, t.n, 4)) {
    const n = part.end - part.start;
    const status = ctx.buffers.sync(`status:${part.index}`, t.status.subarray(part.start, part.end));
    const assigned = ctx.buffers.sync(`assigned:${part.index}`, t.assigned.subarray(part.start, part.end));
    const counter = ctx.buffers.scratch('compact:counter', 4, undefined, new Uint32Array(1));
    const outIds = ctx.buffers.scratch('compact:ids', n * 4);
    await dispatch(
      ctx.device,
      pipeline,
      Uint32Array.of(n, part.start, edgeOk.length, 0),
      [status, assigned, okBuf, counter, outIds],
      n,
      'compact-pending',
    );
    const found = new Uint32Array(await ctx.buffers.readback(counter, 0, 4))[0];
    if (found === 0) continue;
    chunks.push(new Uint32Array(await ctx.buffers.readback(outIds, 0, found * 4)));
    total += found;
  }
  const ids = new Uint32Array(total);
  let o = 0;
  for (const c of chunks) {
    ids.set(c, o);
    o += c.length;
  }
  if (!scan.order) {
    ids.sort();
    let first = 0;
    while (first < ids.length && ids[first] < scan.start) first++;
    return ids.subarray(first);
  }
  const inv = inverseOf(scan.order);
  const pos = new Uint32Array(total);
  for (let i = 0; i < total; i++) pos[i] = inv[ids[i]];
  pos.sort();
  let first = 0;
  while (first < pos.length && pos[first] < scan.start) first++;
  const out = new Uint32Array(pos.length - first);
  for (let i = first; i < pos.length; i++) out[i - first] = scan.order[pos[i]];
  return out;
}
