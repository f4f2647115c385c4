import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { stat } from 'node:fs/promises';
import { escapeControl } from '../common/redact.js';
import {
  lockFile,
  lockHolderText,
  realPathOrAbsolute,
  type HostOwnedPath,
  type OutputLock,
} from '../transfer/output-target.js';
import { fileURLToPath } from 'node:url';
import { OutputClaims } from '../actors/output-claims.js';
import { createHash } from 'node:crypto';
import {
  createDaprHost,
  createEmbeddedHost,
  createFileStateStore,
  createMemoryStateStore,
  createRoutedStateStore,
  ProbeActor,
  type ActorClass,
  type ActorHost,
  type EmbeddedHost,
} from '../runtime/index.js';
import { isInvocableMethod } from '../runtime/actor-methods.js';
import {
  createBusFromEnv,
  natsOptionsFromEnv,
  subjects,
  type Bus,
  type NatsBus,
  type PrePositionTaskMessage,
} from '../bus/index.js';
import { createNatsStreamTransport, registerStreamMetrics } from '../stream/index.js';
import { askHoldings, createExecutor, edgePutCredentialFromEnv } from '../transfer/index.js';
import { startPrefixHashThread } from '../transfer/prefix-hasher.js';
import type { TickEngine } from '../engine/index.js';
import { createDashboard, type MetricSample } from '../dashboard/index.js';
import { actorApiContract } from '../api/validate.js';
import {
  SchedulerActor,
  EdgeActor,
  GpuWorkerActor,
  GpuStreamActor,
  CoordinatorActor,
  gpuStreamMetricsSource,
  routeEdgeEvents,
  actorProxy,
  type TransferRequest,
  EdgeUsageBoard,
  TransferIndex,
  createVerifiedChunkEvents,
  ReplicaPlacer,
  TransferAdmission,
  defaultMaxRunning,
  defaultMaxQueued,
  isExternalMethod,
  checkExternalCall,
  type PortalServices,
} from '../actors/index.js';
import { PortalError, isPortalError } from '../common/errors.js';
import { forEachLimited } from '../common/for-each-limited.js';
import type { Logger } from '../common/logger.js';
import { probeEdge } from './probe.js';
import { createExecutorAttachingBus } from './executor-bus.js';
import { serveActorApi } from './actor-api.js';
import { createNodeEngine, type EngineSettings } from './embedded-node.js';
import { createCoordinatorBridge, type CoordinatorBridge } from './coordinator.js';
import { makeDirs } from '../common/make-dirs.js';

/** Settings of the Dapr runtime of a serving node (see DaprHostOptions). */
export interface ServeDaprSettings {
  daprHost: string;
  daprHttpPort: number;
  daprApiToken?: string;
  appApiToken?: string;
  /** Go duration, e.g. "60m". */
  actorIdleTimeout: string;
  /** Go duration: how often Dapr looks for idle actors. */
  actorScanInterval: string;
  /** Go duration: how long Dapr lets running calls finish when the app shuts down. */
  drainOngoingCallTimeout: string;
  localTurns: boolean;
}

/**
 * Why the dapr runtime takes no app port 0 (any free port), for an error message: daprd is started with the port it
 * calls the actors on (its own --app-port), so that port is known before this process starts, not chosen by it.
 */
export const DAPR_APP_PORT_0_REASON =
  'daprd calls the actors on the port it was started with (daprd --app-port), so it must be known in advance: give that port';

