// The stream area's public face (GPU stream processing with batching and backpressure).
export { defineLayout, wordsOf } from './layout.js';
export type { RecordLayout, LayoutSpec, FieldSpec, FieldType, RecordValues } from './layout.js';
export { resolveStreamConfig, defaultBatchConfig, defaultBackpressureConfig } from './config.js';
export type { BatchAccumulationConfig, BackpressureConfig, StreamConfigInput } from './config.js';
export { BackpressureBuffer, settle } from './buffer.js';
export type { PushTicket, TakenBatch, BatchPart, BufferStats } from './buffer.js';
export { optimalBatchSize, adaptBatchSize, AdaptiveBatchSizer } from './batcher.js';
export type { BatchBounds } from './batcher.js';
export { LogHistogram, SlidingWindowRate } from './histogram.js';
export { StreamMetricsRecorder, streamPromSamples, registerStreamMetrics } from './metrics.js';
export type { StreamProcessingMetrics, PromSample } from './metrics.js';
export { deviceBytesPerRecord } from './kernel.js';
export type { StreamKernel, GpuKernelPlan, KernelRun } from './kernel.js';
export { createKernelExecutor, runCpu } from './executor.js';
export type { KernelExecutor, KernelExecutorOptions } from './executor.js';
export { createStreamGpuRunner, sharedDeviceManager } from './gpu-runner.js';
export type { StreamGpuRunner } from './gpu-runner.js';
export { createStreamProcessor } from './processor.js';
export type { StreamProcessor, StreamProcessorOptions, StreamSink, StreamEvent } from './processor.js';
export { streamSubjects, isStreamId, STREAM_STREAM } from './subjects.js';
export type {
  NatsStreamTransport,
  NatsStreamTransportOptions,
  NatsStreamSource,
  NatsSourceStats,
  AttachOptions,
} from './nats-transport.js';

/**
 * Connects the JetStream transport of GpuStreamActors (raw record batches on `portal.stream.<id>.*`,
 * pausable pull consumers through the bus's PausablePullClient), loading the NATS client only when called.
 * Rejects with PORTAL_BUS_UNAVAILABLE when NATS or JetStream cannot be reached.
 */
export async function createNatsStreamTransport(
  opts: import('./nats-transport.js').NatsStreamTransportOptions,
): Promise<import('./nats-transport.js').NatsStreamTransport> {
  const m = await import('./nats-transport.js');
  return m.createNatsStreamTransport(opts);
}
export { createBusStreamSink } from './bus-sink.js';
export type { StreamBusMessage } from './bus-sink.js';
export {
  edgeTelemetryKernel,
  edgeTelemetryCpu,
  edgeUpdates,
  toObservedSamples,
  touchedSlots,
  telemetrySampleLayout,
  edgeAggregateLayout,
  EDGE_TELEMETRY_MAX_BATCH,
  UNKNOWN_EDGE,
} from './kernels/edge-telemetry.js';
export type { EdgeUpdate, ObservedSample } from './kernels/edge-telemetry.js';
export { defineUserKernel } from './kernels/user-wgsl.js';
export type { UserKernelSpec } from './kernels/user-wgsl.js';
