import { PortalError, isPortalError } from '../common/errors.js';
import { createSystemClock, type Clock } from '../common/clock.js';
import type { Logger } from '../common/logger.js';
import { AdaptiveBatchSizer, optimalBatchSize } from './batcher.js';
import { BackpressureBuffer, settle, type PushTicket, type TakenBatch } from './buffer.js';
import {
  resolveStreamConfig,
  type BackpressureConfig,
  type BatchAccumulationConfig,
  type StreamConfigInput,
} from './config.js';
import type { KernelExecutor } from './executor.js';
import { deviceBytesPerRecord, type KernelRun } from './kernel.js';
import { StreamMetricsRecorder, type StreamProcessingMetrics } from './metrics.js';

/** Where a processor's results go. Both methods resolve once the bytes are delivered (stored, for JetStream). */
export interface StreamSink {
  /** One batch's output records (`count` records of the kernel's output layout). */
  output(bytes: Uint8Array, count: number): Promise<void>;
  /** A failed batch: its input records and the typed error. */
  failed(bytes: Uint8Array, count: number, error: PortalError): Promise<void>;
}

/** What a processor reports as it runs, keyed on `type`. */
export type StreamEvent =
  | {
      type: 'batch';
      count: number;
      outputCount: number;
      backend: 'gpu' | 'cpu';
      kernelMs: number;
      batchSize: number;
    }
  | { type: 'batch-failed'; count: number; error: PortalError }
  | { type: 'paused'; bufferSize: number }
  | { type: 'resumed'; bufferSize: number };

/** Options of createStreamProcessor. */
export interface StreamProcessorOptions {
  executor: KernelExecutor;
  sink: StreamSink;
  config?: StreamConfigInput;
  clock?: Clock;
  logger?: Logger;
  /** Device memory a batch may use, bytes (default: the device's maxBufferSize; ignored on the CPU). */
  deviceMemoryBytes?: number;
  /** Outputs published concurrently with the next kernel run (default 2; 1 = strictly one batch at a time). */
  publishDepth?: number;
  onEvent?: (e: StreamEvent) => void;
}

/**
 * The GPU stream processor without the actor: records in (push), batches through the kernel,
 * outputs to the sink, with the backpressure buffer, adaptive batch sizing and the metrics.
 */
export interface StreamProcessor {
  readonly batchConfig: Readonly<BatchAccumulationConfig>;
  readonly backpressureConfig: Readonly<BackpressureConfig>;
  readonly buffer: BackpressureBuffer;
  readonly executor: KernelExecutor;
  readonly sizer: AdaptiveBatchSizer;
  /**
   * Adds whole records of the kernel's input layout. Rejects with PORTAL_STREAM_BAD_RECORDS for a cut
   * record and PORTAL_STREAM_STOPPED after stop(); in block mode resolves once all are buffered.
   * `ticket.onSettled` runs when every record has an outcome.
   */
  push(bytes: Uint8Array, ticket?: PushTicket): Promise<void>;
  /** Resolves once every record pushed so far has an outcome (a partial batch runs at once, without waiting). */
  drain(): Promise<void>;
  metrics(): StreamProcessingMetrics;
  /** Stops taking records, drains what is buffered, and returns the final metrics. */
  stop(): Promise<StreamProcessingMetrics>;
}

