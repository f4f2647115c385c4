export { createMemoryBus, subjectMatches } from './memory-bus.js';
export { subjects, subjectToken, subjectTokenId } from './types.js';
export type { Bus, Subscription, DeadLetterEvent, PrePositionTaskMessage } from './types.js';
export {
  createCodecRegistry,
  isJetStreamPattern,
  jetStreamOf,
  wire,
  DEFAULT_MAX_BYTES,
  DEAD_LETTER_PAYLOAD_BYTES,
} from './codec.js';
export type { CodecRegistry, WireCodec, WireKind, WireLimits } from './codec.js';
export { createEdgeEventBridge, DEFAULT_MAX_EDGES } from './edge-events.js';
export type {
  EdgeEventBridge,
  EdgeEventBridgeStats,
  EdgeEventHandlers,
  EdgeHaveState,
} from './edge-events.js';
export { createAllTransfersBus } from './transfer-router.js';
export type { AllTransfersBus } from './transfer-router.js';
export { createBusFromEnv, createNatsBus, natsOptionsFromEnv, NATS_ENV } from './from-env.js';
export {
  DISPATCH_KEY_ENV,
  dispatchKeyFromEnv,
  guardDispatchSecrets,
  openSealed,
  parseDispatchKey,
  sealSecret,
  unresolvedCredentialsDetail,
} from './dispatch-seal.js';
export type { DispatchGuardOptions } from './dispatch-seal.js';
export { TRANSFERS_STREAM, DEAD_LETTER_STREAM, COORD_STREAM, durableName } from './nats-bus-names.js';
export type {
  PausablePullClient,
  PullGate,
  PulledMessage,
  PullConsumer,
  PullConsumerOptions,
  PullConsumerStats,
} from './types.js';
export type { JetStreamPullClientOptions } from './jetstream-pull.js';

/**
 * Connects a pausable pull client over one JetStream stream (see PausablePullClient), loading the NATS
 * client only when called. Rejects with PORTAL_BUS_UNAVAILABLE when NATS or JetStream cannot be reached.
 */
export async function createJetStreamPullClient(
  opts: import('./jetstream-pull.js').JetStreamPullClientOptions,
): Promise<import('./types.js').PausablePullClient> {
  const m = await import('./jetstream-pull.js');
  return m.createJetStreamPullClient(opts);
}
export type { NatsBus, NatsBusOptions, NatsBusStats, NatsStreamOptions } from './nats-bus.js';
export type { NatsConnectOptions } from './nats-connect.js';
export { createPeerDirectory, joinAsPeer } from './coord-peers.js';
export type {
  PeerDirectory,
  PeerDirectoryEvents,
  PeerAttempt,
  PeerAttemptAnswer,
  PeerAdvert,
  PeerTelemetryFields,
  BusPeer,
} from './coord-peers.js';
export type {
  PeerTaskMessage,
  PeerResultMessage,
  PeerHeartbeatMessage,
  SubmittedTaskMessage,
  CoordSubmitMessage,
  CoordOutcomeMessage,
} from './types.js';