/** Options of startServeNode. */
export interface ServeNodeOptions extends EngineSettings {
  /** dapr: actors behind a sidecar (placement, actor state store); embedded: one process with an HTTP actor API. */
  runtime: 'dapr' | 'embedded';
  /**
   * Port daprd calls the actors on (dapr: 1–65535, the one daprd was started with: PORTAL_CONFIG_INVALID for 0), or
   * the port of the embedded HTTP actor API (0: any free port, reported as ServeNode.appPort).
   */
  appPort: number;
  /** Required for runtime 'dapr'. */
  dapr?: ServeDaprSettings;
  /** Embedded: folder of the durable actor state (default: in memory). */
  stateDir?: string;
  /**
   * Other files and folders of the host's that no transfer may write into (the CLI's code cache folder); the state
   * folder and Portal's code (the `dist` folder this module runs from) are added here.
   */
  hostOwnedPaths?: readonly HostOwnedPath[];
  /** Chunk fetches this instance's executor runs at once. */
  concurrency: number;
  /** On close, running actor turns get this long before their callers are released (ms). */
  drainTimeoutMs: number;
  /** Embedded: actors without a turn for this long are deactivated and released (ms; default 60 minutes). */
  idleTimeoutMs?: number;
  /** Embedded: how often idle actors are looked for (ms; default 30 s). */
  idleScanMs?: number;
  /** Serve the dashboard and /metrics at this port (0 = any free port); absent = no dashboard. */
  dashboardPort?: number;
  /** Interface the dashboard listens on (default 127.0.0.1: it has no authentication). */
  dashboardHost?: string;
  /** Embedded actor API: interface to bind (default 127.0.0.1; beyond loopback `apiToken` is required). */
  apiHost?: string;
  /** Embedded actor API: the bearer token every call must carry (see serveActorApi). */
  apiToken?: string;
  /** Embedded actor API: largest request body in bytes (default DEFAULT_MAX_BODY_BYTES). */
  maxBodyBytes?: number;
  /**
   * Folder every transfer output must resolve inside, for SchedulerActor.start and this node's executor
   * (links resolved first); required: a serving node writes only where it was told it may.
   */
  outputRoot: string;
  /**
   * Folder a start's `manifestUrl` may name a local file in (default: `outputRoot`); 'none': http(s) URLs only.
   * Callers of the actor API are not the host's user: without it they could read any file the host can.
   */
  manifestRoot?: string;
  /**
   * Dapr: the internal-call token every instance shares (PORTAL_INTERNAL_TOKEN); default derived from the app
   * API token when there is one, else one per process (a single instance only).
   */
  internalToken?: string;
  /** Edges tracked from bus events at most (routeEdgeEvents; default DEFAULT_MAX_EDGES). */
  maxEdges?: number;
  /**
   * Transfers that run on this process at once; further starts wait in state `queued` (TransferAdmission).
   * Default defaultMaxRunning(): 8 per core, at most one per 32 MiB of memory.
   */
  maxRunning?: number;
  /** Transfers that may wait for a slot; beyond it start fails with PORTAL_OVERLOADED. Default 100 × maxRunning. */
  maxQueued?: number;
  /** Also register ProbeActor (the Dapr test suites' actor). */
  testActors: boolean;
  /** GpuStreamActors fail instead of running the CPU reference without a GPU adapter. */
  streamRequireGpu: boolean;
  /**
   * Id of the CoordinatorActor this node serves to peers and clients over the bus
   * (docs/coord-service.md); default 'default'.
   */
  coordinatorId?: string;
  /** Process environment the NATS settings are read from (NATS_URL, NATS_*); default process.env. */
  env?: NodeJS.ProcessEnv;
  logger: Logger;
}

/** A running serving node. */
export interface ServeNode {
  host: ActorHost;
  /** The port the actors are served on: `appPort` as given, or the one the system chose for 0 (embedded). */
  appPort: number;
  engine: TickEngine;
  /** The dashboard's URL when one was asked for. */
  dashboardUrl?: string;
  /** The learned coordinator's bus side. */
  coordinator: CoordinatorBridge;
  /** This process's admission control (running and queued transfers). */
  admission: TransferAdmission;
  /** Threads started with the host: data-plane threads (0 when fetches run on the main thread) and the hash thread. */
  threads: { data: number; hash: boolean };
  /** Stops the dashboard, edge events, executor, host, stream transport, API server, bus and engine, in that order. */
  close(): Promise<void>;
}

/**
 * Starts the node `portal serve` runs: Portal's actors (SchedulerActor, EdgeActor, GpuWorkerActor, GpuStreamActor, CoordinatorActor)
 * on a Dapr or embedded host, the bus (in-process, or NATS when NATS_URL is set) wrapped so that a scheduler's
 * subscription attaches this instance's executor, the tick engine, a JetStream stream transport when NATS is
 * configured, edge events routed into the actors, CoordinatorActor `coordinatorId` serving peers and clients over
 * the bus (createCoordinatorBridge) and, when asked, the dashboard. The embedded runtime also serves
 * the HTTP actor API on 127.0.0.1:`appPort` (0: any free port, see ServeNode.appPort). Throws PORTAL_CONFIG_INVALID
 * when runtime 'dapr' has no settings or an appPort of 0.
 */
