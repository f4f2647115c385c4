import { PortalError } from '../common/errors.js';

/** How records are gathered into batches (docs/architecture.md, "The stream processor"). */
export interface BatchAccumulationConfig {
  /** Records to gather before a batch runs, unless `maxBatchWaitMs` passes first (default 32). */
  minBatchSize: number;
  /** Records per batch at most (default 10,000). */
  maxBatchSize: number;
  /** A partial batch runs once its oldest record waited this long (default 100 ms). */
  maxBatchWaitMs: number;
  /** Share of the device's memory a batch's input + output may take (default 0.7). */
  gpuMemoryUtilizationTarget: number;
  /** Grow the batch size while measured throughput improves, shrink it when it degrades (default true). */
  enableAdaptiveBatching: boolean;
}

/** The bounded buffer between producers and the batcher (docs/architecture.md, "The stream processor"). */
export interface BackpressureConfig {
  /** Records the buffer holds at most (default 100,000). */
  bufferCapacity: number;
  /** Pulling from the source pauses at this fill ratio (default 0.9). */
  pauseThreshold: number;
  /** Pulling resumes at or below this fill ratio (default 0.5). */
  resumeThreshold: number;
  /** Full buffer: drop the oldest records, counted (true), or block the producer, losing nothing (false, default). */
  dropOldestOnFull: boolean;
}

/** Both configurations, each field optional (defaults fill the rest). */
export interface StreamConfigInput {
  batch?: Partial<BatchAccumulationConfig>;
  backpressure?: Partial<BackpressureConfig>;
}

/** The defaults in docs/architecture.md, "The stream processor". */
export const defaultBatchConfig: Readonly<BatchAccumulationConfig> = Object.freeze({
  minBatchSize: 32,
  maxBatchSize: 10_000,
  maxBatchWaitMs: 100,
  gpuMemoryUtilizationTarget: 0.7,
  enableAdaptiveBatching: true,
});

/** The defaults in docs/architecture.md, "The stream processor". */
export const defaultBackpressureConfig: Readonly<BackpressureConfig> = Object.freeze({
  bufferCapacity: 100_000,
  pauseThreshold: 0.9,
  resumeThreshold: 0.5,
  dropOldestOnFull: false,
});

function need(ok: boolean, field: string, expectation: string, v: unknown): void {
  if (!ok)
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `${field}: expected ${expectation}, got ${JSON.stringify(v)}`,
    );
}

/** Fills defaults and checks every field; throws PortalError PORTAL_CONFIG_INVALID naming the field. */
export function resolveStreamConfig(input: StreamConfigInput = {}): {
  batch: BatchAccumulationConfig;
  backpressure: BackpressureConfig;
} {
  const batch = { ...defaultBatchConfig, ...(input.batch ?? {}) };
  const bp = { ...defaultBackpressureConfig, ...(input.backpressure ?? {}) };
  const int = (v: number): boolean => Number.isSafeInteger(v) && v > 0;
  need(int(batch.minBatchSize), 'batch.minBatchSize', 'an integer ≥ 1', batch.minBatchSize);
  need(
    int(batch.maxBatchSize) && batch.maxBatchSize >= batch.minBatchSize,
    'batch.maxBatchSize',
    'an integer ≥ minBatchSize',
    batch.maxBatchSize,
  );
  need(
    Number.isFinite(batch.maxBatchWaitMs) && batch.maxBatchWaitMs >= 0,
    'batch.maxBatchWaitMs',
    'a number ≥ 0',
    batch.maxBatchWaitMs,
  );
  need(
    batch.gpuMemoryUtilizationTarget > 0 && batch.gpuMemoryUtilizationTarget <= 1,
    'batch.gpuMemoryUtilizationTarget',
    'a number in (0, 1]',
    batch.gpuMemoryUtilizationTarget,
  );
  need(
    typeof batch.enableAdaptiveBatching === 'boolean',
    'batch.enableAdaptiveBatching',
    'a boolean',
    batch.enableAdaptiveBatching,
  );
  need(int(bp.bufferCapacity), 'backpressure.bufferCapacity', 'an integer ≥ 1', bp.bufferCapacity);
  need(
    bp.pauseThreshold > 0 && bp.pauseThreshold <= 1,
    'backpressure.pauseThreshold',
    'a number in (0, 1]',
    bp.pauseThreshold,
  );
  need(
    bp.resumeThreshold >= 0 && bp.resumeThreshold < bp.pauseThreshold,
    'backpressure.resumeThreshold',
    'a number in [0, pauseThreshold)',
    bp.resumeThreshold,
  );
  need(
    typeof bp.dropOldestOnFull === 'boolean',
    'backpressure.dropOldestOnFull',
    'a boolean',
    bp.dropOldestOnFull,
  );
  return { batch, backpressure: bp };
}
