import { checkArg, PortalError } from '../common/errors.js';
import { cholesky, choleskySolve, choleskyQuad } from './linalg.js';
import { Ring } from './ring.js';
import { createRequire } from 'node:module';

/**
 * Student-t quantile from @stdlib (an exact inverse of the regularized incomplete beta function),
 * loaded on first use: the package pulls in ~130 small @stdlib modules (~50 ms), which processes
 * that never predict a completion time should not pay for at start.
 */
let stdlibT: ((p: number, dof: number) => number) | undefined;
function tQuantile(p: number, dof: number): number {
  stdlibT ??= createRequire(import.meta.url)('@stdlib/stats-base-dists-t-quantile') as (
    p: number,
    dof: number,
  ) => number;
  return stdlibT(p, dof);
}
import type { Observation, TaskContext, TimePrediction } from './types.js';

/** Tunables of the completion-time predictor. */
export interface TimePredictorConfig {
  /** Successful attempts remembered per peer (default: the last 1000 tasks). */
  window: number;
  /** Observations (all peers) before the predictor calls itself warm (default: the first 20 tasks). */
  warmupTasks: number;
  /** Samples of a peer before its own model is used instead of the population prior. */
  minPeerSamples: number;
  /**
   * Samples of the task type on the peer before the peer's own model answers for that type (the
   * type offset is fitted from them, the rest shared with the peer's other types); until then the
   * population prior. Small so that exploring every (peer, type) pair stays cheap.
   */
  minTypeSamples: number;
  /** Ridge penalties: load slope, resource-pressure slope, task-type offsets, hour-of-day offsets. */
  ridge: { load: number; pressure: number; type: number; hour: number };
  /** Confidence level of the interval. */
  level: number;
  /** Heuristic used before anything was observed: ms per work unit at zero load. */
  defaultMsPerUnit: number;
  /**
   * Weight of the newest residual in the per-peer drift (an EMA of log residuals added to the
   * model's prediction), so a slowdown the features do not explain yet — an hour never seen
   * before, a noisy neighbour — is followed within a few tasks. 0 disables it.
   */
  driftAlpha: number;
}

/** Defaults: last 1000 per peer, warm after 20, own model after 3 samples (1 of the type), 90% intervals. */
export const defaultTimePredictorConfig: Readonly<TimePredictorConfig> = Object.freeze({
  window: 1000,
  warmupTasks: 20,
  minPeerSamples: 3,
  minTypeSamples: 1,
  ridge: Object.freeze({ load: 0.5, pressure: 0.5, type: 0.1, hour: 2 }),
  level: 0.9,
  defaultMsPerUnit: 1,
  driftAlpha: 0.3,
});

/** One remembered success: [type index, hour, load, work, timeMs, pressure]. */
type Row = [number, number, number, number, number, number];

/** Serialized predictor (JSON-safe), for actor state. */
export interface TimePredictorState {
  v: 1;
  types: string[];
  total: number;
  /** Rows of [type, hour, load, work, timeMs, pressure?] (pressure absent in state written before it was a feature: 0). */
  peers: Record<string, Array<Row | [number, number, number, number, number]>>;
  drift?: Record<string, number>;
}

const HOURS = 24;
/** Log-space variance prior: ν0 pseudo-observations of variance s0². */
const NU0 = 2;
const S0SQ = 0.1;

/**
 * Half-width multiplier of a two-sided `level` prediction interval on the log scale: the Student-t
 * quantile with `dof` degrees of freedom. The residual variance is estimated from n samples plus
 * NU0 prior pseudo-samples (normal-inverse-gamma), whose posterior predictive is Student-t with
 * n + NU0 degrees of freedom: wide intervals after a few samples, the normal's after hundreds.
 */
function tFor(level: number, dof: number): number {
  return tQuantile(0.5 + level / 2, Math.max(1, dof));
}

class PeerStats {
  readonly ring: Ring<Row>;
  d = 0;
  xtx = new Float64Array(0);
  xty = new Float64Array(0);
  yy = 0;
  n = 0;
  fit: { l: Float64Array; w: Float64Array; s2: number } | undefined;
  /** EMA of recent log residuals (see driftAlpha). */
  drift = 0;
  /** Samples in the ring per task type index. */
  readonly typeCounts: number[] = [];
  count(r: Row, sign: 1 | -1): void {
    this.typeCounts[r[0]] = (this.typeCounts[r[0]] ?? 0) + sign;
  }

