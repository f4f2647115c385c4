/** Longest pause between two ticks of an idle transfer when nothing falls due sooner, ms. */
export const MAX_IDLE_TICK_MS = 2000;

/** What one timer tick saw, for TickPacer.afterTick. */
export interface TickOutcome {
  /** The tick dispatched, cancelled, failed over or completed something, or the transfer's state changed. */
  busy: boolean;
  /** Time until the scheduler's next due event (ChunkScheduler.nextDueAt − now), ms; Infinity for none. */
  untilDueMs: number;
}

/**
 * The period of a transfer's tick timer. While ticks find work the timer runs at the transfer's `tickMs`; each
 * tick that finds nothing to do (every slot busy waiting on fetches, or nothing to fetch) doubles the period, up
 * to `maxIdleMs` and never past the scheduler's next due event (a fetch deadline, an endgame hedge), so failure
 * detection and hedging keep their timing while an idle transfer costs almost no ticks. New work (a report the
 * report-driven tick did not take, a reader's demand, an edge's announcement) brings the period back to
 * `tickMs` at once (`wake`).
 *
 * Periods are `tickMs × 2^k`, so the timer is registered again only when the period changes: at most
 * log2(maxIdleMs / tickMs) times while a transfer goes idle, and once when it wakes.
 */
export class TickPacer {
  private current: number;

  constructor(
    readonly baseMs: number,
    readonly maxIdleMs = MAX_IDLE_TICK_MS,
  ) {
    this.current = baseMs;
  }

  /** The period the timer should run at now, ms. */
  get periodMs(): number {
    return this.current;
  }

  /** After a timer tick: the new period when it changed (re-register the timer), else undefined. */
  afterTick(o: TickOutcome): number | undefined {
    let next = this.baseMs;
    if (!o.busy) {
      next = Math.min(this.current * 2, Math.max(this.baseMs, this.maxIdleMs));
      while (next > this.baseMs && next > o.untilDueMs) next = Math.max(this.baseMs, next / 2);
    }
    return this.set(next);
  }

  /**
   * After a tick between timer ticks: a shorter period when the scheduler's next due event (in `untilDueMs`)
   * comes before the timer's next tick could (re-register the timer), else undefined.
   */
  bound(untilDueMs: number): number | undefined {
    let next = this.current;
    while (next > this.baseMs && next > untilDueMs) next = Math.max(this.baseMs, next / 2);
    return this.set(next);
  }

  /** Work arrived: the base period when the timer was slower (re-register it), else undefined. */
  wake(): number | undefined {
    return this.set(this.baseMs);
  }

  private set(next: number): number | undefined {
    if (next === this.current) return undefined;
    this.current = next;
    return next;
  }
}
