export { createMemoryBus, subjectMatches } from './memory-bus.js';
export { subjects } from './types.js';
export type { Bus, Subscription, EdgeKind, DispatchItem, DispatchBatch, FailureReason, ChunkReport, CancelRequest } from './types.js';
