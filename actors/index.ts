export { SchedulerActor, terminalStates } from './scheduler-actor.js';
export { readPagedJournal, JournalPages, BITMAP_PAGE_BYTES, bitmapPageKey } from './journal-pages.js';
export type { PagedJournal } from './journal-pages.js';
export { EdgeActor } from './edge-actor.js';
export type { EdgeProber, EdgeServices } from './edge-actor.js';
export type { SchedulerServices } from './scheduler-actor.js';
export type { TickEngineServices } from './gpu-worker-actor.js';
export type { StreamServices } from './gpu-stream-actor.js';
export type { CoordinatorServices } from './coordinator-actor.js';
export type { PortalServices } from './services.js';
export { actorProxy, checkExternalCall, externalMethods, isExternalMethod } from './api.js';
export type {
  ActorRefSource,
  PortalActorTypes,
  SchedulerActorApi,
  EdgeActorApi,
  GpuWorkerActorApi,
  GpuStreamActorApi,
  CoordinatorActorApi,
} from './api.js';
export { GpuWorkerActor, engineOf } from './gpu-worker-actor.js';
export type {
  EdgeConfig,
  EdgeView,
  EdgeSample,
  EdgeTelemetry,
  TransferEdge,
  TransferRequest,
  ChecksumOrigin,
  PrePosition,
  TransferStatus,
  SourceFailure,
} from './types.js';
export { routeEdgeEvents } from './edge-event-router.js';
export { CoordinatorActor } from './coordinator-actor.js';
export { GpuStreamActor, gpuStreamMetricsSource } from './gpu-stream-actor.js';
export { transferContentSource, createVerifiedChunkEvents } from './content-source.js';
export { EdgeUsageBoard } from './edge-usage.js';
export {
  TransferIndex,
  TRANSFER_STATES,
  MAX_LIST_LIMIT,
  DEFAULT_LIST_LIMIT,
  parseListStates,
  type TransferState,
  type TransferListEntry,
  type TransferListPage,
  type TransferIndexRow,
} from './transfer-index.js';
export { ReplicaPlacer, type ReadAt, type PlacementOutcome } from './replica-placement.js';
export {
  TransferAdmission,
  defaultMaxRunning,
  defaultMaxQueued,
  type Admission,
  type TransferAdmissionOptions,
  type TransferAdmissionStats,
} from './transfer-admission.js';
export type { EdgeUse } from './edge-usage.js';
export type {
  CoordPolicy,
  CoordPeer,
  CoordTask,
  CoordTaskState,
  CoordSnapshot,
  PeerDispatch,
  PeerAnswer,
  PeerTransport,
  TaskOutcome,
  PeerReport,
  PeerTelemetryReport,
} from './coordinator-types.js';