/** Name of the lock file `portal serve` holds in its `--state-dir` while it runs. */
export const STATE_LOCK_FILE = 'serve.lock';

/**
 * Takes the exclusive lock of a state folder (created when missing, 0700): `<dir>/serve.lock` holding this
 * process's pid and host (transfer/output-target.ts lockFile: taken over only when its process is gone). Two hosts
 * on one folder would each replay and delete the other's write-ahead log, losing acknowledged transfers. Rejects
 * PORTAL_STATE_LOCKED naming the folder and the pid that holds it, PORTAL_CONFIG_INVALID when the lock cannot be
 * created, and the fs error (EEXIST, EACCES…) when the folder cannot be.
 */
export async function lockStateDir(stateDir: string): Promise<OutputLock> {
  const dir = path.resolve(stateDir);
  const cannot = (err: unknown): PortalError =>
    new PortalError(
      'PORTAL_CONFIG_INVALID',
      `--state-dir ${escapeControl(dir)}: cannot take its lock: ${(err as Error).message}`,
      { cause: err },
    );
  // the fs error as it is (cli/system-errors.ts names --state-dir and says what is in the way)
  await makeDirs(dir, 0o700);
  const file = path.join(dir, STATE_LOCK_FILE);
  return lockFile(
    file,
    (h, cause) =>
      new PortalError(
        'PORTAL_STATE_LOCKED',
        `--state-dir ${escapeControl(dir)} is in use by another portal serve${lockHolderText(h)}; stop it, give another --state-dir, or remove ${escapeControl(file)} if no such process runs`,
        { cause },
      ),
    cannot,
  );
}

/**
 * What a serve host owns, real paths: its state folder (lock, write-ahead log, actor snapshots), Portal's code (the
 * `dist` folder this module runs from) and `opts.hostOwnedPaths`.
 */
async function hostOwnedPathsOf(opts: ServeNodeOptions): Promise<HostOwnedPath[]> {
  const owned: HostOwnedPath[] = [];
  if (opts.stateDir !== undefined)
    owned.push({ path: await realPathOrAbsolute(opts.stateDir), what: 'the state folder (--state-dir)' });
  owned.push({
    path: await realPathOrAbsolute(fileURLToPath(new URL('..', import.meta.url))),
    what: "Portal's code folder",
  });
  for (const o of opts.hostOwnedPaths ?? []) owned.push({ ...o, path: await realPathOrAbsolute(o.path) });
  return owned;
}

