import {
  CompletionTimePredictor,
  type TimePredictorConfig,
  type TimePredictorState,
} from './time-predictor.js';
import {
  FailurePredictor,
  type FailurePredictorConfig,
  type FailurePredictorState,
} from './failure-predictor.js';
import { PortalError } from '../common/errors.js';
import type { Observation, RiskPrediction, TaskContext } from './types.js';

/** Serialized risk model (JSON-safe), for actor state. */
export interface RiskModelState {
  v: 1;
  time: TimePredictorState;
  failure: FailurePredictorState;
}

/** Options of the risk model. */
export interface RiskModelConfig {
  time?: Partial<TimePredictorConfig>;
  failure?: Partial<FailurePredictorConfig>;
}

/**
 * The heuristic a learned coordinator starts from and is compared with:
 * advertised latency + load × 15.
 */
export function heuristicScore(latencyHintMs: number, load: number): number {
  return latencyHintMs + load * 15;
}

/** time / (1 − p), with p clamped below 1 so the score stays finite. */
export function riskAdjusted(timeMs: number, failureProbability: number): number {
  return timeMs / (1 - Math.min(0.99, Math.max(0, failureProbability)));
}

/**
 * Both predictors behind one interface: every attempt's outcome feeds both (online), and a query
 * returns predicted time with its interval, failure probability and the risk-adjusted score
 * (time / (1 − failure probability)). Memory is bounded by the predictors' windows.
 */
export class RiskModel {
  readonly time: CompletionTimePredictor;
  readonly failure: FailurePredictor;

  constructor(
    config: RiskModelConfig = {},
    parts?: { time: CompletionTimePredictor; failure: FailurePredictor },
  ) {
    this.time = parts?.time ?? new CompletionTimePredictor(config.time);
    this.failure = parts?.failure ?? new FailurePredictor(config.failure);
  }

  /** True once the warm-up (seed: 20 tasks) is over; before, callers schedule by their heuristic. */
  get warm(): boolean {
    return this.time.warm;
  }

  /** Learns from one attempt (success or failure). */
  observe(o: Observation): void {
    this.time.observe(o);
    this.failure.observe(o);
  }

  /** Predicted time, failure probability and risk-adjusted score of a task on a peer. */
  predict(q: TaskContext): RiskPrediction {
    const time = this.time.predict(q);
    const failure = this.failure.predict(q);
    return { time, failure, score: riskAdjusted(time.timeMs, failure.probability) };
  }

  toJSON(): RiskModelState {
    return { v: 1, time: this.time.toJSON(), failure: this.failure.toJSON() };
  }

  /** Rebuilds a model from `toJSON()` output; PORTAL_STATE_CORRUPT when it is not one. */
  static fromJSON(s: RiskModelState, config: RiskModelConfig = {}): RiskModel {
    if (!s || s.v !== 1)
      throw new PortalError('PORTAL_STATE_CORRUPT', 'risk model state: expected { v: 1, time, failure }');
    return new RiskModel(config, {
      time: CompletionTimePredictor.fromJSON(s.time, config.time),
      failure: FailurePredictor.fromJSON(s.failure, config.failure),
    });
  }
}
