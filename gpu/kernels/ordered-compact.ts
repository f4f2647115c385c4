/// <reference types="@webgpu/types" />
import { PortalError } from '../../common/errors.js';
import type { ChunkTable } from '../../scheduler/tables.js';
import type { ScanOrder } from '../../scheduler/kernels/dispatch.js';
import { ChunkStatus, NO_EDGE } from '../../scheduler/types.js';
import { BufferUsage } from '../constants.js';
import type { GpuContext } from '../context.js';
import { dispatchChain } from '../programs.js';

/** Positions per workgroup of the ordered-compaction kernels (64 threads × 4). */
const BLOCK = 256;
const FLAGS = ['ordered-flags.wgsl'];
/** Fewest positions one window of `forEachOrdered` compacts. */
const SPAN = 65536;

/** A window of an ordered compaction: the first flagged positions (ascending) and how many exist in all. */
export interface OrderedWindow {
  /** Scheduling-order positions (chunk = `scan.order[p]`, or `p` when the order is the identity), ascending. */
  positions: Uint32Array;
  /** Flagged positions in [`from`, `end`) in all (may exceed `positions.length`). */
  total: number;
}

/**
 * True when the ordered compaction can run over `n` chunks in one pass (the order array fits one
 * storage binding and the blocks one dispatch). Callers enumerate on the host otherwise.
 */
export function orderedFits(ctx: GpuContext, n: number): boolean {
  return (
    Math.ceil(n / BLOCK) <= ctx.limits.maxComputeWorkgroupsPerDimension &&
    n * 4 <= ctx.limits.maxStorageBufferBindingSize
  );
}

/**
 * True when the chunk at a position is one load_balance / generate_dispatch acts on: PENDING,
 * assigned to an edge `e` with `edgeOk[e] = 1`. The CPU form of the kernels' `flag()`.
 */
export function orderedFlag(t: ChunkTable, edgeOk: Uint32Array, c: number): boolean {
  if (t.status[c] !== ChunkStatus.PENDING) return false;
  const e = t.assigned[c];
  return e !== NO_EDGE && e < edgeOk.length && edgeOk[e] === 1;
}

/**
 * Ordered stream compaction on the GPU: the first `maxOut` scheduling-order positions in
 * [`from`, `end`) whose chunk passes `orderedFlag`, in ascending order, and how many such positions exist. Three
 * passes in one submit — per-block counts, a one-workgroup exclusive scan of the counts, a scatter
 * of each flagged position to its prefix-sum index — so the result is deterministic (no atomics)
 * and only `1 + maxOut` words are read back. Rejects with PortalError (PORTAL_GPU_TOO_LARGE when
 * `orderedFits` is false, device loss, validation).
 */
export async function orderedCompactGpu(
  ctx: GpuContext,
  t: ChunkTable,
  scan: ScanOrder,
  edgeOk: Uint32Array,
  from: number,
  maxOut: number,
  end = t.n,
): Promise<OrderedWindow> {
  const n = t.n;
  end = Math.min(end, n);
  if (from >= end || maxOut <= 0 || edgeOk.length === 0) return { positions: new Uint32Array(0), total: 0 };
  if (!orderedFits(ctx, n))
    throw new PortalError(
      'PORTAL_GPU_TOO_LARGE',
      `ordered compaction of ${n} chunks does not fit one dispatch`,
    );
  const [count, scanP, scatter] = await Promise.all([
    ctx.programs.pipeline('ordered-count', FLAGS),
    ctx.programs.pipeline('ordered-scan', []),
    ctx.programs.pipeline('ordered-scatter', FLAGS),
  ]);
  const b = ctx.buffers;
  const blocks = Math.ceil((end - from) / BLOCK);
  const status = b.sync('ordered:status', t.status);
  const assigned = b.sync('ordered:assigned', t.assigned);
  const order = scan.order
    ? b.sync('ordered:order', scan.order)
    : b.scratch('ordered:identity', 4, BufferUsage.STORAGE | BufferUsage.COPY_DST);
  const ok = b.scratch('ordered:edge-ok', edgeOk.byteLength, undefined, edgeOk);
  const sums = b.scratch('ordered:sums', blocks * 4);
  const out = b.scratch('ordered:out', (1 + maxOut) * 4);
  const flags = [status, assigned, order, ok];
  const params = Uint32Array.of(end, from, scan.order ? 1 : 0, edgeOk.length, maxOut, blocks, 0, 0);
  await dispatchChain(
    ctx.device,
    params,
    [
      { pipeline: count, buffers: [...flags, sums], groups: blocks, label: 'ordered-count' },
      { pipeline: scanP, buffers: [sums, out], groups: 1, label: 'ordered-scan' },
      { pipeline: scatter, buffers: [...flags, sums, out], groups: blocks, label: 'ordered-scatter' },
    ],
    'ordered-compact',
  );
  const res = new Uint32Array(await b.readback(out, 0, (1 + maxOut) * 4));
  const total = res[0];
  return { positions: res.slice(1, 1 + Math.min(total, maxOut)), total };
}

/**
 * Calls `visit(chunk)` for every chunk passing `orderedFlag`, in scheduling order from
 * `scan.start`, until `visit` returns false. The chunks come from the GPU in windows of
 * ordered compaction over spans of positions (at most `window` chunks from a span of
 * max(65536, 16 × window) positions; ×4 while a span has more), or from a host scan when
 * the table does not fit (`orderedFits`). `visit` must not change what `orderedFlag` says about
 * chunks not yet visited. Rejects with PortalError when a GPU window fails.
 */
export async function forEachOrdered(
  ctx: GpuContext,
  t: ChunkTable,
  scan: ScanOrder,
  edgeOk: Uint32Array,
  window: number,
  visit: (chunk: number) => boolean,
): Promise<{ windows: number }> {
  const o = scan.order;
  let from = scan.start;
  let m = Math.max(1, Math.floor(window));
  let windows = 0;
  if (!orderedFits(ctx, t.n)) {
    for (let i = from; i < t.n; i++) {
      const c = o ? o[i] : i;
      if (orderedFlag(t, edgeOk, c) && !visit(c)) break;
    }
    return { windows };
  }
  while (from < t.n) {
    // only a span after `from` is compacted: GPU work grows with what the greedy visits, not with the table
    const end = Math.min(t.n, from + Math.max(SPAN, 16 * m));
    const { positions, total } = await orderedCompactGpu(ctx, t, scan, edgeOk, from, m, end);
    windows++;
    for (let i = 0; i < positions.length; i++) {
      const p = positions[i];
      if (!visit(o ? o[p] : p)) return { windows };
    }
    if (positions.length < total) {
      from = positions[positions.length - 1] + 1;
      m = Math.min(m * 4, t.n);
    } else {
      from = end;
    }
  }
  return { windows };
}
