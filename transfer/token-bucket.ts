import { createSystemClock, type Clock, type TimerHandle } from '../common/clock.js';
import { PortalError } from '../common/errors.js';

/** A bandwidth cap: tokens are bytes, refilled at `rate` per second up to `burst`. */
export interface TokenBucket {
  /** Bytes per second. */
  readonly rate: number;
  /** Most tokens the bucket holds (the largest instantaneous burst). */
  readonly burst: number;
  /**
   * Resolves once `n` bytes may be sent. Waiters are served first-come first-served; a request larger
   * than `burst` waits for a full bucket and then drives it into debt, so the long-run rate stays exact.
   * Rejects with PORTAL_CANCELLED when `signal` aborts and PORTAL_INVALID_ARGUMENT for a bad `n`.
   */
  take(n: number, signal?: AbortSignal): Promise<void>;
  /** Takes `n` tokens now if possible (never when others are waiting); never throws for valid `n`. */
  tryTake(n: number): boolean;
  /** Tokens available now (negative while in debt). */
  available(): number;
  /** Number of callers waiting in take(). */
  waiting(): number;
}

/** Options for createTokenBucket. */
export interface TokenBucketOptions {
  rateBytesPerSec: number;
  /** Default: the larger of 64 KiB and 50 ms worth of rate. The bucket starts full. */
  burstBytes?: number;
  clock?: Clock;
}

interface Waiter {
  n: number;
  resolve: () => void;
  reject: (e: unknown) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** Creates a token bucket driven by `clock` (ManualClock in tests); throws PORTAL_INVALID_ARGUMENT for a non-positive rate or burst. */
export function createTokenBucket(opts: TokenBucketOptions): TokenBucket {
  const rate = opts?.rateBytesPerSec;
  if (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `rateBytesPerSec: expected a positive finite number, got ${String(rate)}`,
    );
  const burst = opts.burstBytes ?? Math.max(64 * 1024, Math.ceil(rate / 20));
  if (typeof burst !== 'number' || !Number.isFinite(burst) || burst <= 0)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `burstBytes: expected a positive finite number, got ${String(burst)}`,
    );
  const clock = opts.clock ?? createSystemClock();
  let tokens = burst;
  let last = clock.now();
  const queue: Waiter[] = [];
  let timer: TimerHandle | null = null;

  const refill = (): void => {
    const now = clock.now();
    if (now > last) {
      tokens = Math.min(burst, tokens + ((now - last) * rate) / 1000);
      last = now;
    }
  };

  const pump = (): void => {
    refill();
    while (queue.length > 0) {
      const w = queue[0];
      const need = Math.min(w.n, burst);
      if (tokens + 1e-9 < need) break;
      queue.shift();
      tokens -= w.n;
      if (w.signal && w.onAbort) w.signal.removeEventListener('abort', w.onAbort);
      w.resolve();
    }
    if (timer) {
      clock.clearTimeout(timer);
      timer = null;
    }
    if (queue.length > 0) {
      const need = Math.min(queue[0].n, burst);
      const waitMs = Math.max(1, Math.ceil(((need - tokens) * 1000) / rate));
      timer = clock.setTimeout(() => {
        timer = null;
        pump();
      }, waitMs);
    }
  };

  const checkN = (n: number): void => {
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0)
      throw new PortalError(
        'PORTAL_INVALID_ARGUMENT',
        `n: expected a non-negative finite number, got ${String(n)}`,
      );
  };

  return {
    rate,
    burst,
    take(n, signal) {
      try {
        checkN(n);
      } catch (e) {
        return Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
      if (signal?.aborted)
        return Promise.reject(
          new PortalError('PORTAL_CANCELLED', 'token bucket take aborted', { cause: signal.reason }),
        );
      if (n === 0) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const w: Waiter = { n, resolve, reject, signal };
        if (signal) {
          w.onAbort = () => {
            const i = queue.indexOf(w);
            if (i >= 0) {
              queue.splice(i, 1);
              reject(
                new PortalError('PORTAL_CANCELLED', 'token bucket take aborted', { cause: signal.reason }),
              );
              pump();
            }
          };
          signal.addEventListener('abort', w.onAbort, { once: true });
        }
        queue.push(w);
        pump();
      });
    },
    tryTake(n) {
      checkN(n);
      refill();
      if (queue.length > 0 || tokens + 1e-9 < Math.min(n, burst)) return false;
      tokens -= n;
      return true;
    },
    available() {
      refill();
      return tokens;
    },
    waiting() {
      return queue.length;
    },
  };
}
