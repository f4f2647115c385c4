import type { ActorProxy, ActorRef } from '../runtime/types.js';
import { typedProxy } from '../runtime/types.js';
import { PortalError } from '../common/errors.js';
import type { ChunkReport } from '../common/index.js';
import type { TickEngineStats } from '../engine/index.js';
import type { EdgeEstimatorState } from '../scheduler/estimators.js';
import type { StreamProcessingMetrics } from '../stream/index.js';
import type { RiskModelState, SplitPlan, SplitTask } from '../learning/index.js';
import type {
  EdgeConfig,
  EdgeSample,
  EdgeTelemetry,
  EdgeView,
  TransferEdge,
  TransferRequest,
  TransferStatus,
  ContentReadRequest,
  ContentReadResult,
  ContentInfo,
} from './types.js';
import type {
  CoordPeer,
  CoordPolicy,
  CoordSnapshot,
  CoordTask,
  CoordTaskState,
  PeerRank,
  PeerReport,
  PeerTelemetryReport,
} from './coordinator-types.js';
import type { GpuStreamStartRequest, GpuStreamStatus } from './gpu-stream-types.js';

/*
 * Actor interfaces: what callers may invoke on each of Portal's actor types, written the way Orleans grain
 * interfaces are (each method takes at most one JSON argument and returns a promise). Each actor class
 * `implements` its interface, so the compiler checks the class against it; callers reach an actor through
 * `actorProxy(host, 'EdgeActor', id)`, which checks the method name, the argument and the result.
 */

/** The calls SchedulerActor answers (one actor per transfer; the id is the transfer id). */
export interface SchedulerActorApi {
  /**
   * Starts or resumes the transfer; idempotent for the same request (another one: PORTAL_TRANSFER_CONFLICT). The first start after a reactivation that
   * resumed it from its journal sets its sources: new edges join, those no longer named are dropped.
   */
  start(req: TransferRequest): Promise<TransferStatus>;
  /** Applies a batch of executor reports. */
  reports(arg: { items: ChunkReport[] }): Promise<{ applied: number; ignored: number }>;
  /** One scheduler tick (the tick timer's callback). */
  tick(): Promise<void>;
  /** Where the transfer stands: a summary, and with `{ edges: true }` every edge's view as well. */
  status(arg?: { edges?: boolean }): Promise<TransferStatus>;
  /** The host's admission control gave this queued transfer a running slot: it starts now. */
  admit(): Promise<TransferStatus>;
  /** Availability an edge announced for the transfer's manifest; the edge's index, or -1. */
  edgeHave(arg: { edgeId: string; manifestId: string; bitmap: string }): Promise<{ edgeIndex: number }>;
  /** Sources that join the running transfer (a mirror whose probe answered late); the ids that joined. */
  joinSources(arg: { edges: TransferEdge[] }): Promise<{ joined: string[] }>;
  /** Stops the transfer (state cancelled), keeping the journal. */
  cancel(): Promise<TransferStatus>;
  /**
   * A read of the transfer's content (streaming reads): which chunks of the byte range are
   * verified now; the missing ones are raised to DEMAND priority, and a sequential reader's next chunks
   * to READ_AHEAD.
   */
  read(arg: ContentReadRequest): Promise<ContentReadResult>;
  /** What a content server needs to serve the transfer's bytes: the manifest, the output file, the state. */
  contentInfo(): Promise<ContentInfo>;
  /** Runs a failed or cancelled transfer again from its journal. */
  restart(): Promise<TransferStatus>;
  /** Removes the transfer's state and metric series; the id is unknown afterwards. */
  forget(): Promise<{ transferId: string; forgotten: true }>;
  /**
   * Releases edge `edgeId` for this transfer when it has ended (done, failed, cancelled) or is unknown; answers
   * whether it did. Asked by another transfer whose claim of that edge was refused naming this one.
   */
  releaseEdgeIfEnded(arg: { edgeId: string }): Promise<{ released: boolean }>;
}

