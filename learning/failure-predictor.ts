import { checkArg, PortalError } from '../common/errors.js';
import { cholesky, choleskySolve, sigmoid } from './linalg.js';
import { Ring } from './ring.js';
import type { FailurePrediction, Observation, TaskContext } from './types.js';
import { checkContext } from './time-predictor.js';

/** Tunables of the failure predictor. */
export interface FailurePredictorConfig {
  /** Attempts remembered per peer (default: the last 1000 tasks). */
  window: number;
  /** Attempts of a peer before its own logistic model is used. */
  minPeerSamples: number;
  /** Outcomes that make the "recent failures" feature. */
  recent: number;
  /** L2 penalty of the intercept (towards the population rate) and of the slopes (towards 0). */
  /** Ridge penalties: intercept (towards the population's rate), slopes (towards 0), load steps (towards 0). */
  ridge: { intercept: number; slope: number; step: number };
  /** Probability before anything was observed. */
  defaultProbability: number;
  /** Predictions are clamped to [0, maxProbability] so risk-adjusted scores stay finite. */
  maxProbability: number;
}

/** Defaults: last 1000 per peer, own model after 5 attempts, last 10 outcomes as "recent". */
export const defaultFailurePredictorConfig: Readonly<FailurePredictorConfig> = Object.freeze({
  window: 1000,
  minPeerSamples: 5,
  recent: 10,
  ridge: Object.freeze({ intercept: 0.1, slope: 0.5, step: 1 }),
  defaultProbability: 0.05,
  maxProbability: 0.95,
});

/** One remembered attempt: [load, recent failure fraction, pressure, failed 0/1]. */
type Row = [number, number, number, number];

/** Serialized predictor (JSON-safe), for actor state. */
export interface FailurePredictorState {
  v: 1;
  peers: Record<string, Row[]>;
}

/** Load steps 1{load ≥ k}, k = 1..STEPS: let the model learn a threshold ("fails when 2+ run"). */
const STEPS = 4;
const D = 4 + STEPS;

/** The feature vector [1, load, recent failure fraction, pressure, 1{load ≥ 1} … 1{load ≥ STEPS}] into `x`. */
function features(x: Float64Array, load: number, recent: number, pressure: number): Float64Array {
  x[0] = 1;
  x[1] = load;
  x[2] = recent;
  x[3] = pressure;
  for (let k = 1; k <= STEPS; k++) x[3 + k] = load >= k ? 1 : 0;
  return x;
}

class PeerRisk {
  readonly ring: Ring<Row>;
  readonly recent: number[] = [];
  w = new Float64Array(D);
  dirty = true;
  constructor(window: number) {
    this.ring = new Ring<Row>(window);
  }
}

/**
 * Failure-probability predictor from telemetry: per peer, an L2-regularized logistic regression of
 * "attempt failed" on [1, load, recent failure fraction, resource pressure, load steps
 * 1{load ≥ k} for k = 1..4] over the last `window` attempts (the steps let it learn a threshold,
 * which a slope in load alone smears out), refitted by Newton's method (warm-started) when asked after new outcomes. The intercept
 * is pulled towards the population's failure rate, so a peer with little history looks average.
 * Peers with fewer than `minPeerSamples` attempts get a smoothed rate ('prior'). Pure: no clock.
 */
export class FailurePredictor {
  readonly config: FailurePredictorConfig;
  private readonly peers = new Map<string, PeerRisk>();
  private fails = 0;
  private attempts = 0;

  constructor(config: Partial<FailurePredictorConfig> = {}) {
    this.config = {
      ...defaultFailurePredictorConfig,
      ...config,
      ridge: { ...defaultFailurePredictorConfig.ridge, ...config.ridge },
    };
    checkArg(Number.isInteger(this.config.window) && this.config.window > 0, 'window', 'a positive integer');
  }

  /** Attempts remembered for `peer`. */
  samples(peer: string): number {
    return this.peers.get(peer)?.ring.size ?? 0;
  }

  /** Fraction of the peer's last `recent` attempts that failed (0 when none). */
  recentFailures(peer: string): number {
    const r = this.peers.get(peer)?.recent;
    return r && r.length > 0 ? r.reduce((a, b) => a + b, 0) / r.length : 0;
  }

  /** Learns from one attempt. */
  observe(o: Observation): void {
    checkContext(o);
    const pr = this.peer(o.peer);
    const failed = o.ok ? 0 : 1;
    pr.ring.push([o.load, this.recentFailures(o.peer), o.pressure ?? 0, failed]);
    pr.recent.push(failed);
    if (pr.recent.length > this.config.recent) pr.recent.shift();
    pr.dirty = true;
    this.fails += failed;
    this.attempts++;
  }

