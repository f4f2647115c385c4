export { ChunkStatus, EdgeFlags, NO_EDGE, INF_RANK, MAX_EDGES, defaultSchedulerConfig } from './types.js';
export type { ChunkStatusCode, CostWeights, SchedulerConfig } from './types.js';
export { createChunkTable, createEdgeTable, hasCandidate, setCandidate, candidatesEmpty } from './tables.js';
export type { ChunkTable, EdgeTable } from './tables.js';
export { rankEdges, expectedTimeMs, edgeUsable } from './kernels/cost.js';
export type { EdgeRanking } from './kernels/cost.js';
export { rankChunk, rankChunks } from './kernels/k-best.js';
export { detectFailures, failoverAssign, FailureCause, FailoverOutcome } from './kernels/failures.js';
export type { FailoverCounts } from './kernels/failures.js';
export { loadBalance, generateDispatch, spillEdge } from './kernels/dispatch.js';
export type { ScanOrder } from './kernels/dispatch.js';
export { RANK_WINDOW } from './scheduler.js';
export { ChunkScheduler, zeroCounters } from './scheduler.js';
export type {
  RankPhase,
  TickHooks,
  TransferShape,
  EdgeUpdate,
  Dispatch,
  Cancel,
  TickResult,
  ReportOutcome,
  ReportInput,
  SchedulerCounters,
} from './scheduler.js';
export {
  EdgeEstimator,
  defaultEstimatorConfig,
  adaptiveTimeoutMs,
  defaultTimeoutBounds,
} from './estimators.js';
export type { EstimatorConfig, EdgeEstimate, EdgeEstimatorState, TimeoutBounds } from './estimators.js';
export { rankChunkRange, buildRankLut } from './kernels/k-best.js';
export type { RankLut, RankTable } from './kernels/k-best.js';
export type { ChunkTableOptions } from './tables.js';
export { AccessTracker, ChunkPriority, readAheadChunks } from './access.js';
export type { ReadPlan } from './access.js';
export { SwarmSelection } from './swarm-selection.js';
