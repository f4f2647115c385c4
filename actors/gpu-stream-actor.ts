import { Actor } from '../runtime/types.js';
import type { GpuStreamActorApi } from './api.js';
import { actorProxy } from './api.js';
import { PortalError, checkArg } from '../common/errors.js';
import { isBase64 } from '../common/base64.js';
import type { Bus } from '../bus/index.js';
import type { GpuDeviceManager } from '../gpu/index.js';
import {
  createBusStreamSink,
  createKernelExecutor,
  createStreamProcessor,
  defineUserKernel,
  edgeTelemetryKernel,
  edgeUpdates,
  isStreamId,
  toObservedSamples,
  type StreamKernel,
  type StreamProcessingMetrics,
  type StreamProcessor,
  type StreamSink,
  type NatsStreamSource,
  type NatsStreamTransport,
} from '../stream/index.js';

export type { GpuStreamKernelSpec, GpuStreamStartRequest, GpuStreamStatus } from './gpu-stream-types.js';
import type { GpuStreamKernelSpec, GpuStreamStartRequest, GpuStreamStatus } from './gpu-stream-types.js';

/** The services GpuStreamActor takes. */
export interface StreamServices {
  /** JetStream input and output of streams (createNatsStreamTransport); without it, output goes to `bus`. */
  readonly streamTransport?: NatsStreamTransport;
  /** The in-process bus outputs go to when there is no stream transport. */
  readonly bus?: Bus;
  /** A shared GPU device manager (one device per process). */
  readonly gpuDeviceManager?: GpuDeviceManager;
  /** Kernels `{ type: 'registered', name }` refers to, by name. */
  readonly streamKernels?: Readonly<Record<string, StreamKernel>>;
  /** True: a stream asking for the GPU fails when no adapter exists instead of running on the CPU. */
  readonly streamRequireGpu?: boolean;
  /**
   * True (`portal serve --backend cpu`): no stream opens a GPU adapter or loads the `webgpu` module; streams run
   * their kernel's CPU reference (streamRequireGpu does not apply), and one that asks for `backend: 'gpu'` is refused
   * with PORTAL_GPU_UNAVAILABLE.
   */
  readonly gpuOff?: boolean;
}

const live = new Map<string, { processor: StreamProcessor }>();

/** Metrics of every GpuStreamActor running in this process (for registerStreamMetrics(registry, gpuStreamMetricsSource)). */
export function gpuStreamMetricsSource(): Array<{
  labels: Record<string, string>;
  metrics: StreamProcessingMetrics;
}> {
  return [...live].map(([stream, s]) => ({ labels: { stream }, metrics: s.processor.metrics() }));
}

const CONFIG_KEY = 'stream';

/**
 * The GPU stream processor as an actor (one per stream; the actor id is the stream id, one NATS
 * token). `start` picks the kernel and configuration (kept in state: a reactivated actor starts
 * again); records arrive from JetStream (`portal.stream.<id>.in`, pulled only while the buffer is
 * below its pause threshold) and from `push`; outputs go to `portal.stream.<id>.out` (JetStream via
 * `services.streamTransport`, else the in-process `services.bus`), failed batches to `.failed`.
 * Services read: streamTransport, bus, gpuDeviceManager, streamKernels, streamRequireGpu (no adapter fails instead of
 * running the CPU reference), gpuOff (`--backend cpu`: the CPU reference, Dawn never loaded).
 */
export class GpuStreamActor extends Actor<StreamServices> implements GpuStreamActorApi {
  private processor: StreamProcessor | undefined;
  private source: NatsStreamSource | undefined;
  private req: GpuStreamStartRequest | undefined;
  private edgeFeedErrors = 0;

  override async onActivate(): Promise<void> {
    const saved = await this.ctx.state.get<GpuStreamStartRequest>(CONFIG_KEY);
    if (saved) await this.open(saved);
  }

  override async onDeactivate(): Promise<void> {
    await this.close();
  }