  constructor(window: number) {
    this.ring = new Ring<Row>(window);
  }

  reset(d: number): void {
    this.d = d;
    this.xtx = new Float64Array(d * d);
    this.xty = new Float64Array(d);
    this.yy = 0;
    this.n = 0;
    this.fit = undefined;
  }
}

/**
 * Completion-time predictor per (peer, task type, hour of day, current load, resource pressure):
 * for each peer, a sliding-window ridge regression of log(ms per work unit) on [1, log(1 + load),
 * pressure (the peer's telemetry, 0..1, at dispatch), task-type one-hot, hour-of-day one-hot], kept as sufficient statistics (XᵀX, Xᵀy) updated on every
 * observation and eviction, solved by Cholesky when asked. The interval comes from the residual
 * variance and the leverage of the query; a per-peer drift term (EMA of recent residuals) follows
 * changes the features do not explain yet. A peer with fewer than `minPeerSamples` samples, or fewer than `minTypeSamples` of the
 * task type gets the population's estimate for the type ('prior'); before any sample, `defaultMsPerUnit`
 * ('heuristic'). Pure: no clock, no I/O; throws PORTAL_INVALID_ARGUMENT on malformed input.
 */
export class CompletionTimePredictor {
  readonly config: TimePredictorConfig;
  private readonly types: string[] = [];
  private readonly typeIndex = new Map<string, number>();
  private readonly peers = new Map<string, PeerStats>();
  private total = 0;
  /** Interval multipliers by degrees of freedom (the level is fixed per predictor). */
  private readonly tCache = new Map<number, number>();

  constructor(config: Partial<TimePredictorConfig> = {}) {
    this.config = {
      ...defaultTimePredictorConfig,
      ...config,
      ridge: { ...defaultTimePredictorConfig.ridge, ...config.ridge },
    };
    checkArg(Number.isInteger(this.config.window) && this.config.window > 0, 'window', 'a positive integer');
    checkArg(this.config.level > 0 && this.config.level < 1, 'level', 'a number in (0, 1)');
  }

  /** Observations seen so far (all peers, successes and failures). */
  get observations(): number {
    return this.total;
  }

  /** True once `warmupTasks` observations were made: before that callers should use their heuristic. */
  get warm(): boolean {
    return this.total >= this.config.warmupTasks;
  }

  /** Successful samples remembered for `peer`. */
  samples(peer: string): number {
    return this.peers.get(peer)?.ring.size ?? 0;
  }

  /** Learns from one attempt. Failures only count towards warm-up: their time is not a completion time. */
  observe(o: Observation): void {
    checkContext(o);
    checkArg(Number.isFinite(o.timeMs) && o.timeMs >= 0, 'timeMs', 'a finite number ≥ 0');
    this.total++;
    if (!o.ok) return;
    const t = this.typeOf(o.taskType);
    const row: Row = [
      t,
      Math.floor(o.hour) % HOURS,
      o.load,
      o.work ?? 1,
      Math.max(o.timeMs, 1e-3),
      o.pressure ?? 0,
    ];
    const ps = this.peerStats(o.peer);
    // the drift follows residuals of types the peer's model already knows: the first samples of a
    // new type are the type's offset, not a slowdown of the peer
    if (
      this.config.driftAlpha > 0 &&
      ps.ring.size >= this.config.minPeerSamples &&
      (ps.typeCounts[t] ?? 0) >= this.config.minPeerSamples
    ) {
      const fit = this.fitted(ps);
      const x = this.features(t, row[1], row[2], row[5]);
      let mu = 0;
      for (let i = 0; i < x.length; i++) mu += fit.w[i] * x[i];
      const resid = Math.log(row[4] / Math.max(row[3], 1e-12)) - mu;
      ps.drift = (1 - this.config.driftAlpha) * ps.drift + this.config.driftAlpha * resid;
    }
    const old = ps.ring.push(row);
    ps.count(row, 1);
    if (old) ps.count(old, -1);
    if (ps.d === this.dim()) {
      this.accumulate(ps, row, 1);
      if (old) this.accumulate(ps, old, -1);
      ps.fit = undefined;
    } else ps.fit = undefined; // rebuilt on the next prediction
  }