export async function startServeNode(opts: ServeNodeOptions): Promise<ServeNode> {
  const { logger } = opts;
  const env = opts.env ?? process.env;
  if (opts.runtime === 'dapr' && opts.appPort === 0)
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `appPort 0 (any free port) cannot be used with runtime 'dapr': ${DAPR_APP_PORT_0_REASON}`,
    );
  // first of all: a second serve must not replay (and delete) the write-ahead log of a running one
  const stateLock =
    opts.runtime === 'embedded' && opts.stateDir !== undefined
      ? await lockStateDir(opts.stateDir)
      : undefined;
  const releaseOnExit = (): void => stateLock?.releaseSync();
  if (stateLock) process.once('exit', releaseOnExit);
  // in-process bus, or NATS when NATS_URL is set (then `portal executor` processes can share the work)
  // dead letters of this instance's bus, counted in /metrics (portal_dead_letters_total{reason=<code>}) once
  // the dashboard exists; those rejected before are kept until then
  let recordDeadLetter: ((code: string) => void) | undefined;
  let forgetTransferHook: ((transferId: string) => void) | undefined;
  const earlyDeadLetters = new Map<string, number>();
  const bus0 = await createBusFromEnv({
    logger,
    name: `portal-serve-${process.pid}`,
    onDeadLetter: (code) => {
      if (recordDeadLetter) recordDeadLetter(code);
      else earlyDeadLetters.set(code, (earlyDeadLetters.get(code) ?? 0) + 1);
    },
  });
  const outputRoot = path.resolve(opts.outputRoot);
  const rootStat = await stat(outputRoot).catch(() => undefined);
  if (!rootStat?.isDirectory())
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `--output-root ${outputRoot}: expected an existing folder`,
    );
  if (opts.manifestRoot !== undefined && opts.manifestRoot !== 'none') {
    const st = await stat(opts.manifestRoot).catch(() => undefined);
    if (!st?.isDirectory())
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `--manifest-root ${path.resolve(opts.manifestRoot)}: expected an existing folder (or 'none')`,
      );
  }
  const executor = createExecutor({
    bus: bus0,
    id: `executor-${process.pid}`,
    outputRoot,
    concurrency: opts.concurrency,
    logger: logger.child({ component: 'executor' }),
    // over NATS, `portal executor` processes may hold hedges of the same chunks: write only verified chunks
    streamWrites: !natsOptionsFromEnv(env),
    // pre-position tasks PUT chunks to edges that may require a token (portal edge --accept --put-token)
    put: edgePutCredentialFromEnv(env),
  });
  // The data-plane threads and the hash thread start with the host, not with its first transfers: their boot
  // (an isolate and the bundled worker each, ~0.1 s of CPU) would land on the first burst of starts and hold up
  // its API calls (bench:load, 1000 starts: start p99 −20 %, BENCHMARKS.md "Issue 15 at the end of session 13").
  executor.warm();
  const hashThread = startPrefixHashThread();
  const bus = createExecutorAttachingBus(bus0, executor, logger);
  // /healthz and /readyz report the bus's connection (NATS: connected / reconnecting / closed, since when)
  const busHealth = () => bus0.health?.();
  const engine = await createNodeEngine(opts, logger);
  const transfers = new Set<string>();
  // admission control per host process: on Dapr each instance counts the SchedulerActors it hosts
  const maxRunning = opts.maxRunning ?? defaultMaxRunning();
  const admission = new TransferAdmission({
    maxRunning,
    maxQueued: opts.maxQueued ?? defaultMaxQueued(maxRunning),
    promote: (id) => actorProxy(host, 'SchedulerActor', id).invoke('admit'),
    onPromoteError: (id, err) =>
      logger.warn(
        { err, transferId: id },
        'a queued transfer could not be admitted; its slot goes to the next',
      ),
  });
  // GpuStreamActors pull their input from JetStream when NATS is configured, else take pushed records
  const nats = natsOptionsFromEnv(env);
  const streamTransport = nats
    ? await createNatsStreamTransport({ ...nats, name: `portal-stream-${process.pid}`, logger })
    : undefined;
  const coordinator = createCoordinatorBridge({
    bus: bus0,
    coordinatorId: opts.coordinatorId ?? 'default',
    logger,
  });
  // files read where no edge holds them are replicated to accepting edges there (transfers' `location`)
  const replicas = new ReplicaPlacer({
    submit: (req) => actorProxy(host, 'SchedulerActor', req.transferId).invoke('start', req),
    log: logger.child({ component: 'replicas' }),
  });
  const announcedEdgeUrls = new Map<string, string>();
  // the transfers this process hosts, listed by the embedded API's GET /v1/transfers
  const transferIndex = new TransferIndex();
  const services: PortalServices = {
    announcedEdgeUrls,
    bus,
    replicas,
    ...coordinator.services,
    tickEngine: engine,
    probeEdge,
    transferRegistry: transfers,
    transferIndex,
    edgeUsage: new EdgeUsageBoard(),
    verifiedChunks: createVerifiedChunkEvents(),
    outputRoot,
    hostOwnedPaths: await hostOwnedPathsOf(opts),
    outputClaims: new OutputClaims(),
    manifestRoot: opts.manifestRoot === 'none' ? null : path.resolve(opts.manifestRoot ?? outputRoot),
    onTransferForgotten: (id: string) => forgetTransferHook?.(id),
    settleExecutor: (id: string) => executor.detach(id),
    admission,
    streamRequireGpu: opts.streamRequireGpu,
    // a start that omits an edge's `holds`: ask the edge (/v1/have); a plain HTTP server that does not answer holds all
    edgeHoldings: (edgeUrl, manifestId, chunks) =>
      askHoldings(edgeUrl, manifestId, chunks, {
        onFallback: (err) =>
          logger.info({ reason: err.message }, 'edge did not answer /v1/have: taken as holding every chunk'),
      }),
    // --backend cpu: nothing on this host loads the webgpu module (Dawn) or requests an adapter, streams included
    gpuOff: opts.backend === 'cpu',
    ...(streamTransport ? { streamTransport } : {}),
  };

  let host: ActorHost;
  let appPort = opts.appPort;
  let closeExtra: () => Promise<void>;
  if (opts.runtime === 'dapr') {
    const d = opts.dapr;
    if (!d) throw new PortalError('PORTAL_CONFIG_INVALID', "runtime 'dapr' needs its dapr settings");
    const dapr = createDaprHost({
      appPort: opts.appPort,
      daprHost: d.daprHost,
      daprHttpPort: d.daprHttpPort,
      daprApiToken: d.daprApiToken,
      appApiToken: d.appApiToken,
      // only the methods in actors/api externalMethods answer calls without the cluster's internal token
      externalMethod: isExternalMethod,
      // and of those, an argument only the cluster may send (GpuStreamActor.start's edgeIds) is refused too
      externalCall: checkExternalCall,
      internalToken:
        opts.internalToken ??
        (d.appApiToken
          ? createHash('sha256').update(`portal-internal-call:${d.appApiToken}`).digest('base64url')
          : undefined),
      actorIdleTimeout: d.actorIdleTimeout,
      actorScanInterval: d.actorScanInterval,
      drainOngoingCallTimeout: d.drainOngoingCallTimeout,
      drainTimeoutMs: opts.drainTimeoutMs,
      busHealth,
      localTurns: d.localTurns,
      services,
      logger,
      callTimeoutMs: 120_000,
      checkCall: actorApiContract().checkRequest,
    });
    host = dapr;
    for (const cls of [SchedulerActor, EdgeActor, GpuWorkerActor, GpuStreamActor, CoordinatorActor])
      dapr.register(cls);
    if (opts.testActors) dapr.register(ProbeActor);
    await dapr.start();
    closeExtra = async () => {};
  } else {
    const store = opts.stateDir
      ? createFileStateStore(path.resolve(opts.stateDir), { groupCommit: true })
      : createMemoryStateStore();
    const embedded = createEmbeddedHost({
      store: createRoutedStateStore({}, store),
      services,
      logger,
      callTimeoutMs: 120_000,
      drainTimeoutMs: opts.drainTimeoutMs,
      idleTimeoutMs: opts.idleTimeoutMs,
      idleScanMs: opts.idleScanMs,
    });
    for (const cls of [SchedulerActor, EdgeActor, GpuWorkerActor, GpuStreamActor, CoordinatorActor])
      embedded.register(cls);
    if (opts.testActors) embedded.register(ProbeActor);
    await embedded.ready().catch((err: unknown) => {
      throw corruptStateRemedy(err, opts.stateDir);
    });
    await recoverTransfers(embedded, admission, logger);
    host = embedded;
    const classes = new Map<string, ActorClass>(
      [SchedulerActor, EdgeActor, GpuWorkerActor, GpuStreamActor, CoordinatorActor, ProbeActor].map((c) => [
        c.name,
        c as ActorClass,
      ]),
    );
    const api = await serveActorApi(embedded, {
      port: opts.appPort,
      hostname: opts.apiHost,
      token: opts.apiToken,
      maxBodyBytes: opts.maxBodyBytes,
      hasMethod: (type, method) => {
        const cls = classes.get(type);
        return cls !== undefined && isInvocableMethod(cls, method);
      },
      log: logger,
      verifiedChunks: services.verifiedChunks,
      transfers: transferIndex,
      busHealth,
    });
    appPort = (api.address() as AddressInfo).port;
    closeExtra = async () => {
      await new Promise<void>((r) => {
        api.close(() => r());
        api.closeAllConnections(); // the host has answered every call by now (or released it at the drain timeout)
      });
      await store.close();
    };
  }
  await coordinator.start(host);
  const edgeEvents = routeEdgeEvents(bus0, host, logger.child({ component: 'edge-events' }), {
    maxEdges: opts.maxEdges,
    onAnnounce: (id, cfg) => replicas.noteEdge(id, cfg),
    realUrls: announcedEdgeUrls,
  });
  // pre-position tasks from other services: one instance of the queue group starts each
  const prePositions = bus0.subscribe<PrePositionTaskMessage>(
    subjects.allPrePositions,
    async (msg) => {
      try {
        const req = msg.request as unknown as TransferRequest;
        await actorProxy(host, 'SchedulerActor', msg.taskId).invoke('start', req);
        logger.info({ taskId: msg.taskId }, 'pre-position task started');
      } catch (err) {
        logger.warn({ err, taskId: msg.taskId }, 'pre-position task refused');
      }
    },
    { queue: 'portal-preposition' },
  );
  // the transfers this instance hosts (Dapr places actors across instances): every row of the index GET
  // /v1/transfers lists, so a transfer that left the queue without running (cancelled or forgotten while queued,
  // failed at admission) is shown as the API lists it; `transfers` (the registry) holds only those that ran
  const dash =
    opts.dashboardPort !== undefined
      ? await createDashboard({
          host,
          transfers: () => {
            const waiting = new Set(admission.queuedIds());
            // (a row still queued but out of the queue is being admitted: its status would say queued, and it is
            // polled once it runs, as before)
            const ids = transferIndex
              .listedIds()
              .filter((id) => !waiting.has(id) && transferIndex.stateOf(id) !== 'queued');
            // a transfer running here always has its row; the registry is kept as a second source regardless
            for (const id of transfers) if (!waiting.has(id)) ids.push(id);
            return ids;
          },
          // queued transfers have no scheduler yet: listed and counted, not polled
          queued: () => admission.queuedIds(),
          // a finished transfer is polled again only when its row changes (a start, restart, activation)
          revision: (id) => transferIndex.revision(id),
          logger, // createDashboard binds component: dashboard itself
          port: opts.dashboardPort,
          hostname: opts.dashboardHost ?? '127.0.0.1',
          engineStats: () => engine.stats(),
        })
      : undefined;
  if (dash) {
    registerStreamMetrics(dash.metrics, gpuStreamMetricsSource);
    for (const [code, n] of earlyDeadLetters) dash.recordDeadLetter(code, n);
    recordDeadLetter = (code) => dash.recordDeadLetter(code);
    forgetTransferHook = (id) => dash.forgetTransfer(id);
  }
  dash?.registerMetricsSource(() => {
    const e = edgeEvents.stats();
    const a = admission.stats();
    return [
      {
        name: 'portal_transfers',
        help: 'Transfers this process admitted, by state: running (holding a slot) or queued (waiting for one)',
        type: 'gauge',
        value: a.running,
        labels: { state: 'running' },
      },
      {
        name: 'portal_transfers',
        help: 'Transfers this process admitted, by state: running (holding a slot) or queued (waiting for one)',
        type: 'gauge',
        value: a.queued,
        labels: { state: 'queued' },
      },
      {
        name: 'portal_transfers_max_running',
        help: 'Running slots (--max-running)',
        type: 'gauge',
        value: a.maxRunning,
      },
      {
        name: 'portal_transfers_max_queued',
        help: 'Queue places (--max-queued)',
        type: 'gauge',
        value: a.maxQueued,
      },
      {
        name: 'portal_transfers_rejected_total',
        help: 'Starts refused with PORTAL_OVERLOADED (every slot and queue place taken)',
        type: 'counter',
        value: a.rejected,
      },
      {
        name: 'portal_transfers_promoted_total',
        help: 'Queued transfers given a running slot',
        type: 'counter',
        value: a.promoted,
      },
      {
        name: 'portal_edges_tracked',
        help: 'Edges the edge-event bridge tracks',
        type: 'gauge',
        value: e.edges,
      },
      {
        name: 'portal_edges_max',
        help: 'Cap on tracked edges (--max-edges)',
        type: 'gauge',
        value: e.maxEdges,
      },
      {
        name: 'portal_edge_events_dropped_total',
        help: 'Edge events dropped because their edge came past the tracked-edge cap',
        type: 'counter',
        value: e.droppedEvents,
      },
      {
        name: 'portal_edge_announcements_refused_total',
        help: 'Edge announcements refused: another URL or kind for an edge a running transfer fetches from',
        type: 'counter',
        value: e.refusedAnnouncements,
      },
      {
        name: 'portal_edge_events_unknown_total',
        help: 'Edge events nothing here took (a heartbeat of an edge never announced and in no transfer)',
        type: 'counter',
        value: e.unknownEvents,
      },
      {
        name: 'portal_edges_evicted_total',
        help: 'Tracked edges with no evidence (only unknown events) that gave their slot to a new edge at the cap',
        type: 'counter',
        value: e.evicted,
      },
      ...busPublishSamples(bus0),
    ];
  });
  return {
    host,
    appPort,
    engine,
    dashboardUrl: dash?.url,
    coordinator,
    admission,
    threads: { data: executor.stats().dataThreads, hash: await hashThread },
    async close() {
      await dash?.close();
      coordinator.close();
      edgeEvents.close();
      prePositions.unsubscribe();
      await executor.close();
      await host.stop();
      await streamTransport?.close();
      await closeExtra();
      await bus.close();
      await engine.close();
      await stateLock?.release();
      process.removeListener('exit', releaseOnExit);
    },
  };
}

