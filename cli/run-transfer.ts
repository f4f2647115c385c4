import {
  createEmbeddedHost,
  createFileStateStore,
  createMemoryStateStore,
  createRoutedStateStore,
  type EmbeddedHost,
} from '../runtime/index.js';
import { createBusFromEnv, subjects, type Bus } from '../bus/index.js';
import type { ChunkReport } from '../common/index.js';
import { createExecutor, type Executor } from '../transfer/index.js';
import { createTickEngine, type TickEngine } from '../engine/index.js';
import {
  SchedulerActor,
  EdgeActor,
  GpuWorkerActor,
  routeEdgeEvents,
  terminalStates,
  actorProxy,
  type PortalServices,
  type TransferRequest,
  type TransferStatus,
} from '../actors/index.js';
import { PortalError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { probeEdge } from './probe.js';
import { cpuThreadsFromEnv, requireGpuFromEnv } from './env.js';
import { createDashboard } from '../dashboard/index.js';

/** The journal folder of an output file: `<output>.portal/` (the scheduler's durable actor state). */
export function journalDir(output: string): string {
  return `${output}.portal`;
}

/** Which tick engine to use: WebGPU when an adapter exists ('auto'), or one of them for sure. */
export type Backend = 'auto' | 'webgpu' | 'cpu';

/** PORTAL_BACKEND, or 'auto'. */
export function defaultBackend(): Backend {
  return parseBackend(process.env.PORTAL_BACKEND ?? 'auto', 'PORTAL_BACKEND');
}

/** Checks a backend name; PORTAL_CONFIG_INVALID naming `source` otherwise. */
export function parseBackend(v: string, source = '--backend'): Backend {
  if (v === 'auto' || v === 'webgpu' || v === 'cpu') return v;
  throw new PortalError(
    'PORTAL_CONFIG_INVALID',
    `${source}: expected auto, webgpu or cpu, got ${JSON.stringify(v)}`,
  );
}

/** Everything the embedded default runs in one process: host, bus, executor and tick engine. */
export interface EmbeddedNode {
  host: EmbeddedHost;
  /** Ids of the transfers whose SchedulerActor runs here (for the dashboard). */
  transfers: Set<string>;
  bus: Bus;
  executor: Executor;
  engine: TickEngine;
  close(): Promise<void>;
}

/**
 * Starts the embedded default for one output file: an in-process actor host whose SchedulerActor
 * state lives in a durable file store beside the output (the journal), the bus (in-process, or
 * NATS when NATS_URL is set) with edge events routed into the actors, an executor and the tick
 * engine (WebGPU when an adapter exists).
 */
export async function startEmbeddedNode(opts: {
  output: string;
  logger: Logger;
  concurrency?: number;
  backend?: Backend;
  /** An engine to use instead of one chosen by `backend` (closed with the node). */ tickEngine?: TickEngine;
}): Promise<EmbeddedNode> {
  // The in-process bus, or NATS when NATS_URL is set (credentials from NATS_* variables).
  const bus = await createBusFromEnv({ logger: opts.logger, name: `portal-${process.pid}` });
  const prefer = opts.backend ?? defaultBackend();
  const engine =
    opts.tickEngine ??
    (await createTickEngine({
      prefer,
      requireGpu: prefer === 'webgpu' || requireGpuFromEnv(),
      cpuThreads: cpuThreadsFromEnv(),
      logger: opts.logger,
    }));
  const journal = createFileStateStore(journalDir(opts.output));
  const store = createRoutedStateStore({ SchedulerActor: journal }, createMemoryStateStore());
  const transfers = new Set<string>();
  const services: PortalServices = { bus, tickEngine: engine, probeEdge, transferRegistry: transfers };
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
  const edgeEvents = routeEdgeEvents(bus, host, opts.logger.child({ component: 'edge-events' }));
  const executor = createExecutor({
    bus,
    id: `executor-${process.pid}`,
    concurrency: opts.concurrency ?? 128,
    logger: opts.logger.child({ component: 'executor' }),
  });
  return {
    host,
    transfers,
    bus,
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

/** Options of runTransfer. */
export interface RunTransferOptions {
  request: TransferRequest;
  logger: Logger;
  backend?: Backend;
  /** Called about every `progressMs` with the current status. */
  onProgress?: (s: TransferStatus) => void;
  progressMs?: number;
  /** Called with every report the executor publishes (demo accounting). */
  onReport?: (r: ChunkReport) => void;
  /** Called once the scheduler has started (journal verified, tick loop running). */
  onStarted?: (s: TransferStatus) => void;
  /** Serve the live dashboard on this port (0 = any free port) while the transfer runs. */
  dashboard?: { port: number; onUrl?: (url: string) => void; lingerMs?: number };
}

/**
 * Runs one transfer to the end on the embedded default and returns its final status. Resumes
 * from the journal beside the output when there is one. Rejects with PORTAL_TRANSFER_FAILED when
 * the transfer fails (no edge can serve a chunk, or the sha256 does not match).
 */
export async function runTransfer(o: RunTransferOptions): Promise<TransferStatus> {
  const node = await startEmbeddedNode({ output: o.request.output, logger: o.logger, backend: o.backend });
  const dash = o.dashboard
    ? await createDashboard({
        host: node.host,
        transfers: () => [...node.transfers],
        logger: o.logger.child({ component: 'dashboard' }),
        port: o.dashboard.port,
        engineStats: () => node.engine.stats(),
      })
    : undefined;
  if (dash) o.dashboard?.onUrl?.(dash.url);
  try {
    node.executor.attach(o.request.transferId);
    const reportSub = o.onReport
      ? node.bus.subscribe<ChunkReport>(subjects.report(o.request.transferId), o.onReport)
      : undefined;
    const actor = actorProxy(node.host, 'SchedulerActor', o.request.transferId);
    let status = await actor.invoke('start', o.request);
    o.onStarted?.(status);
    const every = o.progressMs ?? 250;
    while (!terminalStates.includes(status.state)) {
      await new Promise((r) => setTimeout(r, every));
      status = await actor.invoke('status');
      o.onProgress?.(status);
    }
    reportSub?.unsubscribe();
    if (status.state === 'failed')
      throw new PortalError(
        'PORTAL_TRANSFER_FAILED',
        `transfer ${status.transferId} failed: ${status.error ?? 'unknown reason'}`,
      );
    if (dash && o.dashboard?.lingerMs) {
      await dash.pollNow();
      await new Promise((r) => setTimeout(r, o.dashboard!.lingerMs));
    }
    return status;
  } finally {
    await dash?.close();
    await node.close();
  }
}