  /**
   * Starts (or restarts with a new configuration) the stream; rejects with PORTAL_CONFIG_INVALID / PORTAL_INVALID_ARGUMENT
   * naming what is wrong (PORTAL_CONFIG_INVALID for `edgeIds` with a source other than nats). From outside the host,
   * `edgeIds` is refused before this runs (actors/api checkExternalCall).
   */
  async start(req: GpuStreamStartRequest): Promise<GpuStreamStatus> {
    checkArg(isStreamId(this.ctx.actorId), 'actorId', 'a stream id of [A-Za-z0-9_-] (one NATS token)');
    checkArg(!!req && typeof req === 'object' && !!req.kernel, 'kernel', 'a kernel spec');
    await this.close();
    await this.open(req);
    await this.ctx.state.set(CONFIG_KEY, req);
    return this.status();
  }

  /**
   * Adds records (base64 of whole input records, or bytes in-process); in block mode waits for buffer space. Resolves
   * with the records accepted. A stream that feeds EdgeActors (`edgeIds`) refuses it with PORTAL_ACTOR_METHOD_FORBIDDEN:
   * its records come only from JetStream, or any caller of `push` could set the health of those edges.
   */
  async push(arg: { records: string | Uint8Array }): Promise<{ accepted: number }> {
    const p = this.need();
    if (this.req?.kernel.type === 'edge-telemetry' && this.req.kernel.edgeIds)
      throw new PortalError(
        'PORTAL_ACTOR_METHOD_FORBIDDEN',
        `stream ${this.ctx.actorId} feeds EdgeActors (kernel.edgeIds): its records come only from JetStream (portal.stream.${this.ctx.actorId}.in), never from push, which would let its caller set those edges' health`,
      );
    // Node's base64 decoding skips what is not base64: "!!!!" was 0 records accepted, not a refusal
    checkArg(
      typeof arg?.records !== 'string' || isBase64(arg.records),
      'records',
      'standard base64 (A-Z a-z 0-9 + /, padded with =) of whole records',
    );
    const bytes =
      typeof arg?.records === 'string' ? new Uint8Array(Buffer.from(arg.records, 'base64')) : arg?.records;
    checkArg(bytes instanceof Uint8Array, 'records', 'base64 or bytes of whole records');
    await p.push(bytes);
    return { accepted: bytes.byteLength / p.executor.kernel.input.recordBytes };
  }

  /** Runs partial batches now and resolves once every record pushed or pulled so far has an outcome. */
  async drain(): Promise<StreamProcessingMetrics> {
    const p = this.need();
    await p.drain();
    return p.metrics();
  }

  /** The stream's metrics (JSON; docs/architecture.md, "The stream processor"). */
  async metrics(): Promise<StreamProcessingMetrics> {
    return this.need().metrics();
  }

  async status(): Promise<GpuStreamStatus> {
    const p = this.need();
    return {
      streamId: this.ctx.actorId,
      running: true,
      source: this.source ? 'nats' : 'direct',
      backend: p.executor.backend,
      kernel: p.executor.kernel.name,
      inputRecordBytes: p.executor.kernel.input.recordBytes,
      outputRecordBytes: p.executor.kernel.output.recordBytes,
      edgeFeedErrors: this.edgeFeedErrors,
      metrics: p.metrics(),
    };
  }

  /** Stops pulling, drains, forgets the configuration (a later activation stays stopped) and returns the final metrics. */
  async stop(): Promise<StreamProcessingMetrics> {
    this.need();
    const m = await this.close();
    await this.ctx.state.delete(CONFIG_KEY);
    return m!;
  }

  private need(): StreamProcessor {
    if (!this.processor) {
      this.ctx.deactivateOnIdle(); // a stream that is not started keeps no instance in memory
      throw new PortalError(
        'PORTAL_INVALID_ARGUMENT',
        `stream ${this.ctx.actorId} is not started: call start first`,
      );
    }
    return this.processor;
  }