/**
 * The NATS bus's bound on JetStream publishes waiting for the server (nats-bus maxPendingPublishes): what waits now
 * and what was dropped at the bound; nothing for the in-process bus.
 */
function busPublishSamples(bus: Bus): MetricSample[] {
  if (!('stats' in bus) || typeof bus.stats !== 'function') return [];
  const s = (bus as NatsBus).stats();
  return [
    {
      name: 'portal_bus_publishes_pending',
      help: 'JetStream publishes waiting for NATS to store them (in flight or retrying while it is away)',
      type: 'gauge',
      value: s.publishesPending,
    },
    {
      name: 'portal_bus_publish_bytes_pending',
      help: 'Payload bytes of the JetStream publishes waiting for NATS',
      type: 'gauge',
      value: s.publishBytesPending,
    },
    {
      name: 'portal_bus_publishes_dropped_total',
      help: 'JetStream publishes dropped because those waiting for NATS were at their bound (PORTAL_NATS_MAX_PENDING_PUBLISHES, _BYTES)',
      type: 'counter',
      value: s.publishesDropped,
    },
    {
      name: 'portal_bus_publish_bytes_dropped_total',
      help: 'Payload bytes of the JetStream publishes dropped at the bound',
      type: 'counter',
      value: s.publishBytesDropped,
    },
  ];
}

