import type { Registry } from 'prom-client';
import { Counter, Gauge } from 'prom-client';
import { LogHistogram, SlidingWindowRate } from './histogram.js';

/**
 * Every metric of the stream processor (durations in ms, times as ISO strings so the
 * record is JSON for actor calls), plus the counters this implementation adds.
 */
export interface StreamProcessingMetrics {
  totalItemsProcessed: number;
  totalItemsFailed: number;
  totalProcessingTimeMs: number;
  totalBatchesProcessed: number;
  averageBatchSize: number;
  /** averageBatchSize / the configured maxBatchSize. */
  batchEfficiency: number;
  /** Item latency: enqueue in the buffer → output published. */
  averageLatencyMs: number;
  p50LatencyMs: number;
  p99LatencyMs: number;
  totalKernelExecutionTimeMs: number;
  totalMemoryTransferTimeMs: number;
  /** kernel / (kernel + transfer). */
  kernelEfficiency: number;
  memoryBandwidthMBps: number;
  /** Device bytes allocated over the life of the processor (freed after each batch; see gpuMemoryInUse). */
  totalGpuMemoryAllocated: number;
  /** Items/s over the last 10 s. */
  currentThroughput: number;
  peakThroughput: number;
  bufferCurrentSize: number;
  bufferCapacity: number;
  bufferUtilization: number;
  totalPauseCount: number;
  totalPauseDurationMs: number;
  deviceType: string;
  deviceName: string;
  startTime: string;
  lastProcessedTime: string | null;
  // ---- beyond the seed ----
  /** Records dropped by drop-oldest mode. */
  totalItemsDropped: number;
  totalBatchesFailed: number;
  /** Failed items by PortalError code. */
  failuresByCode: Record<string, number>;
  currentBatchSize: number;
  maxBatchSize: number;
  paused: boolean;
  /** Device bytes held by batches now (0 when idle). */
  gpuMemoryInUse: number;
  itemsReceived: number;
}

/** The counters a processor keeps and the derived metrics (pure: the processor feeds it). */
export class StreamMetricsRecorder {
  readonly latency = new LogHistogram();
  readonly rate: SlidingWindowRate;
  processed = 0;
  failed = 0;
  received = 0;
  batches = 0;
  failedBatches = 0;
  batchItems = 0;
  processingMs = 0;
  kernelMs = 0;
  transferMs = 0;
  transferBytes = 0;
  allocated = 0;
  peak = 0;
  lastProcessedWall: number | undefined;
  readonly failuresByCode: Record<string, number> = {};

  constructor(
    private readonly startMono: number,
    readonly startWall: number,
  ) {
    this.rate = new SlidingWindowRate(startMono);
  }

  /** A batch whose output went out: `latencies` are (ms, records) pairs. */
  batchDone(
    count: number,
    busyMs: number,
    run: { kernelMs: number; transferMs: number; transferBytes: number; allocatedBytes: number },
    latencies: Array<[number, number]>,
    nowMono: number,
    nowWall: number,
  ): void {
    this.processed += count;
    this.batches++;
    this.batchItems += count;
    this.processingMs += busyMs;
    this.kernelMs += run.kernelMs;
    this.transferMs += run.transferMs;
    this.transferBytes += run.transferBytes;
    this.allocated += run.allocatedBytes;
    for (const [ms, n] of latencies) this.latency.record(ms, n);
    this.rate.record(count, nowMono);
    const r = this.rate.rate(nowMono);
    if (r > this.peak) this.peak = r;
    this.lastProcessedWall = nowWall;
  }

  batchFailed(count: number, code: string, busyMs: number, allocatedBytes: number): void {
    this.failed += count;
    this.failedBatches++;
    this.processingMs += busyMs;
    this.allocated += allocatedBytes;
    this.failuresByCode[code] = (this.failuresByCode[code] ?? 0) + count;
  }

