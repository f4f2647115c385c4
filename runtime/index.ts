export { Actor, typedProxy } from './types.js';
export type {
  ActorContext,
  ActorStateManager,
  ActorRef,
  ActorProxy,
  ActorMethodName,
  ActorMethodArgs,
  ActorMethodResult,
  ActorServices,
  ActorClass,
  StateStore,
  ActorHost,
  ActorHostStats,
} from './types.js';
export { createMemoryStateStore } from './memory-state-store.js';
export { createFileStateStore, writeFileAtomic } from './file-state-store.js';
export type { FileStateStore, FileStateStoreOptions, FileStateStoreStats } from './file-state-store.js';
export { createEmbeddedHost } from './embedded-host.js';
export type { EmbeddedHost, EmbeddedHostOptions } from './embedded-host.js';
export {
  actorKeyPrefix,
  parseStateKey,
  KEY_SEPARATOR,
  REMINDERS_KEY,
  MAX_ACTOR_ID_BYTES,
  actorIdBytes,
  actorIdProblem,
  checkActorId,
  encodeActorId,
  decodeActorId,
  notWireIdError,
  splitIdHint,
  transferIdOfPathSegment,
} from './state-keys.js';
export type { ParsedStateKey } from './state-keys.js';
export { createRoutedStateStore } from './routed-state-store.js';
export { createDaprHost } from './dapr-host.js';
export type { DaprHost, DaprHostOptions } from './dapr-host.js';
export { createDaprActorClient } from './dapr-client.js';
export type { DaprActorClient, DaprActorClientOptions, DaprActorErrorBody } from './dapr-client.js';
export { watchDaprSidecar, SIDECAR_MARK } from './dapr-sidecar.js';
export type { DaprSidecarWatch, DaprSidecarWatchOptions } from './dapr-sidecar.js';
export { daprDefaults, daprFeatures } from './dapr-defaults.js';
export { ProbeActor } from './dapr-probe-actor.js';
export { errorEnvelope, httpStatusOf, parseCallBody } from './api-errors.js';
export type { ErrorEnvelope } from './api-errors.js';