/** Starts a processor (its loop runs until stop()). */
export function createStreamProcessor(opts: StreamProcessorOptions): StreamProcessor {
  const { batch: cfg, backpressure: bp } = resolveStreamConfig(opts.config);
  const clock = opts.clock ?? createSystemClock();
  const log = opts.logger;
  const ex = opts.executor;
  const k = ex.kernel;
  const buffer = new BackpressureBuffer(bp, k.input.recordBytes, clock);
  const initial = optimalBatchSize(cfg, {
    backend: ex.backend,
    deviceMemoryBytes:
      ex.backend === 'gpu' ? (opts.deviceMemoryBytes ?? ex.limits?.maxBufferSize) : undefined,
    bytesPerRecord: deviceBytesPerRecord(k),
    dispatchLimit: ex.limits ? ex.limits.maxComputeWorkgroupsPerDimension * 64 : undefined,
    kernelMax: k.maxBatch,
  });
  const sizer = new AdaptiveBatchSizer(cfg, initial);
  const rec = new StreamMetricsRecorder(clock.now(), clock.wallNow());
  const depth = Math.max(1, opts.publishDepth ?? 2);
  const emit = (e: StreamEvent): void => {
    try {
      opts.onEvent?.(e);
    } catch (err) {
      log?.error({ err }, 'stream: event listener failed');
    }
  };
  buffer.onPauseChange = (p) => {
    log?.info(
      { bufferSize: buffer.size, capacity: bp.bufferCapacity },
      p
        ? 'stream: buffer over the pause threshold; source paused'
        : 'stream: buffer under the resume threshold; source resumed',
    );
    emit({ type: p ? 'paused' : 'resumed', bufferSize: buffer.size });
  };

  let stopping = false;
  let flushing = 0;
  let inFlight = 0;
  const publishes: Promise<void>[] = [];
  let idleWaiters: Array<() => void> = [];
  let stopped: Promise<void> | undefined;
  let kick: () => void = () => undefined;
  const kicked = (): Promise<void> =>
    new Promise<void>((r) => {
      kick = r;
    });

  const settleAll = (b: TakenBatch, lost: boolean): void => {
    for (const p of b.parts) {
      if (lost) p.ticket.lost = true;
      settle(p.ticket, p.count);
    }
  };

  async function fail(b: TakenBatch, err: unknown, busyMs: number, allocatedBytes: number): Promise<void> {
    const e = isPortalError(err)
      ? err
      : new PortalError(
          'PORTAL_STREAM_KERNEL_FAILED',
          `kernel ${k.name} failed: ${(err as Error)?.message ?? String(err)}`,
          { cause: err },
        );
    if (e.code === 'PORTAL_STREAM_ALLOCATION_FAILED') sizer.shrink();
    log?.error(
      { err: e, code: e.code, records: b.count, batchSize: sizer.current },
      'stream: batch failed; reported, processing goes on',
    );
    rec.batchFailed(b.count, e.code, busyMs, allocatedBytes);
    emit({ type: 'batch-failed', count: b.count, error: e });
    let lost = false;
    try {
      await opts.sink.failed(b.bytes, b.count, e);
    } catch (perr) {
      lost = true;
      log?.error({ err: perr }, 'stream: cannot report a failed batch; its records stay unacknowledged');
    }
    settleAll(b, lost);
  }

  async function publish(b: TakenBatch, run: KernelRun, busyMs: number): Promise<void> {
    try {
      await opts.sink.output(run.output, run.outputCount);
    } catch (err) {
      await fail(
        b,
        new PortalError(
          'PORTAL_STREAM_PUBLISH_FAILED',
          `cannot publish the output of ${b.count} records: ${(err as Error)?.message ?? String(err)}`,
          { cause: err },
        ),
        0,
        0,
      );
      return;
    }
    const now = clock.now();
    rec.batchDone(
      b.count,
      busyMs,
      run,
      b.parts.map((p) => [now - p.enqueuedAt, p.count]),
      now,
      clock.wallNow(),
    );
    settleAll(b, false);
    emit({
      type: 'batch',
      count: b.count,
      outputCount: run.outputCount,
      backend: run.backend,
      kernelMs: run.kernelMs,
      batchSize: sizer.current,
    });
  }

  async function runBatch(b: TakenBatch): Promise<void> {
    const t0 = performance.now();
    let run: KernelRun;
    try {
      run = await ex.run(b.bytes, b.count);
    } catch (err) {
      const p = fail(b, err, performance.now() - t0, 0);
      publishes.push(p);
      return;
    }
    const busy = performance.now() - t0;
    sizer.observe(b.count, busy);
    // outputs go out in batch order: each publish starts after the previous one ended
    const prev = publishes[publishes.length - 1] ?? Promise.resolve();
    publishes.push(prev.then(() => publish(b, run, busy)));
  }

  async function loop(): Promise<void> {
    for (;;) {
      while (publishes.length >= depth) await publishes.shift();
      if (buffer.size === 0) {
        if (publishes.length) {
          await publishes.shift();
          continue;
        }
        if (stopping) return;
        const ws = idleWaiters;
        idleWaiters = [];
        for (const w of ws) w();
        await buffer.waitForData(1);
        continue;
      }
      if (buffer.size < cfg.minBatchSize && !stopping && flushing === 0) {
        const deadline = buffer.oldestAt! + cfg.maxBatchWaitMs;
        if (clock.now() < deadline) {
          await Promise.race([buffer.waitForData(cfg.minBatchSize, deadline), kicked()]);
          continue;
        }
      }
      const b = buffer.take(sizer.current);
      inFlight++;
      try {
        await runBatch(b);
      } finally {
        inFlight--;
      }
    }
  }

  const done = loop().catch((err) => {
    log?.fatal({ err }, 'stream: processor loop died');
    throw err;
  });

  const metrics = (): StreamProcessingMetrics =>
    rec.snapshot({
      nowMono: clock.now(),
      configuredMaxBatch: cfg.maxBatchSize,
      currentBatchSize: sizer.current,
      effectiveMaxBatch: sizer.max,
      deviceType: ex.deviceType,
      deviceName: ex.deviceName,
      gpuMemoryInUse: ex.residentBytes,
      buffer: buffer.stats(),
    });

  return {
    batchConfig: cfg,
    backpressureConfig: bp,
    buffer,
    executor: ex,
    sizer,
    async push(bytes, ticket) {
      if (!(bytes instanceof Uint8Array))
        throw new PortalError('PORTAL_STREAM_BAD_RECORDS', 'records: expected a Uint8Array');
      const n = k.input.count(bytes);
      rec.received += n;
      if (stopping) throw new PortalError('PORTAL_STREAM_STOPPED', 'the stream processor is stopping');
      await buffer.push(bytes, ticket ?? { remaining: n });
    },
    async drain() {
      flushing++;
      try {
        while (buffer.size > 0 || inFlight > 0 || publishes.length > 0) {
          const idle = new Promise<void>((r) => idleWaiters.push(r));
          kick(); // a partial batch waiting for its deadline runs now
          await idle;
        }
      } finally {
        flushing--;
      }
    },
    metrics,
    async stop() {
      stopped ??= (async () => {
        stopping = true;
        buffer.close();
        kick();
        await done;
        await Promise.all(publishes);
        await ex.close();
      })();
      await stopped;
      return metrics();
    },
  };
}
