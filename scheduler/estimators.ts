import { checkArg } from '../common/errors.js';

/** Tunables of the per-edge estimators (docs/architecture.md, "Estimators"). */
export interface EstimatorConfig {
  /** Bandwidth EMA weight of a new sample. */
  alpha: number;
  /** Outcomes remembered for the success rate. */
  window: number;
  /** Span of the uptime measure, ms. */
  uptimeWindowMs: number;
  /** Health = success·wSuccess + uptime·wUptime + consistency·wConsistency. */
  healthWeights: { success: number; uptime: number; consistency: number };
  /** Consecutive unreachable failures that mark an edge offline. */
  offlineAfter: number;
}

/** The documented defaults: α 0.1, last 100 chunks, last hour, health 0.6/0.25/0.15, offline after 3. */
export const defaultEstimatorConfig: Readonly<EstimatorConfig> = Object.freeze({
  alpha: 0.1,
  window: 100,
  uptimeWindowMs: 3_600_000,
  healthWeights: Object.freeze({ success: 0.6, uptime: 0.25, consistency: 0.15 }),
  offlineAfter: 3,
});

/** What an estimator knows about an edge at one moment. */
export interface EdgeEstimate {
  /** bytes/s (EMA of per-chunk payload bandwidth) */
  bandwidth: number;
  /** ms (SRTT of first-byte times) */
  rtt: number;
  /** 0..1 */
  health: number;
  successRate: number;
  uptime: number;
  /** 1 − coefficient of variation of bandwidth, clamped to 0..1 */
  consistency: number;
  /** Smoothed chunk transfer time and its mean deviation (ms), for adaptive timeouts. */
  transferMs: number;
  transferDevMs: number;
  available: boolean;
  samples: number;
}

/** Serialized estimator state (JSON-safe), for actor state. */
export interface EdgeEstimatorState {
  bw: number;
  bwDev: number;
  rtt: number;
  tMean: number;
  tDev: number;
  samples: number;
  outcomes: number[];
  available: boolean;
  since: number;
  upMs: Array<[number, number]>;
  unreachable: number;
}

/**
 * Per-edge estimators: bandwidth EMA of chunk size / transfer time, TCP-style SRTT, success rate over the last `window` chunks,
 * uptime over the last hour, bandwidth consistency, and smoothed transfer time for timeouts.
 * Pure: every method takes the current time; nothing reads a clock.
 */
export class EdgeEstimator {
  private bw = 0;
  private bwDev = 0;
  private rttMs = 0;
  private tMean = 0;
  private tDev = 0;
  private samples = 0;
  private readonly outcomes: Uint8Array;
  private outCount = 0;
  private outHead = 0;
  private available: boolean;
  private since: number;
  /** Closed intervals of availability [start, end) within the uptime window. */
  private upIntervals: Array<[number, number]> = [];
  private unreachable = 0;

  constructor(
    private readonly cfg: EstimatorConfig = defaultEstimatorConfig,
    now = 0,
    opts: { bandwidth?: number; rtt?: number; available?: boolean } = {},
  ) {
    checkArg(cfg.alpha > 0 && cfg.alpha <= 1, 'alpha', 'a number in (0, 1]');
    checkArg(Number.isInteger(cfg.window) && cfg.window > 0, 'window', 'a positive integer');
    this.outcomes = new Uint8Array(cfg.window);
    this.bw = opts.bandwidth ?? 0;
    this.rttMs = opts.rtt ?? 0;
    this.available = opts.available ?? true;
    this.since = now;
  }

  /** Records a successful chunk: `bytes` delivered, first byte after `firstByteMs`, done after `transferMs`. */
  observeSuccess(bytes: number, firstByteMs: number, transferMs: number, now: number): void {
    // EMA sample as in docs/architecture.md: actual_bw = chunk_size / transfer_time. (The payload time alone, after the first
    // byte, is meaningless for chunks that fit in one burst: it measured 40 MiB/s on 220 KB/s edges.)
    const sample = bytes / (Math.max(transferMs, 0.5) / 1000);
    const a = this.cfg.alpha;
    if (this.samples === 0 && this.bw === 0) this.bw = sample;
    else {
      this.bwDev = (1 - a) * this.bwDev + a * Math.abs(sample - this.bw);
      this.bw = a * sample + (1 - a) * this.bw;
    }
    if (this.samples === 0 && this.rttMs === 0) this.rttMs = firstByteMs;
    else this.rttMs = 0.875 * this.rttMs + 0.125 * firstByteMs;
    if (this.samples === 0) {
      this.tMean = transferMs;
      this.tDev = transferMs;
    } else {
      this.tDev = 0.75 * this.tDev + 0.25 * Math.abs(transferMs - this.tMean);
      this.tMean = 0.875 * this.tMean + 0.125 * transferMs;
    }
    this.samples++;
    this.pushOutcome(1);
    this.unreachable = 0;
    this.setAvailable(true, now);
  }

  /** Records a failed chunk. Unreachable failures in a row mark the edge offline. Returns true if that happened now. */
  observeFailure(reason: string, now: number): boolean {
    if (reason === 'cancelled') return false;
    this.pushOutcome(0);
    if (reason === 'unreachable') {
      this.unreachable++;
      if (this.available && this.unreachable >= this.cfg.offlineAfter) {
        this.setAvailable(false, now);
        return true;
      }
    }
    return false;
  }

