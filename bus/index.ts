export { createMemoryBus, subjectMatches } from './memory-bus.js';
export { subjects } from './types.js';
export type { Bus, Subscription, DeadLetterEvent } from './types.js';
export {
  createCodecRegistry,
  isJetStreamPattern,
  wire,
  DEFAULT_MAX_BYTES,
  DEAD_LETTER_PAYLOAD_BYTES,
} from './codec.js';
export type { CodecRegistry, WireCodec, WireKind, WireLimits } from './codec.js';
export { createEdgeEventBridge } from './edge-events.js';
export type { EdgeEventBridge, EdgeEventHandlers, EdgeHaveState } from './edge-events.js';
export { createAllTransfersBus } from './transfer-router.js';
export type { AllTransfersBus } from './transfer-router.js';
export { createBusFromEnv, createNatsBus, natsOptionsFromEnv, NATS_ENV } from './from-env.js';
export { TRANSFERS_STREAM, DEAD_LETTER_STREAM, STREAM_STREAM, durableName } from './nats-bus-names.js';
export type {
  NatsStreamTransport,
  NatsStreamTransportOptions,
  NatsStreamSource,
  NatsSourceStats,
  AttachOptions,
} from './nats-stream-transport.js';

/**
 * Connects the JetStream transport of GpuStreamActors (raw record batches on `portal.stream.<id>.*`,
 * pausable pull consumers), loading the NATS client only when called.
 */
export async function createNatsStreamTransport(
  opts: import('./nats-stream-transport.js').NatsStreamTransportOptions,
): Promise<import('./nats-stream-transport.js').NatsStreamTransport> {
  const m = await import('./nats-stream-transport.js');
  return m.createNatsStreamTransport(opts);
}
export type { NatsBus, NatsBusOptions, NatsBusStats, NatsStreamOptions } from './nats-bus.js';
export type { NatsConnectOptions } from './nats-connect.js';