  private kernelOf(spec: GpuStreamKernelSpec): StreamKernel {
    if (spec.type === 'edge-telemetry') return edgeTelemetryKernel(spec.edges);
    if (spec.type === 'wgsl')
      return defineUserKernel({ name: spec.name, input: spec.input, output: spec.output, wgsl: spec.wgsl });
    if (spec.type === 'registered') {
      const k = this.ctx.services.streamKernels?.[spec.name];
      if (!k)
        throw new PortalError(
          'PORTAL_CONFIG_INVALID',
          `kernel.name: no kernel ${JSON.stringify(spec.name)} in services.streamKernels`,
        );
      return k;
    }
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `kernel.type: expected 'edge-telemetry', 'wgsl' or 'registered', got ${JSON.stringify((spec as { type?: unknown }).type)}`,
    );
  }

  private async open(req: GpuStreamStartRequest): Promise<void> {
    const id = this.ctx.actorId;
    const services = this.ctx.services;
    const transport = services.streamTransport;
    const bus = services.bus;
    const kernel = this.kernelOf(req.kernel);
    const sourceKind = req.source ?? (transport ? 'nats' : 'direct');
    if (sourceKind === 'nats' && !transport)
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        'source: nats needs services.streamTransport (createNatsStreamTransport)',
      );
    let sink: StreamSink;
    if (transport)
      sink = transport.sink(id, { output: kernel.output.recordBytes, input: kernel.input.recordBytes });
    else if (bus) sink = createBusStreamSink(bus, id);
    else
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        'no output: the host has neither services.streamTransport nor services.bus',
      );
    const edgeIds = req.kernel.type === 'edge-telemetry' ? req.kernel.edgeIds : undefined;
    // EdgeActor.observe is internal: what feeds it must be Portal's own (the bus), never records a caller pushes
    if (edgeIds && sourceKind !== 'nats')
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `kernel.edgeIds: a stream that feeds EdgeActors takes its records only from JetStream (source nats), and stream ${id} has source ${sourceKind}`,
      );
    if (edgeIds) sink = this.feedingEdges(sink, edgeIds);
    // --backend cpu is the user's word: as for the tick engine, PORTAL_REQUIRE_GPU and CI=true do not override it
    if (services.gpuOff === true && req.backend === 'gpu')
      throw new PortalError(
        'PORTAL_GPU_UNAVAILABLE',
        `stream ${id} asks for the GPU, and this host runs with --backend cpu (no GPU adapter is opened)`,
      );
    const executor = await createKernelExecutor({
      kernel,
      prefer: services.gpuOff === true ? 'cpu' : (req.backend ?? 'auto'),
      requireGpu: services.streamRequireGpu === true,
      deviceManager: services.gpuDeviceManager,
      logger: this.ctx.log,
    });
    this.processor = createStreamProcessor({
      executor,
      sink,
      config: req.config,
      clock: this.ctx.clock,
      logger: this.ctx.log,
      deviceMemoryBytes: req.deviceMemoryBytes,
    });
    live.set(id, { processor: this.processor });
    if (sourceKind === 'nats') this.source = await transport!.attach(id, this.processor);
    this.req = req;
    this.ctx.log.info(
      {
        kernel: kernel.name,
        backend: executor.backend,
        device: executor.deviceName,
        source: sourceKind,
        batchSize: this.processor.sizer.current,
      },
      'stream started',
    );
  }

  /** Output first, then the per-edge updates to the EdgeActors (a failed observe is counted and logged, not fatal). */
  private feedingEdges(sink: StreamSink, edgeIds: string[]): StreamSink {
    return {
      failed: (b, c, e) => sink.failed(b, c, e),
      output: async (bytes, count) => {
        await sink.output(bytes, count);
        const calls = edgeUpdates(bytes)
          .filter((u) => u.edge < edgeIds.length)
          .map((u) =>
            actorProxy(this.ctx, 'EdgeActor', edgeIds[u.edge])
              .invoke('observe', { samples: toObservedSamples(u) })
              .catch((err: unknown) => {
                this.edgeFeedErrors++;
                this.ctx.log.warn({ err, edge: edgeIds[u.edge] }, 'stream: EdgeActor did not take an update');
              }),
          );
        await Promise.all(calls);
      },
    };
  }

  private async close(): Promise<StreamProcessingMetrics | undefined> {
    const p = this.processor;
    if (!p) return undefined;
    await this.source?.stop();
    this.source = undefined;
    const m = await p.stop();
    live.delete(this.ctx.actorId);
    this.processor = undefined;
    this.req = undefined;
    return m;
  }
}
