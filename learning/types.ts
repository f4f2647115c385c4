/** What a prediction is asked about: one task (or chunk) on one peer (or edge) under current conditions. */
export interface TaskContext {
  /** Peer or edge id. */
  peer: string;
  /** Task type ('render', 'physics', 'chunk', …). */
  taskType: string;
  /** Hour of day 0..23 (from the coordinator's clock). */
  hour: number;
  /** Tasks already in flight on the peer when this one is dispatched. */
  load: number;
  /** Work units of the task (pixels × iterations, bytes…); time is predicted per unit. Default 1. */
  work?: number;
  /** Resource pressure reported by the peer's telemetry, 0..1. Default 0. */
  pressure?: number;
}

/** One observed attempt: the context it ran in, whether it succeeded, and how long it took. */
export interface Observation extends TaskContext {
  ok: boolean;
  /** Measured completion time of the attempt, ms (for failures: time until the failure was known). */
  timeMs: number;
}

/** Where a prediction came from. */
export type PredictionSource = 'model' | 'prior' | 'heuristic';

/** A completion-time prediction with its confidence interval. */
export interface TimePrediction {
  /** Point estimate (geometric mean of the predictive distribution), ms. */
  timeMs: number;
  /** Lower and upper bound of the `level` confidence interval, ms. */
  lowMs: number;
  highMs: number;
  /** Confidence level of [lowMs, highMs] (e.g. 0.9). */
  level: number;
  /** Successful observations of this peer the model has. */
  samples: number;
  source: PredictionSource;
}

/** A failure-probability prediction. */
export interface FailurePrediction {
  probability: number;
  samples: number;
  source: PredictionSource;
}

/** Time, failure risk and the risk-adjusted score (time / (1 − p)) of a task on a peer. */
export interface RiskPrediction {
  time: TimePrediction;
  failure: FailurePrediction;
  /** predicted time / (1 − failure probability), ms: lower is better. */
  score: number;
}
