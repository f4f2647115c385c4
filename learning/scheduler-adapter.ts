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
  /**
   * The configured max_parallel of edge `e`. When given, the adapter also picks a risk-aware
   * effective limit ≤ it (see `parallel`) and puts it in the updates as `maxParallel`.
   */
  maxParallelOf?: (e: number) => number;
  /** A limit whose predicted goodput is within this fraction of the best is good enough (default 0.95: fewer fetches in flight for ≥ 95% of the goodput). */
  goodputTolerance?: number;
  /**
   * What a failed fetch costs, in successful fetches (default 1): the chunk has to be fetched
   * again, later and elsewhere, and a stalled or erroring edge usually slows its other fetches too.
   */
  failureCost?: number;
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
  readonly updates: ReadonlyArray<EdgeFactorUpdate | undefined>;
  /**
   * Risk-aware effective max_parallel per edge (0 for unavailable edges; only with
   * `maxParallelOf`): the smallest L ≤ the configured limit whose predicted net goodput
   * L × (1 − (1 + failureCost) × p(L−1)) / t(L−1) — L fetches in flight, each started beside
   * L − 1 others, a failure costing `failureCost` successes — is within `goodputTolerance` of the
   * best. An edge that fails under load, or whose bandwidth is shared among its fetches, gets
   * fewer of them; the scheduler sends the rest elsewhere. The model only sees loads up to the
   * limit in force, so an edge held low is probed higher again once its high-load outcomes have
   * left the predictors' windows (1000 attempts per edge by default): slow re-exploration.
   */
  readonly parallel: Int32Array;
}

/** What the adapter asks the scheduler's `updateEdge` to set. */
export interface EdgeFactorUpdate {
  bandwidth: number;
  rtt: number;
  health: number;
  maxParallel?: number;
}

/**
 * Adapts a RiskModel to the chunk scheduler's cost model (docs/architecture.md): for every available edge,
 * the learned completion time of one `chunkBytes` chunk at its current queue depth and hour of day
 * replaces the formula's size / bandwidth + RTT, and the learned failure probability replaces
 * 1 − health. Pure; throws PORTAL_INVALID_ARGUMENT on a bad chunk size.
 */
export function learnedEdgeFactors(
  model: RiskModel,
  edges: EdgeLoadView,
  chunkBytes: number,
  now: number,
  opts: LearnedFactorOptions = {},
): LearnedEdgeFactors {
  checkArg(Number.isFinite(chunkBytes) && chunkBytes > 0, 'chunkBytes', 'a positive number');
  const idOf = opts.edgeId ?? ((e: number) => `edge-${e}`);
  const taskType = opts.taskType ?? 'chunk';
  const hour = (opts.hourOf ?? ((t: number) => new Date(t).getUTCHours()))(now);
  const timeMs = new Float64Array(edges.e).fill(NaN);
  const failureProb = new Float64Array(edges.e).fill(NaN);
  const updates: Array<EdgeFactorUpdate | undefined> = new Array<EdgeFactorUpdate | undefined>(edges.e).fill(
    undefined,
  );
  const parallel = new Int32Array(edges.e);
  const tolerance = opts.goodputTolerance ?? 0.95;
  checkArg(tolerance > 0 && tolerance <= 1, 'goodputTolerance', 'a number in (0, 1]');
  const failureCost = opts.failureCost ?? 1;
  checkArg(Number.isFinite(failureCost) && failureCost >= 0, 'failureCost', 'a number ≥ 0');
  for (let e = 0; e < edges.e; e++) {
    if (edges.available[e] !== 1) continue;
    const peer = idOf(e);
    const r = model.predict({ peer, taskType, hour, load: edges.queueDepth[e], work: chunkBytes });
    const t = opts.riskAdjustedTime ? r.score : r.time.timeMs;
    timeMs[e] = t;
    failureProb[e] = r.failure.probability;
    const u: EdgeFactorUpdate = {
      bandwidth: (chunkBytes * 1000) / Math.max(t, 1e-3),
      rtt: 0,
      health: 1 - r.failure.probability,
    };
    if (opts.maxParallelOf) {
      const cap = opts.maxParallelOf(e);
      checkArg(Number.isInteger(cap) && cap >= 0, 'maxParallel', 'an integer ≥ 0');
      parallel[e] = effectiveParallel(
        model,
        { peer, taskType, hour, work: chunkBytes },
        cap,
        tolerance,
        failureCost,
      );
      u.maxParallel = parallel[e];
    }
    updates[e] = u;
  }
  return { timeMs, failureProb, updates, parallel };
}

/**
 * The smallest L in [1, cap] whose predicted net goodput is within `tolerance` of the best L's
 * (0 when cap is 0; 1 when no L has a positive net goodput: the ranking then keeps the edge last).
 */
function effectiveParallel(
  model: RiskModel,
  q: { peer: string; taskType: string; hour: number; work: number },
  cap: number,
  tolerance: number,
  failureCost: number,
): number {
  if (cap <= 1) return cap;
  const goodput = new Float64Array(cap + 1);
  let best = 0;
  for (let l = 1; l <= cap; l++) {
    const r = model.predict({ ...q, load: l - 1 });
    goodput[l] = (l * (1 - (1 + failureCost) * r.failure.probability)) / Math.max(r.time.timeMs, 1e-9);
    best = Math.max(best, goodput[l]);
  }
  if (best <= 0) return 1;
  for (let l = 1; l <= cap; l++) if (goodput[l] >= tolerance * best) return l;
  return cap;
}
