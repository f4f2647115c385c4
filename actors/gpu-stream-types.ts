import type { LayoutSpec, StreamConfigInput, StreamProcessingMetrics } from '../stream/index.js';

/* The vocabulary of GpuStreamActor's calls (kept apart from the actor so actors/api.ts can name it). */

/** Which kernel a stream runs (JSON: it travels in `start` and is kept in actor state). */
export type GpuStreamKernelSpec =
  /**
   * Edge telemetry aggregation; with `edgeIds`, each batch's per-edge updates are fed to EdgeActor `edgeIds[edge]`
   * (only for a start by the host's own code or a cluster caller: refused from outside, as EdgeActor.observe is; the
   * records then come only from JetStream, and `push` is refused).
   */
  | { type: 'edge-telemetry'; edges: number; edgeIds?: string[] }
  /** A user WGSL kernel: `wgsl` defines `fn process(r: <input.name>) -> <output.name>` (GPU only: no CPU reference travels as JSON). */
  | { type: 'wgsl'; name: string; input: LayoutSpec; output: LayoutSpec; wgsl: string }
  /** A kernel the host registered in `services.streamKernels[name]` (may carry a CPU reference). */
  | { type: 'registered'; name: string };

/** Argument of GpuStreamActor.start. */
export interface GpuStreamStartRequest {
  kernel: GpuStreamKernelSpec;
  config?: StreamConfigInput;
  /** `nats`: pull `portal.stream.<id>.in` from JetStream (needs `services.streamTransport`); `direct`: records come only from `push`. Default: nats when the transport exists. */
  source?: 'nats' | 'direct';
  /** Where kernels run (default auto: GPU when an adapter exists). */
  backend?: 'auto' | 'gpu' | 'cpu';
  /** Device memory batches may use, bytes (default: the device's buffer limit). */
  deviceMemoryBytes?: number;
}

/** What start and status return. */
export interface GpuStreamStatus {
  streamId: string;
  running: boolean;
  source: 'nats' | 'direct';
  backend: 'gpu' | 'cpu';
  kernel: string;
  inputRecordBytes: number;
  outputRecordBytes: number;
  /** EdgeActor.observe calls that failed (e.g. an edge that is not configured). */
  edgeFeedErrors: number;
  metrics: StreamProcessingMetrics;
}
