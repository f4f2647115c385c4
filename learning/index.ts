export { CompletionTimePredictor, defaultTimePredictorConfig } from './time-predictor.js';
export type { TimePredictorConfig, TimePredictorState } from './time-predictor.js';
export { FailurePredictor, defaultFailurePredictorConfig } from './failure-predictor.js';
export type { FailurePredictorConfig, FailurePredictorState } from './failure-predictor.js';
export { RiskModel, heuristicScore, riskAdjusted } from './risk-model.js';
export type { RiskModelConfig, RiskModelState } from './risk-model.js';
export type {
  TaskContext,
  Observation,
  TimePrediction,
  FailurePrediction,
  RiskPrediction,
  PredictionSource,
} from './types.js';
export { learnedEdgeFactors } from './scheduler-adapter.js';
export type {
  EdgeLoadView,
  LearnedFactorOptions,
  LearnedEdgeFactors,
  EdgeFactorUpdate,
} from './scheduler-adapter.js';
export { splitSpatial, splitEqualArea, prefixSums, rectCost, imbalance } from './splitters/spatial.js';
export type { ComplexityMap, Tile, SpatialPeer, PlannedTile, PrefixSums } from './splitters/spatial.js';
export { assignByDeadline, gameFrameSubsystems } from './splitters/functional.js';
export type { Subsystem, SubsystemAssignment, FunctionalPlan, PredictMs } from './splitters/functional.js';
export { assignPipeline, renderPipelineStages } from './splitters/pipeline.js';
export type { Stage, StageAssignment, PipelinePlan } from './splitters/pipeline.js';
export { HybridSplitter, defaultStrategies } from './splitters/hybrid.js';
export type { SplitStrategy, SplitTask, SplitContext, SplitPlan } from './splitters/hybrid.js';
export { mergeTiles } from './splitters/merge.js';
export type { RenderedTile } from './splitters/merge.js';