/** Transfer actors activated at once while a host recovers its transfers (recoverTransfers). */
const RECOVERY_CONCURRENCY = 8;

/**
 * Activates, before the host takes calls, every SchedulerActor that holds a reminder (those that were running or
 * queued when the host stopped: a crash, a SIGKILL, a restart with `--state-dir`): each re-establishes its output
 * claim (a start of another transfer on its output is refused, not accepted and the older transfer failed when next
 * touched), a running one resumes, and a queued one is listed and queued again. The admission queue is held meanwhile
 * (TransferAdmission.hold), so the queued ones are put back in the order they were first queued whatever the order of
 * their activations, and the oldest take the free slots once all are known. A transfer whose activation fails is
 * logged (its reminder tries again later). At most RECOVERY_CONCURRENCY activations run at once.
 */
async function recoverTransfers(
  host: EmbeddedHost,
  admission: TransferAdmission,
  logger: Logger,
): Promise<void> {
  admission.hold();
  let recovered = 0;
  try {
    const ids = await host.remindedActors('SchedulerActor');
    await forEachLimited(ids, RECOVERY_CONCURRENCY, async (id) => {
      try {
        await actorProxy(host, 'SchedulerActor', id).invoke('status');
        recovered++;
      } catch (err) {
        if (isPortalError(err) && err.code === 'PORTAL_UNKNOWN_TRANSFER') return;
        logger.warn(
          { err, transferId: id },
          'a transfer could not be recovered at start-up; its reminder tries again',
        );
      }
    });
  } finally {
    admission.open();
  }
  if (recovered > 0) logger.info({ transfers: recovered }, 'transfers recovered from the state folder');
}

/**
 * A state file of `--state-dir` that cannot be read (PORTAL_STATE_CORRUPT, naming the file) with the way out: that
 * file holds one actor's state, and removing it loses only that (a transfer it held becomes unknown and can be started
 * again; its partial file stays). Other errors are answered as they are.
 */
function corruptStateRemedy(err: unknown, stateDir: string | undefined): unknown {
  if (!isPortalError(err) || err.code !== 'PORTAL_STATE_CORRUPT' || stateDir === undefined) return err;
  return new PortalError(
    'PORTAL_STATE_CORRUPT',
    `--state-dir ${path.resolve(stateDir)}: ${err.message}; it holds the state of one actor: remove that file to discard it (a transfer it held becomes unknown and can be started again) and start serve again`,
    { cause: err },
  );
}
