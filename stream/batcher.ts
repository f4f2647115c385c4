import type { BatchAccumulationConfig } from './config.js';

/** What bounds a batch on the device in use. */
export interface BatchBounds {
  backend: 'gpu' | 'cpu';
  /** Device memory a batch may draw on, bytes (WebGPU reports no free memory; the buffer limit stands in). */
  deviceMemoryBytes?: number;
  /** Device bytes per record (input + share of output). */
  bytesPerRecord: number;
  /** Records one dispatch can cover (workgroups × 64). */
  dispatchLimit?: number;
  /** The kernel's own bound (e.g. exactness). */
  kernelMax?: number;
}

/**
 * The starting batch size: on the CPU the max batch size; on a GPU the records that fit
 * `gpuMemoryUtilizationTarget` of the device memory, within [minBatchSize, maxBatchSize] (and never
 * above the kernel's or the dispatch's bound).
 */
export function optimalBatchSize(cfg: BatchAccumulationConfig, b: BatchBounds): number {
  const hard = Math.min(b.kernelMax ?? Infinity, b.dispatchLimit ?? Infinity);
  if (b.backend === 'cpu' || b.deviceMemoryBytes === undefined)
    return Math.max(1, Math.min(cfg.maxBatchSize, hard));
  const byMemory = Math.floor(
    (b.deviceMemoryBytes * cfg.gpuMemoryUtilizationTarget) / Math.max(1, b.bytesPerRecord),
  );
  return Math.max(1, Math.min(hard, Math.max(cfg.minBatchSize, Math.min(cfg.maxBatchSize, byMemory))));
}

/** Batch-size adaptation: ×1.2 when throughput rose over 10 %, ×0.8 when it fell over 10 %, within [min, max]. */
export function adaptBatchSize(
  size: number,
  current: number,
  previous: number,
  min: number,
  max: number,
): number {
  if (current > previous * 1.1) return Math.min(Math.round(size * 1.2), max);
  if (current < previous * 0.9) return Math.max(Math.round(size * 0.8), min);
  return size;
}

/**
 * The batch size in force: starts at `optimalBatchSize`, then (when adaptive batching is on) moves by
 * the seed's rule once per epoch of `epochBatches` full batches, comparing the epoch's processing
 * throughput (records per busy millisecond) with the previous epoch's. Partial batches say how fast
 * records arrive, not how fast the kernel runs, so they are not measured. An allocation failure
 * halves the ceiling (graceful degradation).
 */
export class AdaptiveBatchSizer {
  private size: number;
  private ceiling: number;
  private epochItems = 0;
  private epochMs = 0;
  private epochBatches_ = 0;
  private previous: number | undefined;
  /** Epoch throughputs seen (records per ms), newest last; tests and logs read it. */
  readonly history: Array<{ size: number; throughput: number }> = [];

  constructor(
    private readonly cfg: BatchAccumulationConfig,
    initial: number,
    private readonly epochBatches = 4,
  ) {
    this.ceiling = initial;
    this.size = initial;
  }

  get current(): number {
    return this.size;
  }
  get max(): number {
    return this.ceiling;
  }

  /** Feeds one finished batch. */
  observe(count: number, busyMs: number): void {
    if (!this.cfg.enableAdaptiveBatching || count < this.size) return;
    this.epochItems += count;
    this.epochMs += Math.max(busyMs, 1e-3);
    if (++this.epochBatches_ < this.epochBatches) return;
    const tp = this.epochItems / this.epochMs;
    this.history.push({ size: this.size, throughput: tp });
    if (this.history.length > 64) this.history.shift();
    if (this.previous !== undefined)
      this.size = adaptBatchSize(
        this.size,
        tp,
        this.previous,
        Math.min(this.cfg.minBatchSize, this.ceiling),
        this.ceiling,
      );
    this.previous = tp;
    this.epochItems = 0;
    this.epochMs = 0;
    this.epochBatches_ = 0;
  }

  /** After an allocation failure: halve the ceiling (not below the min batch size) and the size with it. */
  shrink(): void {
    this.ceiling = Math.max(Math.min(this.cfg.minBatchSize, this.ceiling), Math.floor(this.ceiling / 2));
    this.size = Math.min(this.size, this.ceiling);
    this.previous = undefined;
  }
}