  /** Predicts the completion time of a task on a peer, with a `config.level` confidence interval. */
  predict(q: TaskContext): TimePrediction {
    checkContext(q);
    const work = q.work ?? 1;
    const level = this.config.level;
    const ps = this.peers.get(q.peer);
    const ti = this.typeIndex.get(q.taskType);
    if (
      ps &&
      ps.ring.size >= this.config.minPeerSamples &&
      ti !== undefined &&
      (ps.typeCounts[ti] ?? 0) >= this.config.minTypeSamples
    ) {
      const fit = this.fitted(ps);
      const x = this.features(ti, Math.floor(q.hour) % HOURS, q.load, q.pressure ?? 0);
      let mu = ps.drift;
      for (let i = 0; i < x.length; i++) mu += fit.w[i] * x[i];
      const sd = Math.sqrt(fit.s2 * (1 + choleskyQuad(fit.l, ps.d, x)));
      const z = this.t(ps.n + NU0);
      return {
        timeMs: Math.exp(mu) * work,
        lowMs: Math.exp(mu - z * sd) * work,
        highMs: Math.exp(mu + z * sd) * work,
        level,
        samples: ps.ring.size,
        source: 'model',
      };
    }
    const prior = this.population(q.taskType);
    const samples = ps?.ring.size ?? 0;
    if (prior) {
      const mu = prior.mean + Math.log1p(q.load);
      const sd = Math.sqrt(prior.var + 0.5);
      const z = this.t(prior.n + NU0);
      return {
        timeMs: Math.exp(mu) * work,
        lowMs: Math.exp(mu - z * sd) * work,
        highMs: Math.exp(mu + z * sd) * work,
        level,
        samples,
        source: 'prior',
      };
    }
    const t = this.config.defaultMsPerUnit * work * (1 + q.load);
    return { timeMs: t, lowMs: 0, highMs: Infinity, level, samples, source: 'heuristic' };
  }

  toJSON(): TimePredictorState {
    const peers: Record<string, Row[]> = {};
    for (const [id, ps] of this.peers)
      peers[id] = ps.ring.toArray().map((r): Row => [r[0], r[1], r[2], r[3], r[4], r[5]]);
    const drift: Record<string, number> = {};
    for (const [id, ps] of this.peers) drift[id] = ps.drift;
    return { v: 1, types: this.types.slice(), total: this.total, peers, drift };
  }

  /** Rebuilds a predictor from `toJSON()` output; PORTAL_STATE_CORRUPT when it is not one. */
  static fromJSON(s: TimePredictorState, config: Partial<TimePredictorConfig> = {}): CompletionTimePredictor {
    if (!s || s.v !== 1 || !Array.isArray(s.types) || typeof s.peers !== 'object')
      throw new PortalError(
        'PORTAL_STATE_CORRUPT',
        'time predictor state: expected { v: 1, types, total, peers }',
      );
    const p = new CompletionTimePredictor(config);
    for (const t of s.types) p.typeOf(t);
    p.total = s.total;
    for (const [id, rows] of Object.entries(s.peers)) {
      const ps = p.peerStats(id);
      for (const r of rows) {
        const row: Row = [r[0], r[1], r[2], r[3], r[4], r[5] ?? 0];
        const old = ps.ring.push(row);
        ps.count(row, 1);
        if (old) ps.count(old, -1);
      }
      ps.d = -1; // sufficient statistics are rebuilt from the ring on the first prediction
      ps.drift = s.drift?.[id] ?? 0;
    }
    return p;
  }

  // ---- internals ------------------------------------------------------------------------------

  private t(dof: number): number {
    const k = Math.min(Math.round(dof), 10_000);
    let v = this.tCache.get(k);
    if (v === undefined) {
      v = tFor(this.config.level, k);
      this.tCache.set(k, v);
    }
    return v;
  }

  private dim(): number {
    return 3 + this.types.length + HOURS;
  }

  private typeOf(name: string): number {
    let i = this.typeIndex.get(name);
    if (i === undefined) {
      i = this.types.length;
      this.types.push(name);
      this.typeIndex.set(name, i);
    }
    return i;
  }

  private peerStats(peer: string): PeerStats {
    let ps = this.peers.get(peer);
    if (!ps) {
      ps = new PeerStats(this.config.window);
      ps.reset(this.dim());
      this.peers.set(peer, ps);
    }
    return ps;
  }

