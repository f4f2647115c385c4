/**
 * A limit on how many lines one kind of log message may write: at most `perWindow` in each window of
 * `windowMs` (a fixed-window counter); the rest are counted, and the next line that is allowed carries
 * how many were suppressed since the last one. For messages that an outsider can trigger at will (dead
 * letters, events of unknown edges), so a flood costs a counter instead of a line per message.
 */
export interface LogLimiter {
  /** Whether to write this line now, and how many lines were suppressed before it (to put in its fields). */
  allow(): { ok: boolean; suppressed: number };
  /** Lines suppressed in total. */
  suppressedTotal(): number;
}

/** Creates a LogLimiter (defaults: 10 lines per 10 s); `now` is the clock in ms (default Date.now). */
export function createLogLimiter(
  o: { perWindow?: number; windowMs?: number; now?: () => number } = {},
): LogLimiter {
  const perWindow = o.perWindow ?? 10;
  const windowMs = o.windowMs ?? 10_000;
  const now = o.now ?? Date.now;
  let windowStart = -Infinity;
  let used = 0;
  let pending = 0;
  let total = 0;
  return {
    allow() {
      const t = now();
      if (t - windowStart >= windowMs) {
        windowStart = t;
        used = 0;
      }
      if (used >= perWindow) {
        pending++;
        total++;
        return { ok: false, suppressed: 0 };
      }
      used++;
      const suppressed = pending;
      pending = 0;
      return { ok: true, suppressed };
    },
    suppressedTotal: () => total,
  };
}
