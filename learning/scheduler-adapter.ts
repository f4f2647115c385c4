import { checkArg } from '../common/errors.js';
import type { RiskModel } from './risk-model.js';

/** The parts of the scheduler's EdgeTable the adapter reads (structurally compatible with it). */
export interface EdgeLoadView {
  readonly e: number;
  readonly available: ArrayLike<number>;
  readonly queueDepth: ArrayLike<number>;
}

/** Options of learnedEdgeFactors. */
export interface LearnedFactorOptions {
  /** Peer id the model knows edge `e` by (default `edge-${e}`). */
  edgeId?: (e: number) => string;
  /** Task type of a chunk fetch (default 'chunk'). */
  taskType?: string;
  /** Hour of day at `now` (default: UTC hour of `now` taken as epoch ms). */
  hourOf?: (now: number) => number;
  /** Put the risk-adjusted time (time / (1 − p)) into the time factor too (default false). */
  riskAdjustedTime?: boolean;
}

/** Per-edge learned factors, and the same as an EdgeUpdate the scheduler's `updateEdge` takes. */
export interface LearnedEdgeFactors {
  /** Predicted ms for one chunk at the edge's current queue depth (NaN for unavailable edges). */
  readonly timeMs: Float64Array;
  /** Predicted failure probability of the next attempt on the edge. */
  readonly failureProb: Float64Array;
  /**
   * `{ bandwidth, rtt: 0, health }` per available edge (undefined otherwise): bandwidth chosen so that
   * the cost model's chunkBytes / bandwidth + rtt equals the learned time, health = 1 − p so that its
   * health factor is the learned risk.
   */
  readonly updates: ReadonlyArray<{ bandwidth: number; rtt: number; health: number } | undefined>;
}

/**
 * Adapts a RiskModel to the chunk scheduler's cost model (seed 000 §4.1): for every available edge,
 * the learned completion time of one `chunkBytes` chunk at its current queue depth and hour of day
 * replaces the formula's size / bandwidth + RTT, and the learned failure probability replaces
 * 1 − health. Pure; throws PORTAL_INVALID_ARGUMENT on a bad chunk size.
 */
export function learnedEdgeFactors(model: RiskModel, edges: EdgeLoadView, chunkBytes: number, now: number, opts: LearnedFactorOptions = {}): LearnedEdgeFactors {
  checkArg(Number.isFinite(chunkBytes) && chunkBytes > 0, 'chunkBytes', 'a positive number');
  const idOf = opts.edgeId ?? ((e: number) => `edge-${e}`);
  const taskType = opts.taskType ?? 'chunk';
  const hour = (opts.hourOf ?? ((t: number) => new Date(t).getUTCHours()))(now);
  const timeMs = new Float64Array(edges.e).fill(NaN);
  const failureProb = new Float64Array(edges.e).fill(NaN);
  const updates: Array<{ bandwidth: number; rtt: number; health: number } | undefined> = new Array(edges.e).fill(undefined);
  for (let e = 0; e < edges.e; e++) {
    if (edges.available[e] !== 1) continue;
    const r = model.predict({ peer: idOf(e), taskType, hour, load: edges.queueDepth[e], work: chunkBytes });
    const t = opts.riskAdjustedTime ? r.score : r.time.timeMs;
    timeMs[e] = t;
    failureProb[e] = r.failure.probability;
    updates[e] = { bandwidth: (chunkBytes * 1000) / Math.max(t, 1e-3), rtt: 0, health: 1 - r.failure.probability };
  }
  return { timeMs, failureProb, updates };
}