  /** Probability that an attempt of a task on `q.peer` under `q`'s load and pressure fails. */
  predict(q: TaskContext): FailurePrediction {
    checkContext(q);
    const cfg = this.config;
    const pr = this.peers.get(q.peer);
    const n = pr?.ring.size ?? 0;
    if (!pr || n === 0)
      return {
        probability: this.attempts > 0 ? this.populationRate() : cfg.defaultProbability,
        samples: 0,
        source: this.attempts > 0 ? 'prior' : 'heuristic',
      };
    if (n < cfg.minPeerSamples) {
      let f = 0;
      for (const r of pr.ring.toArray()) f += r[3];
      const m = 5;
      return {
        probability: Math.min(cfg.maxProbability, (f + m * this.populationRate()) / (n + m)),
        samples: n,
        source: 'prior',
      };
    }
    if (pr.dirty) this.refit(pr);
    const x = features(new Float64Array(D), q.load, this.recentFailures(q.peer), q.pressure ?? 0);
    let z = 0;
    for (let i = 0; i < D; i++) z += pr.w[i] * x[i];
    return { probability: Math.min(cfg.maxProbability, sigmoid(z)), samples: n, source: 'model' };
  }

  toJSON(): FailurePredictorState {
    const peers: Record<string, Row[]> = {};
    for (const [id, pr] of this.peers) peers[id] = pr.ring.toArray().map((r) => [r[0], r[1], r[2], r[3]]);
    return { v: 1, peers };
  }

  /** Rebuilds a predictor from `toJSON()` output; PORTAL_STATE_CORRUPT when it is not one. */
  static fromJSON(s: FailurePredictorState, config: Partial<FailurePredictorConfig> = {}): FailurePredictor {
    if (!s || s.v !== 1 || typeof s.peers !== 'object')
      throw new PortalError('PORTAL_STATE_CORRUPT', 'failure predictor state: expected { v: 1, peers }');
    const p = new FailurePredictor(config);
    for (const [id, rows] of Object.entries(s.peers)) {
      const pr = p.peer(id);
      for (const r of rows) {
        pr.ring.push([r[0], r[1], r[2], r[3]]);
        pr.recent.push(r[3]);
        if (pr.recent.length > p.config.recent) pr.recent.shift();
        p.fails += r[3];
        p.attempts++;
      }
    }
    return p;
  }

  private peer(id: string): PeerRisk {
    let pr = this.peers.get(id);
    if (!pr) {
      pr = new PeerRisk(this.config.window);
      pr.w[0] = logit(this.attempts > 0 ? this.populationRate() : this.config.defaultProbability);
      this.peers.set(id, pr);
    }
    return pr;
  }

  /** Smoothed failure rate over every attempt seen (towards the default with 10 pseudo-attempts). */
  private populationRate(): number {
    return (this.fails + 10 * this.config.defaultProbability) / (this.attempts + 10);
  }

  private refit(pr: PeerRisk): void {
    const rows = pr.ring.toArray();
    const w0 = logit(this.populationRate());
    const { intercept, slope, step } = this.config.ridge;
    const lam = [intercept, slope, slope, slope, ...new Array<number>(STEPS).fill(step)];
    const w = pr.w;
    const x = new Float64Array(D);
    const loss = (v: Float64Array): number => {
      let l = 0;
      for (const r of rows) {
        features(x, r[0], r[1], r[2]);
        let z = 0;
        for (let i = 0; i < D; i++) z += v[i] * x[i];
        // log(1 + e^z) − y·z, computed stably
        l += (z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z))) - r[3] * z;
      }
      for (let i = 0; i < D; i++) l += 0.5 * lam[i] * (v[i] - (i === 0 ? w0 : 0)) ** 2;
      return l;
    };
    for (let iter = 0; iter < 12; iter++) {
      const g = new Float64Array(D);
      const h = new Float64Array(D * D);
      for (const r of rows) {
        features(x, r[0], r[1], r[2]);
        let z = 0;
        for (let i = 0; i < D; i++) z += w[i] * x[i];
        const p = sigmoid(z);
        const s = Math.max(p * (1 - p), 1e-6);
        for (let i = 0; i < D; i++) {
          g[i] += (p - r[3]) * x[i];
          for (let j = 0; j <= i; j++) h[i * D + j] += s * x[i] * x[j];
        }
      }
      for (let i = 0; i < D; i++) {
        g[i] += lam[i] * (w[i] - (i === 0 ? w0 : 0));
        h[i * D + i] += lam[i];
        for (let j = 0; j < i; j++) h[j * D + i] = h[i * D + j];
      }
      const step = choleskySolve(cholesky(h, D), D, g);
      // damped Newton: halve the step until the penalized log-loss does not increase
      const before = loss(w);
      let t = 1;
      const trial = new Float64Array(D);
      for (; t > 1e-4; t /= 2) {
        for (let i = 0; i < D; i++) trial[i] = w[i] - t * step[i];
        if (loss(trial) <= before + 1e-12) break;
      }
      let moved = 0;
      for (let i = 0; i < D; i++) {
        moved = Math.max(moved, Math.abs(trial[i] - w[i]));
        w[i] = trial[i];
      }
      if (moved < 1e-6) break;
    }
    pr.dirty = false;
  }
}

function logit(p: number): number {
  const q = Math.min(1 - 1e-6, Math.max(1e-6, p));
  return Math.log(q / (1 - q));
}