/** The calls EdgeActor answers (one actor per edge; the id is the edge id). */
export interface EdgeActorApi {
  configure(cfg: EdgeConfig): Promise<EdgeView>;
  /**
   * A transfer uses the edge as `config`: configures it and counts the transfer until `release`; 409
   * PORTAL_TRANSFER_CONFLICT when another transfer uses it with another URL or kind.
   */
  claim(arg: { transferId: string; config: EdgeConfig }): Promise<EdgeView>;
  /** What claim would answer (the 409 included), without configuring or counting anything. */
  checkClaim(arg: { transferId: string; config: EdgeConfig }): Promise<{ ok: true }>;
  /** The transfer no longer uses the edge (it ended, or its start failed). */
  release(arg: { transferId: string }): Promise<{ users: number }>;
  /** The ids of the transfers counted as the edge's users (claim … release). */
  listUsers(): Promise<{ users: string[] }>;
  observe(arg: { samples: EdgeSample[] }): Promise<EdgeView>;
  telemetry(t: EdgeTelemetry): Promise<EdgeView>;
  snapshot(): Promise<EdgeView>;
  /** The estimator state, for a scheduler's journal (warm start after a restart). */
  estimates(): Promise<EdgeEstimatorState>;
  /** Adopts journaled estimates when the actor has learned nothing of its own yet. */
  warmStart(arg: { estimates: EdgeEstimatorState }): Promise<EdgeView>;
  /** The probe timer's callback: asks an offline edge whether it is back. */
  probe(): Promise<void>;
  /** The hold-off timer's callback: a busy edge is scheduled again. */
  holdOver(): Promise<void>;
}

/** The calls GpuWorkerActor answers (one per host process). */
export interface GpuWorkerActorApi {
  /** Backend and counters of the host's tick engine. */
  describe(): Promise<TickEngineStats>;
}

/** The calls GpuStreamActor answers (one per stream; the id is the stream id). */
export interface GpuStreamActorApi {
  start(req: GpuStreamStartRequest): Promise<GpuStreamStatus>;
  push(arg: { records: string | Uint8Array }): Promise<{ accepted: number }>;
  drain(): Promise<StreamProcessingMetrics>;
  metrics(): Promise<StreamProcessingMetrics>;
  status(): Promise<GpuStreamStatus>;
  stop(): Promise<StreamProcessingMetrics>;
}

/** The calls CoordinatorActor answers (one per coordinated workload). */
export interface CoordinatorActorApi {
  configure(arg: { policy?: CoordPolicy; maxAttempts?: number }): Promise<CoordSnapshot>;
  registerPeer(p: CoordPeer): Promise<CoordSnapshot>;
  peerGone(arg: { id: string; reason?: string }): Promise<CoordSnapshot>;
  peerTelemetry(arg: PeerTelemetryReport): Promise<{ known: boolean }>;
  outcome(arg: { taskId: string }): Promise<CoordTaskState>;
  submit(arg: { tasks: CoordTask[] }): Promise<{ queued: number; inFlight: number }>;
  report(r: PeerReport): Promise<{ outcome: 'completed' | 'retrying' | 'failed' | 'stale' }>;
  rankPeers(arg: { type: string; work?: number }): Promise<PeerRank[]>;
  split(arg: { task: SplitTask; peers?: number }): Promise<SplitPlan>;
  snapshot(): Promise<CoordSnapshot>;
  exportModel(): Promise<RiskModelState>;
}

/** Portal's actor types by the name they are registered under, each with its interface. */
export interface PortalActorTypes {
  SchedulerActor: SchedulerActorApi;
  EdgeActor: EdgeActorApi;
  GpuWorkerActor: GpuWorkerActorApi;
  GpuStreamActor: GpuStreamActorApi;
  CoordinatorActor: CoordinatorActorApi;
}

/** Anything that hands out actor references: an ActorHost, or an actor's own context (`ctx`). */
export interface ActorRefSource {
  proxy(actorType: string, actorId: string): ActorRef;
}

