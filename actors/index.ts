export { SchedulerActor, terminalStates } from './scheduler-actor.js';
export { EdgeActor } from './edge-actor.js';
export type { EdgeProber } from './edge-actor.js';
export { GpuWorkerActor, engineOf } from './gpu-worker-actor.js';
export type {
  EdgeConfig,
  EdgeView,
  EdgeSample,
  EdgeTelemetry,
  TransferEdge,
  TransferRequest,
  TransferStatus,
} from './types.js';
export { routeEdgeEvents } from './edge-event-router.js';
export { CoordinatorActor } from './coordinator-actor.js';
export { GpuStreamActor, gpuStreamMetricsSource } from './gpu-stream-actor.js';