  /** Sets the availability flag (telemetry, probes), accounting uptime. Returns true if it changed. */
  setAvailable(on: boolean, now: number): boolean {
    if (on === this.available) return false;
    if (this.available) this.upIntervals.push([this.since, now]);
    this.available = on;
    this.since = now;
    if (on) this.unreachable = 0;
    this.trimUptime(now);
    return true;
  }

  /** Fraction of the uptime window (or of the time since the estimator began, if shorter) the edge was available. */
  uptime(now: number): number {
    this.trimUptime(now);
    const from = now - this.cfg.uptimeWindowMs;
    let up = 0;
    for (const [s, e] of this.upIntervals) up += Math.max(0, e - Math.max(s, from));
    if (this.available) up += Math.max(0, now - Math.max(this.since, from));
    const first = this.upIntervals.length > 0 ? this.upIntervals[0][0] : this.since;
    const span = Math.min(this.cfg.uptimeWindowMs, now - first);
    return span <= 0 ? (this.available ? 1 : 0) : Math.min(1, up / span);
  }

  /** The current estimate. */
  snapshot(now: number): EdgeEstimate {
    const successRate = this.successRate();
    const uptime = this.uptime(now);
    const consistency = this.bw > 0 ? Math.max(0, Math.min(1, 1 - this.bwDev / this.bw)) : 1;
    const w = this.cfg.healthWeights;
    const health =
      (w.success * successRate + w.uptime * uptime + w.consistency * consistency) /
      (w.success + w.uptime + w.consistency);
    return {
      bandwidth: this.bw,
      rtt: this.rttMs,
      health,
      successRate,
      uptime,
      consistency,
      transferMs: this.tMean,
      transferDevMs: this.tDev,
      available: this.available,
      samples: this.samples,
    };
  }

  /** Success rate over the last `window` outcomes (1 when there are none yet). */
  successRate(): number {
    if (this.outCount === 0) return 1;
    let ok = 0;
    for (let i = 0; i < this.outCount; i++) ok += this.outcomes[i];
    return ok / this.outCount;
  }

  toJSON(): EdgeEstimatorState {
    const outcomes: number[] = [];
    for (let i = 0; i < this.outCount; i++)
      outcomes.push(this.outcomes[(this.outHead - this.outCount + i + this.cfg.window) % this.cfg.window]);
    return {
      bw: this.bw,
      bwDev: this.bwDev,
      rtt: this.rttMs,
      tMean: this.tMean,
      tDev: this.tDev,
      samples: this.samples,
      outcomes,
      available: this.available,
      since: this.since,
      upMs: this.upIntervals.map(([a, b]) => [a, b]),
      unreachable: this.unreachable,
    };
  }

  /** Rebuilds an estimator from `toJSON()` output. */
  static fromJSON(s: EdgeEstimatorState, cfg: EstimatorConfig = defaultEstimatorConfig): EdgeEstimator {
    const est = new EdgeEstimator(cfg, s.since, { bandwidth: s.bw, rtt: s.rtt, available: s.available });
    est.bwDev = s.bwDev;
    est.tMean = s.tMean;
    est.tDev = s.tDev;
    est.samples = s.samples;
    est.upIntervals = s.upMs.map(([a, b]) => [a, b]);
    est.unreachable = s.unreachable;
    for (const o of s.outcomes.slice(-cfg.window)) est.pushOutcome(o ? 1 : 0);
    return est;
  }

  private pushOutcome(v: 0 | 1): void {
    this.outcomes[this.outHead] = v;
    this.outHead = (this.outHead + 1) % this.cfg.window;
    if (this.outCount < this.cfg.window) this.outCount++;
  }

  private trimUptime(now: number): void {
    const from = now - this.cfg.uptimeWindowMs;
    while (this.upIntervals.length > 0 && this.upIntervals[0][1] <= from) this.upIntervals.shift();
  }
}

/** Timeout floor and cap for adaptive timeouts, ms. */
export interface TimeoutBounds {
  floorMs: number;
  capMs: number;
  coldMultiplier: number;
}

/**
 * Defaults: at least 2 s (a fetch that shares its edge with others slows down before the estimate
 * catches up; dead edges are found by connection errors, not timeouts), at most 60 s, 4× the
 * expected time before any sample.
 */
export const defaultTimeoutBounds: Readonly<TimeoutBounds> = Object.freeze({
  floorMs: 2000,
  capMs: 60_000,
  coldMultiplier: 4,
});

/**
 * Adaptive fetch timeout for an edge: mean + 4 × deviation of observed chunk times,
 * clamped to [floor, cap]. Before any sample:
 * coldMultiplier × the expected time from bandwidth and RTT (the cap when bandwidth is unknown).
 */
export function adaptiveTimeoutMs(
  est: EdgeEstimate,
  chunkBytes: number,
  bounds: TimeoutBounds = defaultTimeoutBounds,
): number {
  let t: number;
  if (est.samples > 0) t = est.transferMs + 4 * est.transferDevMs;
  else if (est.bandwidth > 0) t = bounds.coldMultiplier * ((chunkBytes / est.bandwidth) * 1000 + est.rtt);
  else t = bounds.capMs;
  return Math.min(bounds.capMs, Math.max(bounds.floorMs, t));
}
