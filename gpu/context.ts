/// <reference types="@webgpu/types" />
import type { ChunkTable } from '../scheduler/tables.js';
import type { EdgeRanking } from '../scheduler/kernels/cost.js';
import type { BufferManager } from './buffers.js';
import type { GpuLimits } from './device.js';
import type { ProgramCache } from './programs.js';
import { INF_RANK_U32, WORKGROUP } from './constants.js';

/** What a kernel needs to run: the device, its resident buffers and compiled pipelines, the limits. */
export interface GpuContext {
  readonly device: GPUDevice;
  readonly buffers: BufferManager;
  readonly programs: ProgramCache;
  readonly limits: GpuLimits;
  /** Caps the chunks per partition below what the limits allow (tests use it to exercise borders). */
  readonly maxPartitionChunks?: number;
}

/** A range of chunk ids [start, end) processed by one dispatch. */
export interface Partition {
  index: number;
  start: number;
  end: number;
}

/**
 * Splits `n` chunks into partitions whose largest per-chunk buffer (`bytesPerChunk`) fits one
 * storage binding and whose invocations fit one dispatch. Starts are multiples of 64, so packed
 * u8/u16 arrays stay word-aligned per partition.
 */
export function planPartitions(ctx: GpuContext, n: number, bytesPerChunk: number): Partition[] {
  const byBinding = Math.floor(ctx.limits.maxStorageBufferBindingSize / Math.max(4, bytesPerChunk));
  const byDispatch = ctx.limits.maxComputeWorkgroupsPerDimension * WORKGROUP;
  let size = Math.min(byBinding, byDispatch, ctx.maxPartitionChunks ?? Infinity);
  size = Math.max(64, size - (size % 64));
  const out: Partition[] = [];
  for (let s = 0, i = 0; s < n; s += size, i++) out.push({ index: i, start: s, end: Math.min(n, s + size) });
  return out;
}

/** The ranking as the kernels read it: rank per edge padded to words × 32 with INF_RANK, and edge of rank. */
export function rankingArrays(
  t: ChunkTable,
  ranking: EdgeRanking,
): { rank: Uint32Array; edgeOfRank: Uint32Array } {
  const rank = new Uint32Array(t.words * 32).fill(INF_RANK_U32);
  for (let e = 0; e < ranking.rank.length; e++) rank[e] = ranking.rank[e] >>> 0;
  const edgeOfRank = new Uint32Array(Math.max(1, ranking.usable));
  for (let r = 0; r < ranking.usable; r++) edgeOfRank[r] = ranking.edgeOfRank[r];
  return { rank, edgeOfRank };
}