  private features(type: number, hour: number, load: number, pressure: number): Float64Array {
    const x = new Float64Array(this.dim());
    x[0] = 1;
    x[1] = Math.log1p(Math.max(0, load));
    x[2] = Math.min(1, Math.max(0, pressure));
    if (type >= 0) x[3 + type] = 1;
    x[3 + this.types.length + hour] = 1;
    return x;
  }

  private accumulate(ps: PeerStats, r: Row, sign: 1 | -1): void {
    const x = this.features(r[0], r[1], r[2], r[5]);
    const y = Math.log(r[4] / Math.max(r[3], 1e-12));
    const d = ps.d;
    for (let i = 0; i < d; i++) {
      if (x[i] === 0) continue;
      ps.xty[i] += sign * x[i] * y;
      for (let j = 0; j < d; j++) if (x[j] !== 0) ps.xtx[i * d + j] += sign * x[i] * x[j];
    }
    ps.yy += sign * y * y;
    ps.n += sign;
  }

  private fitted(ps: PeerStats): { l: Float64Array; w: Float64Array; s2: number } {
    if (ps.d !== this.dim()) {
      ps.reset(this.dim());
      for (const r of ps.ring.toArray()) this.accumulate(ps, r, 1);
    }
    if (ps.fit) return ps.fit;
    const d = ps.d;
    const a = Float64Array.from(ps.xtx);
    const rg = this.config.ridge;
    a[0] += 1e-6;
    a[1 * d + 1] += rg.load;
    a[2 * d + 2] += rg.pressure;
    for (let t = 0; t < this.types.length; t++) a[(3 + t) * d + 3 + t] += rg.type;
    for (let h = 0; h < HOURS; h++) {
      const i = 3 + this.types.length + h;
      a[i * d + i] += rg.hour;
    }
    const l = cholesky(a, d);
    const w = choleskySolve(l, d, ps.xty);
    // SSE = yᵀy − 2wᵀXᵀy + wᵀXᵀXw
    let wxy = 0,
      wxxw = 0;
    for (let i = 0; i < d; i++) {
      wxy += w[i] * ps.xty[i];
      let row = 0;
      for (let j = 0; j < d; j++) row += ps.xtx[i * d + j] * w[j];
      wxxw += w[i] * row;
    }
    const sse = Math.max(0, ps.yy - 2 * wxy + wxxw);
    const s2 = (sse + NU0 * S0SQ) / (ps.n + NU0);
    ps.fit = { l, w, s2 };
    return ps.fit;
  }

  /** Mean and variance of log(ms/unit) at zero-ish load over every peer's samples of `type` (all types if none). */
  private population(type: string): { mean: number; var: number; n: number } | undefined {
    const ti = this.typeIndex.get(type);
    let n = 0,
      s = 0,
      s2 = 0,
      na = 0,
      sa = 0,
      sa2 = 0;
    for (const ps of this.peers.values()) {
      for (const r of ps.ring.toArray()) {
        const y = Math.log(r[4] / Math.max(r[3], 1e-12)) - Math.log1p(r[2]);
        na++;
        sa += y;
        sa2 += y * y;
        if (r[0] === ti) {
          n++;
          s += y;
          s2 += y * y;
        }
      }
    }
    if (n > 0) return { mean: s / n, var: Math.max(0, s2 / n - (s / n) ** 2), n };
    if (na > 0) return { mean: sa / na, var: Math.max(0, sa2 / na - (sa / na) ** 2), n: na };
    return undefined;
  }
}

function checkContext(q: TaskContext): void {
  checkArg(typeof q?.peer === 'string' && q.peer.length > 0, 'peer', 'a non-empty string');
  checkArg(typeof q.taskType === 'string' && q.taskType.length > 0, 'taskType', 'a non-empty string');
  checkArg(Number.isFinite(q.hour) && q.hour >= 0 && q.hour < 24, 'hour', 'an hour of day in [0, 24)');
  checkArg(Number.isFinite(q.load) && q.load >= 0, 'load', 'a finite number ≥ 0');
  checkArg(q.work === undefined || (Number.isFinite(q.work) && q.work > 0), 'work', 'a positive number');
  checkArg(
    q.pressure === undefined || (Number.isFinite(q.pressure) && q.pressure >= 0),
    'pressure',
    'a number ≥ 0',
  );
}

export { checkContext };
