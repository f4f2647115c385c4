/** Chunk status codes (one byte per chunk in `ChunkTable.status`). */
export const ChunkStatus = {
  PENDING: 0,
  IN_FLIGHT: 1,
  COMPLETE: 2,
  /** Transient: failed this tick, about to be failed over. */
  FAILED: 3,
  /** No edge can serve the chunk (none holds it after exclusions), or it ran out of attempts. */
  FAILED_PERMANENT: 4,
} as const;
export type ChunkStatusCode = (typeof ChunkStatus)[keyof typeof ChunkStatus];

/**
 * Chunk priorities (the chunk table's `priority`, higher dispatched first; docs/architecture.md, "The
 * tick"): bytes a reader waits for, the read-ahead of a sequential reader, a whole-file transfer's chunks,
 * and pre-position work that runs only in idle capacity.
 */
export const ChunkPriority = {
  BACKGROUND: -1,
  NORMAL: 0,
  READ_AHEAD: 1,
  DEMAND: 2,
} as const;

/** Edge constraint flags (`EdgeTable.flags`). */
export const EdgeFlags = {
  METERED: 1,
  BATTERY_LOW: 2,
} as const;

/** "No edge" in `assigned` and `backups`. */
export const NO_EDGE = 0xffff;
/** Rank of an edge whose cost is infinite (unavailable): never selected. */
export const INF_RANK = 0x7fffffff;
/** Most edges a transfer can use (edge ids are u16, 0xffff reserved). */
export const MAX_EDGES = 0xfffe;

/** Weights of the cost function (docs/architecture.md, "Cost model"). */
export interface CostWeights {
  time: number;
  load: number;
  health: number;
  metered: number;
  battery: number;
}

/** Every tunable of the scheduler; `defaultSchedulerConfig` holds the documented defaults. */
export interface SchedulerConfig {
  /** Backup sources kept per chunk. */
  k: number;
  weights: CostWeights;
  /** Transfer time that normalizes to 1.0; undefined = the slowest available edge's time this tick. */
  maxAcceptableTimeMs: number | undefined;
  /** Failures of one edge on one chunk before that edge is never asked for it again. */
  perEdgeRetryLimit: number;
  /** Dispatches of one chunk before it is given up (FAILED_PERMANENT) even though edges hold it. */
  maxAttemptsPerChunk: number;
  /** load_balance: an edge at or above this fraction of max_parallel sheds pending chunks… */
  overloadThreshold: number;
  /** …to backups below this fraction. */
  underloadThreshold: number;
  /** Dispatch rate limit: most new dispatches per tick. */
  maxDispatchPerTick: number;
  /** A bandwidth estimate that moves by more than this fraction triggers a full re-rank. */
  significantBandwidthChange: number;
  /** Endgame starts when at most this many chunks remain (and nothing pending can be dispatched). */
  endgameChunks: number;
  /** Most hedged duplicates in flight at once during the endgame. */
  maxHedges: number;
  /** A chunk is hedged only once it has been in flight this long relative to its edge's expected time. */
  hedgeAfterFraction: number;
  /** …or as soon as a free edge's expected time is below this fraction of the fetch's expected time left. */
  hedgeGain: number;
}

/** The defaults (weights 0.4/0.2/0.2/0.1/0.1, K 3, 90%/50% balance thresholds). */
export const defaultSchedulerConfig: Readonly<SchedulerConfig> = Object.freeze({
  k: 3,
  weights: Object.freeze({ time: 0.4, load: 0.2, health: 0.2, metered: 0.1, battery: 0.1 }),
  maxAcceptableTimeMs: undefined,
  perEdgeRetryLimit: 1,
  maxAttemptsPerChunk: 64,
  overloadThreshold: 0.9,
  underloadThreshold: 0.5,
  maxDispatchPerTick: 4096,
  significantBandwidthChange: 0.3,
  endgameChunks: 256,
  maxHedges: 32,
  hedgeAfterFraction: 1.0,
  hedgeGain: 0.5,
});
