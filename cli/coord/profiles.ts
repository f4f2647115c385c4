/** Task types of the coord demo. */
export const DEMO_TYPES = ['render', 'physics', 'audio'] as const;
export type DemoType = (typeof DEMO_TYPES)[number];

/**
 * A simulated peer's true behaviour: work multiplier per task type (1 = fastest), slowdown at
 * peak hours, extra slowdown per queued task, and failures under overload. The peer process
 * really does `work × multiplier` of computation; the oracle policy is given these numbers.
 */
export interface PeerProfile {
  id: string;
  latencyHintMs: number;
  maxConcurrent: number;
  speed: Record<DemoType, number>;
  peakHours: [number, number];
  peakFactor: number;
  /** Work multiplier grows by this for every task queued behind the running one (thermal/memory pressure). */
  loadFactor: number;
  /** An attempt arriving with at least this many tasks already queued or running fails with failProb. */
  overloadAt: number;
  failProb: number;
}

/** Four heterogeneous peers: the one that advertises the best latency is the one that fails under load. */
export const DEMO_PEERS: readonly PeerProfile[] = [
  {
    id: 'gpu_beast',
    latencyHintMs: 60,
    maxConcurrent: 4,
    speed: { render: 1, physics: 3, audio: 2 },
    peakHours: [0, 0],
    peakFactor: 1,
    loadFactor: 0,
    overloadAt: 99,
    failProb: 0,
  },
  {
    id: 'cpu_beast',
    latencyHintMs: 50,
    maxConcurrent: 4,
    speed: { render: 3, physics: 1, audio: 1 },
    peakHours: [0, 0],
    peakFactor: 1,
    loadFactor: 0,
    overloadAt: 99,
    failProb: 0,
  },
  {
    id: 'balanced',
    latencyHintMs: 10,
    maxConcurrent: 4,
    speed: { render: 1.6, physics: 1.6, audio: 1.6 },
    peakHours: [18, 22],
    peakFactor: 2,
    loadFactor: 0.3,
    overloadAt: 3,
    failProb: 0.2,
  },
  {
    id: 'unstable',
    latencyHintMs: 5,
    maxConcurrent: 4,
    speed: { render: 2.5, physics: 2.5, audio: 2.5 },
    peakHours: [0, 0],
    peakFactor: 1,
    loadFactor: 0,
    overloadAt: 1,
    failProb: 0.4,
  },
];

/**
 * How much slower than one core of the machine running the demo the fastest emulated peer is: a
 * peer holds a task for EMULATION_PACE × multiplier × the CPU time its real computation took.
 * Above 1 so that four peers sharing two cores still run at their own speeds (see peer.ts).
 */
export const EMULATION_PACE = 2;

/** The true work multiplier of a task on a peer at an hour with `queued` tasks ahead of it. */
export function trueMultiplier(p: PeerProfile, type: DemoType, hour: number, queued: number): number {
  const peak = hour >= p.peakHours[0] && hour < p.peakHours[1] ? p.peakFactor : 1;
  return p.speed[type] * peak * (1 + p.loadFactor * queued);
}
