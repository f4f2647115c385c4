import type { ActorHostStats } from './types.js';

/** The counters of an actor host, with the per-type count of active instances kept beside the total. */
export interface HostCounters {
  /** The counters stats() copies (activations, calls, active, activeByType, …). */
  readonly stats: ActorHostStats;
  /** One instance of `type` activated (+1) or released (-1); a type with none left is dropped from activeByType. */
  countActive(this: void, type: string, delta: 1 | -1): void;
  /** A copy for stats(): callers may keep it. */
  snapshot(this: void): ActorHostStats;
}

/** Zeroed counters for an actor host (both hosts count the same way). */
export function createHostCounters(): HostCounters {
  const stats: ActorHostStats = {
    activations: 0,
    deactivations: 0,
    calls: 0,
    active: 0,
    remindersFired: 0,
    timersFired: 0,
    activeByType: {},
  };
  return {
    stats,
    countActive: (type, delta) => {
      const n = (stats.activeByType[type] ?? 0) + delta;
      if (n > 0) stats.activeByType[type] = n;
      else delete stats.activeByType[type];
      stats.active += delta;
    },
    snapshot: () => ({ ...stats, activeByType: { ...stats.activeByType } }),
  };
}