/**
 * A typed proxy to the Portal actor `actorType`/`actorId`: `actorProxy(host, 'SchedulerActor', id).invoke('status')`
 * resolves to a TransferStatus, and a wrong method name or argument is a compile error.
 */
export function actorProxy<T extends keyof PortalActorTypes>(
  from: ActorRefSource,
  actorType: T,
  actorId: string,
): ActorProxy<PortalActorTypes[T]> {
  return typedProxy<PortalActorTypes[T]>(from.proxy(actorType, actorId));
}

/** A client that invokes actors by type and id (the Dapr actor client: `createDaprActorClient`). */
export interface ActorInvoker {
  invoke(actorType: string, actorId: string, method: string, arg?: unknown): Promise<unknown>;
}

/**
 * An ActorRefSource over a client of a host's actor API (e.g. a DaprActorClient talking to a sidecar), so that
 * `actorProxy(refsOf(client), 'SchedulerActor', id)` types calls made from outside the cluster as well.
 */
export function refsOf(client: ActorInvoker): ActorRefSource {
  return {
    proxy: (actorType, actorId) => ({
      actorType,
      actorId,
      invoke: (method, arg) => client.invoke(actorType, actorId, method, arg),
    }),
  };
}

/**
 * The methods callers outside a host may invoke, per actor type (the embedded HTTP actor API and, on the
 * Dapr host, calls that do not carry the cluster's internal-call token). Everything else — report
 * application, timer and reminder callbacks, edge feedback — is for the actors themselves: SchedulerActor's
 * `reports`, `tick` and `edgeHave`, EdgeActor's `configure`, `claim`, `checkClaim`, `release`, `observe`, `telemetry`, `probe`, `holdOver`.
 * ProbeActor (registered only for the Dapr test suites, PORTAL_TEST_ACTORS=1) is open.
 */
export const externalMethods: Readonly<Record<string, readonly string[] | '*'>> = {
  SchedulerActor: ['start', 'status', 'cancel', 'restart', 'forget'],
  EdgeActor: ['snapshot'],
  GpuWorkerActor: ['describe'],
  GpuStreamActor: ['start', 'push', 'drain', 'metrics', 'status', 'stop'],
  CoordinatorActor: [
    'configure',
    'registerPeer',
    'peerGone',
    'peerTelemetry',
    'submit',
    'outcome',
    'report',
    'rankPeers',
    'split',
    'snapshot',
    'exportModel',
  ],
  ProbeActor: '*',
};

/**
 * Refuses a call from outside the host to an external method whose argument asks for what only the host's own actors
 * may do: a GpuStreamActor.start whose edge-telemetry kernel names `edgeIds` (the stream would call EdgeActor.observe
 * for the edges the caller named, and observe is internal: an edge's estimates and health come only from Portal's
 * own fetches, its bus and its actors). Both actor APIs (node/actor-api.ts; the Dapr host for calls without the
 * internal-call token) call it after `isExternalMethod`. Returns when the call may go on; throws PortalError
 * PORTAL_ACTOR_METHOD_FORBIDDEN (403) naming the field otherwise.
 */
export function checkExternalCall(actorType: string, method: string, arg: unknown): void {
  if (actorType !== 'GpuStreamActor' || method !== 'start') return;
  const kernel = (arg as { kernel?: unknown } | null | undefined)?.kernel;
  if (kernel === null || typeof kernel !== 'object' || !('edgeIds' in kernel)) return;
  throw new PortalError(
    'PORTAL_ACTOR_METHOD_FORBIDDEN',
    "GpuStreamActor.start: kernel.edgeIds is not accepted from outside the cluster: the stream would feed EdgeActor.observe, which only Portal's own actors may call (start the stream without edgeIds to get its aggregates on portal.stream.<id>.out)",
  );
}

/** True when `method` of `actorType` may be called from outside the host (externalMethods); false for unknown types. */
export function isExternalMethod(actorType: string, method: string): boolean {
  const list = Object.hasOwn(externalMethods, actorType) ? externalMethods[actorType] : undefined;
  return list === '*' || (list !== undefined && list.includes(method));
}
