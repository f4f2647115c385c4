import { quantile } from '../../common/quantile.js';

/** One finished task of a demo run, as the metrics see it. */
export interface TaskRow {
  index: number;
  type: string;
  frame: number | undefined;
  submittedAt: number;
  doneAt: number;
  latencyMs: number;
  ok: boolean;
  attempts: number;
  failures: number;
}

/** One completed attempt as seen by the pool: when it ended and how long the peer held and computed it. */
export interface ServiceEvent {
  peer: string;
  /** performance.now() in the coordinator's process when the answer arrived, ms. */
  doneAt: number;
  /** How long the peer held the task (its emulated service time), ms. */
  serviceMs: number;
  /** CPU time (user + system) the peer's real computation took, ms: the hold is EMULATION_PACE × multiplier × this. */
  cpuMs: number;
  /** Wall time of that computation, ms (the hold is never shorter: a busy machine stretches it). */
  computeMs: number;
}

/** The metrics of one phase (a range of task indexes) of one policy. */
export interface PhaseMetrics {
  phase: string;
  tasks: number;
  meanLatencyMs: number;
  p99LatencyMs: number;
  /** Failed attempts / attempts. */
  failureRate: number;
  /** Tasks that failed every attempt. */
  failedTasks: number;
  /** Peer compute time / (phase wall time × peers). */
  utilization: number;
  /** Mean over frames of (slowest tile latency / mean tile latency). */
  tileImbalance: number;
  frames: number;
}

/** The `p` percentile (0..100) of `values` by the project's one quantile rule (common/quantile.ts); 0 when empty. */
export function percentile(values: number[], p: number): number {
  return quantile(values, p / 100, 0);
}

/** Metrics of the tasks with index in [from, to). */
export function phaseMetrics(
  name: string,
  rows: TaskRow[],
  events: ServiceEvent[],
  peers: number,
  from: number,
  to: number,
): PhaseMetrics {
  const r = rows.filter((t) => t.index >= from && t.index < to);
  const lat = r.map((t) => t.latencyMs);
  const attempts = r.reduce((a, t) => a + t.attempts, 0);
  const failures = r.reduce((a, t) => a + t.failures, 0);
  const start = Math.min(...r.map((t) => t.submittedAt)),
    end = Math.max(...r.map((t) => t.doneAt));
  const busy = events
    .filter((e) => e.doneAt >= start && e.doneAt <= end)
    .reduce((a, e) => a + e.serviceMs, 0);
  const frames = new Map<number, number[]>();
  for (const t of r)
    if (t.frame !== undefined) {
      const l = frames.get(t.frame) ?? [];
      l.push(t.latencyMs);
      frames.set(t.frame, l);
    }
  const imb = [...frames.values()]
    .filter((l) => l.length > 1)
    .map((l) => Math.max(...l) / (l.reduce((a, b) => a + b, 0) / l.length));
  return {
    phase: name,
    tasks: r.length,
    meanLatencyMs: lat.reduce((a, b) => a + b, 0) / Math.max(1, lat.length),
    p99LatencyMs: percentile(lat, 99),
    failureRate: attempts > 0 ? failures / attempts : 0,
    failedTasks: r.filter((t) => !t.ok).length,
    utilization: end > start ? busy / ((end - start) * peers) : 0,
    tileImbalance: imb.length > 0 ? imb.reduce((a, b) => a + b, 0) / imb.length : 1,
    frames: imb.length,
  };
}