  snapshot(x: {
    nowMono: number;
    configuredMaxBatch: number;
    currentBatchSize: number;
    effectiveMaxBatch: number;
    deviceType: string;
    deviceName: string;
    gpuMemoryInUse: number;
    buffer: {
      size: number;
      capacity: number;
      paused: boolean;
      pauseCount: number;
      pauseDurationMs: number;
      dropped: number;
    };
  }): StreamProcessingMetrics {
    const avgBatch = this.batches ? this.batchItems / this.batches : 0;
    const gpuMs = this.kernelMs + this.transferMs;
    return {
      totalItemsProcessed: this.processed,
      totalItemsFailed: this.failed,
      totalProcessingTimeMs: this.processingMs,
      totalBatchesProcessed: this.batches,
      averageBatchSize: avgBatch,
      batchEfficiency: avgBatch / x.configuredMaxBatch,
      averageLatencyMs: this.latency.mean,
      p50LatencyMs: this.latency.quantile(0.5),
      p99LatencyMs: this.latency.quantile(0.99),
      totalKernelExecutionTimeMs: this.kernelMs,
      totalMemoryTransferTimeMs: this.transferMs,
      kernelEfficiency: gpuMs > 0 ? this.kernelMs / gpuMs : 0,
      memoryBandwidthMBps: this.transferMs > 0 ? this.transferBytes / 1e6 / (this.transferMs / 1000) : 0,
      totalGpuMemoryAllocated: this.allocated,
      currentThroughput: this.rate.rate(x.nowMono),
      peakThroughput: this.peak,
      bufferCurrentSize: x.buffer.size,
      bufferCapacity: x.buffer.capacity,
      bufferUtilization: x.buffer.size / x.buffer.capacity,
      totalPauseCount: x.buffer.pauseCount,
      totalPauseDurationMs: x.buffer.pauseDurationMs,
      deviceType: x.deviceType,
      deviceName: x.deviceName,
      startTime: new Date(this.startWall).toISOString(),
      lastProcessedTime:
        this.lastProcessedWall === undefined ? null : new Date(this.lastProcessedWall).toISOString(),
      totalItemsDropped: x.buffer.dropped,
      totalBatchesFailed: this.failedBatches,
      failuresByCode: { ...this.failuresByCode },
      currentBatchSize: x.currentBatchSize,
      maxBatchSize: x.effectiveMaxBatch,
      paused: x.buffer.paused,
      gpuMemoryInUse: x.gpuMemoryInUse,
      itemsReceived: this.received,
    };
  }
}

/** One Prometheus sample: name (prefixed `portal_stream_`), type, help, value, labels. */
export interface PromSample {
  name: string;
  type: 'counter' | 'gauge';
  help: string;
  value: number;
  labels: Record<string, string>;
}

const COUNTERS: Array<[keyof StreamProcessingMetrics, string, string, number?]> = [
  ['totalItemsProcessed', 'items_processed_total', 'Records processed and published'],
  ['totalItemsFailed', 'items_failed_total', 'Records in failed batches'],
  ['totalItemsDropped', 'items_dropped_total', 'Records dropped by drop-oldest backpressure'],
  ['totalBatchesProcessed', 'batches_processed_total', 'Batches processed'],
  ['totalBatchesFailed', 'batches_failed_total', 'Batches failed'],
  ['totalProcessingTimeMs', 'processing_seconds_total', 'Time spent processing batches', 1e-3],
  ['totalKernelExecutionTimeMs', 'kernel_seconds_total', 'Kernel execution time', 1e-3],
  ['totalMemoryTransferTimeMs', 'transfer_seconds_total', 'Host-device transfer time', 1e-3],
  ['totalGpuMemoryAllocated', 'gpu_memory_allocated_bytes_total', 'Device bytes allocated for batches'],
  ['totalPauseCount', 'pauses_total', 'Times the source was paused by backpressure'],
  ['totalPauseDurationMs', 'pause_seconds_total', 'Time the source spent paused', 1e-3],
];
const GAUGES: Array<[keyof StreamProcessingMetrics, string, string, number?]> = [
  ['averageBatchSize', 'batch_size_average', 'Mean records per batch'],
  ['batchEfficiency', 'batch_efficiency_ratio', 'Mean batch size / max batch size'],
  ['currentBatchSize', 'batch_size_current', 'Batch size in force (adaptive)'],
  ['averageLatencyMs', 'latency_average_seconds', 'Mean item latency', 1e-3],
  ['p50LatencyMs', 'latency_p50_seconds', 'Median item latency', 1e-3],
  ['p99LatencyMs', 'latency_p99_seconds', '99th percentile item latency', 1e-3],
  ['kernelEfficiency', 'kernel_efficiency_ratio', 'Kernel time / (kernel + transfer) time'],
  ['memoryBandwidthMBps', 'memory_bandwidth_mbps', 'Host-device bandwidth, MB/s'],
  ['currentThroughput', 'throughput_items_per_second', 'Items/s over the last 10 s'],
  ['peakThroughput', 'throughput_peak_items_per_second', 'Highest 10 s throughput seen'],
  ['bufferCurrentSize', 'buffer_items', 'Records in the backpressure buffer'],
  ['bufferCapacity', 'buffer_capacity_items', 'Capacity of the backpressure buffer'],
  ['bufferUtilization', 'buffer_utilization_ratio', 'Buffer fill ratio'],
  ['gpuMemoryInUse', 'gpu_memory_in_use_bytes', 'Device bytes held by batches now'],
];

