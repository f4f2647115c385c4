export { createMemoryBus, subjectMatches } from './memory-bus.js';
export { subjects } from './types.js';
export type {
  Bus, Subscription, EdgeKind, DispatchItem, DispatchBatch, FailureReason, ChunkReport, CancelRequest,
  EdgeBattery, EdgeTelemetryEvent, EdgeHaveEvent, TransferCommand, TransferCommandEdge, TransferStateName, TransferStatusEvent, DeadLetterEvent,
} from './types.js';
export { createCodecRegistry, isJetStreamPattern, wire, DEFAULT_MAX_BYTES, DEAD_LETTER_PAYLOAD_BYTES } from './codec.js';
export type { CodecRegistry, WireCodec, WireKind, WireLimits } from './codec.js';
export { createEdgeEventBridge } from './edge-events.js';
export type { EdgeEventBridge, EdgeEventHandlers, EdgeHaveState } from './edge-events.js';
export { createAllTransfersBus } from './transfer-router.js';
export type { AllTransfersBus } from './transfer-router.js';
export { createBusFromEnv, createNatsBus, natsOptionsFromEnv, NATS_ENV } from './from-env.js';
export { TRANSFERS_STREAM, DEAD_LETTER_STREAM, durableName } from './nats-bus-names.js';
export type { NatsBus, NatsBusOptions, NatsBusStats, NatsStreamOptions } from './nats-bus.js';
