/**
 * A source of time and timers. Everything time-dependent in Portal takes a Clock, so that tests
 * drive deadlines, timeouts and ticks with a ManualClock instead of sleeping.
 */
export interface Clock {
  /** Milliseconds since an arbitrary fixed origin (monotonic for SystemClock). */
  now(): number;
  /** Milliseconds since the Unix epoch (for hour-of-day features and logs). */
  wallNow(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** Opaque handle returned by Clock.setTimeout. */
export interface TimerHandle {
  readonly id: number;
}

/**
 * Longest delay one Node timer can wait: setTimeout takes a signed 32-bit millisecond count and fires at once
 * (after 1 ms, with a TimeoutOverflowWarning) for anything larger (Node docs, `setTimeout`).
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The real clock: performance.now() and Node timers. A delay above MAX_TIMER_MS (about 24.8 days) is waited
 * out as a chain of shorter timers, so a reminder due in 30 days fires in 30 days; an infinite delay never fires.
 */
export function createSystemClock(): Clock {
  const timers = new Map<number, NodeJS.Timeout>();
  let next = 1;
  const arm = (id: number, fn: () => void, dueAt: number): void => {
    const left = Math.max(0, dueAt - performance.now());
    const t = setTimeout(
      () => {
        if (dueAt - performance.now() > 1) {
          arm(id, fn, dueAt); // a link of a long wait: wait for the rest
          return;
        }
        timers.delete(id);
        fn();
      },
      Math.min(left, MAX_TIMER_MS),
    );
    timers.set(id, t);
  };
  return {
    now: () => performance.now(),
    wallNow: () => Date.now(),
    setTimeout(fn, ms) {
      const id = next++;
      const delay = Number.isNaN(ms) ? 0 : Math.max(0, ms);
      if (delay !== Infinity) arm(id, fn, performance.now() + delay);
      return { id };
    },
    clearTimeout(handle) {
      const t = timers.get(handle.id);
      if (t) {
        clearTimeout(t);
        timers.delete(handle.id);
      }
    },
  };
}

/** A clock that only moves when told to: `advance(ms)` runs due timers in time order. */
export class ManualClock implements Clock {
  private t: number;
  private wallOrigin: number;
  private seq = 1;
  private readonly pending = new Map<number, { at: number; fn: () => void }>();

  constructor(start = 0, wallOrigin = Date.UTC(2026, 0, 1)) {
    this.t = start;
    this.wallOrigin = wallOrigin - start;
  }

  now(): number {
    return this.t;
  }
  wallNow(): number {
    return this.wallOrigin + this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.seq++;
    this.pending.set(id, { at: this.t + Math.max(0, ms), fn });
    return { id };
  }

  clearTimeout(handle: TimerHandle): void {
    this.pending.delete(handle.id);
  }

  /** Moves time forward by `ms`, firing every timer that falls due, earliest first. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let bestId = -1;
      let bestAt = Infinity;
      for (const [id, p] of this.pending) {
        if (p.at <= end && (p.at < bestAt || (p.at === bestAt && id < bestId))) {
          bestAt = p.at;
          bestId = id;
        }
      }
      if (bestId < 0) break;
      const p = this.pending.get(bestId)!;
      this.pending.delete(bestId);
      this.t = Math.max(this.t, p.at);
      p.fn();
    }
    this.t = end;
  }

  /** Number of timers not yet fired. */
  get pendingTimers(): number {
    return this.pending.size;
  }
}
