// the modules themselves, not the areas' index.js: those also load the Dapr SDK, the NATS client, protobufjs
import { createEmbeddedHost, type EmbeddedHost } from '../runtime/embedded-host.js';
import { createFileStateStore } from '../runtime/file-state-store.js';
import { createMemoryStateStore } from '../runtime/memory-state-store.js';
import { createRoutedStateStore } from '../runtime/routed-state-store.js';
import { createBusFromEnv, natsOptionsFromEnv } from '../bus/from-env.js';
import type { Bus } from '../bus/types.js';
import { createMemoryBus } from '../bus/memory-bus.js';
import { createExecutor, edgePutCredentialFromEnv, type Executor } from '../transfer/index.js';
import { JOURNAL_SUFFIX } from '../transfer/output-target.js';
import { createLazyTickEngine, createTickEngine, type TickEngine } from '../engine/index.js';
import { SchedulerActor } from '../actors/scheduler-actor.js';
import { EdgeActor } from '../actors/edge-actor.js';
import { GpuWorkerActor } from '../actors/gpu-worker-actor.js';
import { routeEdgeEvents } from '../actors/edge-event-router.js';
import type { PortalServices } from '../actors/services.js';
import { EdgeUsageBoard } from '../actors/edge-usage.js';
import { createVerifiedChunkEvents } from '../actors/content-source.js';
import type { EventEmitter } from 'node:events';
import { PortalError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { probeEdge } from './probe.js';

/** The journal folder of an output file: `<output>.portal/` (the scheduler's durable actor state). */
export function journalDir(output: string): string {
  return `${output}${JOURNAL_SUFFIX}`;
}

/** Which tick engine to use: WebGPU when an adapter exists ('auto'), or one of them for sure. */
export type Backend = 'auto' | 'webgpu' | 'cpu';

/** Checks a backend name; PORTAL_CONFIG_INVALID naming `source` (the flag or variable it came from) otherwise. */
export function parseBackend(v: string, source = '--backend'): Backend {
  if (v === 'auto' || v === 'webgpu' || v === 'cpu') return v;
  throw new PortalError(
    'PORTAL_CONFIG_INVALID',
    `${source}: expected auto, webgpu or cpu, got ${JSON.stringify(v)}`,
  );
}

/** How a node picks its tick engine (the entry point reads these from its flags and environment). */
export interface EngineSettings {
  /** Default 'auto'. */
  backend?: Backend;
  /** Fail instead of falling back to the CPU when no GPU adapter exists (always so for backend 'webgpu'). */
  requireGpu?: boolean;
  /** Threads of the CPU engine (default: the machine's parallelism, at most 8). */
  cpuThreads?: number;
}

/**
 * Below this many chunks 'auto' ticks on the CPU without opening a GPU adapter (loading Dawn costs ~100 MB and
 * ~0.5 s) and with one rank thread: a full CPU tick takes 6.6 ms at 100 000 chunks and 62 ms at 1 000 000
 * (BENCHMARKS.md, "Scheduler tick"), so only transfers near a million chunks come close to the 50 ms tick
 * period where a GPU could pay for itself.
 */
export const GPU_MIN_CHUNKS = 262_144;

/**
 * Creates the tick engine `s` asks for. `cpu` never loads the `webgpu` module; `webgpu` (or `requireGpu`) opens
 * the adapter now and fails without one; `auto` ticks on the CPU and opens a GPU only for the first transfer of
 * GPU_MIN_CHUNKS chunks or more (createLazyTickEngine), so a host of small transfers never loads Dawn.
 */
export async function createNodeEngine(s: EngineSettings, logger: Logger): Promise<TickEngine> {
  const prefer = s.backend ?? 'auto';
  const requireGpu = prefer === 'webgpu' || s.requireGpu === true;
  if (prefer !== 'auto' || requireGpu)
    return createTickEngine({ prefer, requireGpu, cpuThreads: s.cpuThreads, logger });
  const small = await createTickEngine({ prefer: 'cpu', cpuThreads: s.cpuThreads, logger });
  return createLazyTickEngine({
    small,
    minChunks: GPU_MIN_CHUNKS,
    // the first large transfer: WebGPU on a hardware adapter, else (logged) the CPU engine `small` already is
    open: () => createTickEngine({ prefer: 'auto', cpuThreads: 1, logger }),
    logger,
  });
}

/** Everything the embedded default runs in one process: host, bus, executor and tick engine. */
export interface EmbeddedNode {
  host: EmbeddedHost<PortalServices>;
  /** Ids of the transfers whose SchedulerActor runs here (for the dashboard). */
  transfers: Set<string>;
  bus: Bus;
  /** SchedulerServices.verifiedChunks of this host (for its content server). */
  verifiedChunks: EventEmitter;
  executor: Executor;
  engine: TickEngine;
  close(): Promise<void>;
}

/** Options of startEmbeddedNode. */
export interface EmbeddedNodeOptions extends EngineSettings {
  /** Data-plane threads of the executor (default: see createExecutor; 0 moves bytes on the main thread). */
  dataThreads?: number;
  /** Most chunk bytes in flight on the data-plane threads (default: see createDataPlane). */
  maxInFlightBytes?: number;
  /** The output file; the scheduler's journal lives beside it (journalDir). */
  output: string;
  logger: Logger;
  /** Chunk fetches the executor runs at once (default 128). */
  concurrency?: number;
  /** An engine to use instead of one chosen by the engine settings (closed with the node). */
  tickEngine?: TickEngine;
  /**
   * The swarm: dispatch and reports stay on an in-process bus, and edge events (other peers'
   * telemetry and haves) come from `fabricBus` (NATS), skipping this node's own edge `selfEdgeId`. The executor
   * then writes only verified chunks (no streamed writes), so an ok report means verified bytes in the file.
   */
  swarm?: { fabricBus: Bus; selfEdgeId: string };
  /**
   * The ids of the transfers of a manifest on this node, where announced holdings go (default: the transfer
   * whose id is the manifest id).
   */
  transfersOf?: (manifestId: string) => Iterable<string>;
}

/**
 * Starts the embedded default for one output file: an in-process actor host whose SchedulerActor
 * state lives in a durable file store beside the output (the journal), the bus (in-process, or
 * NATS when NATS_URL is set) with edge events routed into the actors, an executor and the tick
 * engine (WebGPU when an adapter exists, unless the settings say otherwise).
 */
export async function startEmbeddedNode(opts: EmbeddedNodeOptions): Promise<EmbeddedNode> {
  // The in-process bus, or NATS when NATS_URL is set (credentials from NATS_* variables).
  const bus = opts.swarm
    ? createMemoryBus()
    : await createBusFromEnv({ logger: opts.logger, name: `portal-${process.pid}` });
  const engine = opts.tickEngine ?? (await createNodeEngine(opts, opts.logger));
  const journal = createFileStateStore(journalDir(opts.output));
  const store = createRoutedStateStore({ SchedulerActor: journal }, createMemoryStateStore());
  const transfers = new Set<string>();
  const announcedEdgeUrls = new Map<string, string>();
  const services: PortalServices = {
    announcedEdgeUrls,
    bus,
    verifiedChunks: createVerifiedChunkEvents(),
    tickEngine: engine,
    probeEdge,
    transferRegistry: transfers,
    edgeUsage: new EdgeUsageBoard(),
    // the executor is created below, before any actor runs
    settleExecutor: (id: string) => executor.detach(id),
  };
  const host = createEmbeddedHost({
    store,
    logger: opts.logger,
    services,
    callTimeoutMs: 120_000,
  });
  host.register(SchedulerActor);
  host.register(EdgeActor);
  host.register(GpuWorkerActor);
  await host.ready();
  const self = opts.swarm?.selfEdgeId;
  const edgeEvents = routeEdgeEvents(
    opts.swarm?.fabricBus ?? bus,
    host,
    opts.logger.child({ component: 'edge-events' }),
    {
      ...(self === undefined ? {} : { ignore: (edgeId: string) => edgeId === self }),
      transfersOf: opts.transfersOf,
      realUrls: announcedEdgeUrls,
    },
  );
  const executor = createExecutor({
    bus,
    id: `executor-${process.pid}`,
    concurrency: opts.concurrency ?? 128,
    threads: opts.dataThreads,
    maxInFlightBytes: opts.maxInFlightBytes,
    logger: opts.logger.child({ component: 'executor' }),
    // over NATS, `portal executor` processes may hold hedges of the same chunks, and a swarm peer holds (and serves)
    // each chunk on its ok report without reading it back (node/swarm.ts): write only verified chunks
    streamWrites: !opts.swarm && !natsOptionsFromEnv(process.env),
    // pre-position tasks PUT chunks to edges that may require a token (portal edge --accept --put-token)
    put: edgePutCredentialFromEnv(process.env),
  });
  return {
    host,
    transfers,
    bus,
    verifiedChunks: services.verifiedChunks!,
    executor,
    engine,
    async close() {
      edgeEvents.close();
      await executor.close();
      await host.stop();
      await bus.close();
      await store.close();
      await engine.close();
    },
  };
}