/** The metrics as Prometheus samples (seconds, not ms; `labels` on every sample, device labels added). */
export function streamPromSamples(
  m: StreamProcessingMetrics,
  labels: Record<string, string> = {},
): PromSample[] {
  const l = { ...labels, device_type: m.deviceType };
  const out: PromSample[] = [];
  for (const [k, name, help, scale] of COUNTERS)
    out.push({
      name: `portal_stream_${name}`,
      type: 'counter',
      help,
      value: (m[k] as number) * (scale ?? 1),
      labels: l,
    });
  for (const [k, name, help, scale] of GAUGES)
    out.push({
      name: `portal_stream_${name}`,
      type: 'gauge',
      help,
      value: (m[k] as number) * (scale ?? 1),
      labels: l,
    });
  out.push({
    name: 'portal_stream_paused',
    type: 'gauge',
    help: '1 while the source is paused by backpressure',
    value: m.paused ? 1 : 0,
    labels: l,
  });
  return out;
}

/**
 * Registers the portal_stream_* metrics into `registry`; on every scrape they are read from
 * `source()` (one entry per stream, each with its labels, e.g. { stream: id }). Returns a function
 * that removes them again.
 */
export function registerStreamMetrics(
  registry: Registry,
  source: () => Array<{ labels: Record<string, string>; metrics: StreamProcessingMetrics }>,
): () => void {
  const names: string[] = [];
  const labelNames = (): string[] => [
    ...new Set(['device_type', ...source().flatMap((s) => Object.keys(s.labels)), 'stream']),
  ];
  const defs = [
    ...COUNTERS.map((c) => ['counter', ...c] as const),
    ...GAUGES.map((g) => ['gauge', ...g] as const),
  ];
  const fixedLabels = labelNames();
  const fill = (metric: Gauge<string> | Counter<string>, name: string): void => {
    metric.reset();
    for (const s of source()) {
      for (const smp of streamPromSamples(s.metrics, s.labels)) {
        if (smp.name !== name) continue;
        const lab = Object.fromEntries(Object.entries(smp.labels).filter(([k]) => fixedLabels.includes(k)));
        if (metric instanceof Gauge) metric.set(lab, smp.value);
        else metric.inc(lab, smp.value);
      }
    }
  };
  for (const [type, , name, help] of defs) {
    const full = `portal_stream_${name}`;
    names.push(full);
    if (type === 'counter')
      new Counter({
        name: full,
        help,
        labelNames: fixedLabels,
        registers: [registry],
        collect() {
          fill(this, full);
        },
      });
    else
      new Gauge({
        name: full,
        help,
        labelNames: fixedLabels,
        registers: [registry],
        collect() {
          fill(this, full);
        },
      });
  }
  names.push('portal_stream_paused');
  new Gauge({
    name: 'portal_stream_paused',
    help: '1 while the source is paused by backpressure',
    labelNames: fixedLabels,
    registers: [registry],
    collect() {
      fill(this, 'portal_stream_paused');
    },
  });
  return () => {
    for (const n of names) registry.removeSingleMetric(n);
  };
}
