/**
 * The lowest-speed limit of one chunk fetch: a fetch whose body arrives slower than `bytesPerSec` over the
 * last `windowMs` fails as `too-slow`, as curl's `--speed-limit/--speed-time` (CURLOPT_LOW_SPEED_LIMIT /
 * CURLOPT_LOW_SPEED_TIME) and aria2c's `--lowest-speed-limit` do. The stall timeout cannot see a source that
 * trickles (1 byte every 2 s keeps undici's bodyTimeout from ever firing); this can.
 *
 * Defaults: on, 1 KiB/s over 10 s. aria2c defaults to 0 (off) and curl to off; Portal turns it on because a
 * trickling source otherwise holds its chunks until the fetch deadline (up to 60 s, defaultTimeoutBounds.capMs)
 * and a run whose only source trickles never ends. The floor sits far below any link a user downloads over: the
 * throttled-mirror bench serves 2 MB/s, which shared by the most fetches one origin gets at once
 * (HTTP_CONNECTIONS_PER_ORIGIN, 16) is still ~122 KiB/s per fetch, 119× the floor; a 1 Mbit/s link shared by 16 fetches gives ~7.8 KiB/s
 * each. 1 byte every 2 s (the hostile-user trial) is 0.5 B/s. The 10 s window rides out TCP slow start,
 * retransmission timeouts (RFC 6298: initial RTO 1 s, doubled on each loss) and a server's GC pause, and is
 * below the stall timeout (DEFAULT_STALL_TIMEOUT_MS, 15 s), so a trickle ends sooner than a silence would.
 */
export const DEFAULT_LOWEST_SPEED_BYTES_PER_SEC = 1024;
/** Default window of the lowest-speed limit, ms (see DEFAULT_LOWEST_SPEED_BYTES_PER_SEC). */
export const DEFAULT_SPEED_TIME_MS = 10_000;
/**
 * How often the monitors of running fetches are sampled, ms: the window is measured to this precision (a fetch
 * fails between `windowMs` and `windowMs` + this after it fell below the floor). One shared timer serves every
 * fetch of a thread; a fetch that ends before its first sample costs no allocation.
 */
export const SPEED_SAMPLE_MS = 500;

/** What a monitor found too slow: bytes in the window and the window's length (ms). */
export interface TooSlow {
  bytes: number;
  ms: number;
}

/**
 * Watches one fetch's bytes. `arm(now)` starts (or restarts, on a retry) the window when the response begins;
 * `add(n)` counts bytes received; `sample(now)` records a point and returns what was too slow, if the rate over
 * the last ≥ `windowMs` is below `bytesPerSec`. Pure apart from its own state (the clock is passed in), so the
 * window math is tested without sleeping; `watch` runs it on a shared timer.
 */
export class LowestSpeedMonitor {
  /** Bytes counted since arm(). */
  bytes = 0;
  private armed = false;
  /** Ring of samples (t, bytes), oldest at `head`. */
  private t: Float64Array | undefined;
  private b: Float64Array | undefined;
  private head = 0;
  private len = 0;

  constructor(
    readonly bytesPerSec: number,
    readonly windowMs: number,
    private readonly sampleMs = SPEED_SAMPLE_MS,
  ) {}

  /** Starts the window at `now` (ms) with no bytes counted. */
  arm(now: number): void {
    this.armed = true;
    this.bytes = 0;
    this.head = 0;
    this.len = 0;
    this.push(now, 0);
  }

  /** Stops measuring until the next arm() (a fetch waiting for its turn, or between retries). */
  disarm(): void {
    this.armed = false;
  }

  /** Counts `n` bytes received. */
  add(n: number): void {
    this.bytes += n;
  }

  private push(now: number, bytes: number): void {
    if (!this.t) {
      const cap = Math.ceil(this.windowMs / this.sampleMs) + 3;
      this.t = new Float64Array(cap);
      this.b = new Float64Array(cap);
    }
    const cap = this.t.length;
    if (this.len === cap) {
      this.head = (this.head + 1) % cap;
      this.len--;
    }
    const i = (this.head + this.len) % cap;
    this.t[i] = now;
    this.b![i] = bytes;
    this.len++;
  }

  /**
   * Records a sample at `now` (ms) and returns the bytes and span of the window when the rate over it is below
   * the floor; undefined while unarmed, younger than `windowMs`, or fast enough. The window's base is the newest
   * sample at least `windowMs` old, so the rate is measured over [windowMs, windowMs + sample period].
   */
  sample(now: number): TooSlow | undefined {
    if (!this.armed) return undefined;
    this.push(now, this.bytes);
    const cap = this.t!.length;
    // drop samples while the next one is also old enough to be the base
    while (this.len > 1 && now - this.t![(this.head + 1) % cap] >= this.windowMs) {
      this.head = (this.head + 1) % cap;
      this.len--;
    }
    const ms = now - this.t![this.head];
    if (ms < this.windowMs) return undefined;
    const bytes = this.bytes - this.b![this.head];
    return (bytes * 1000) / ms < this.bytesPerSec ? { bytes, ms } : undefined;
  }
}

const watched = new Map<LowestSpeedMonitor, (slow: TooSlow) => void>();
let timer: ReturnType<typeof setInterval> | undefined;

function sampleAll(): void {
  const now = performance.now();
  for (const [m, onSlow] of watched) {
    const slow = m.sample(now);
    if (slow) {
      watched.delete(m);
      onSlow(slow);
    }
  }
  if (watched.size === 0 && timer) {
    clearInterval(timer);
    timer = undefined;
  }
}

/**
 * Samples `m` every SPEED_SAMPLE_MS on one timer shared by the thread (unref'd: it never keeps a process alive)
 * and calls `onSlow` once when it is too slow; returns the function that stops watching it. Never throws.
 */
export function watch(m: LowestSpeedMonitor, onSlow: (slow: TooSlow) => void): () => void {
  watched.set(m, onSlow);
  if (!timer) {
    timer = setInterval(sampleAll, SPEED_SAMPLE_MS);
    timer.unref();
  }
  return () => void watched.delete(m);
}

/** The fault's sentence: `under 1024 B/s for 10 s (3 bytes in the last 10.5 s)`. */
export function tooSlowDetail(m: LowestSpeedMonitor, slow: TooSlow): string {
  return `too slow: under ${m.bytesPerSec} B/s for ${m.windowMs / 1000} s (${slow.bytes} bytes in the last ${(slow.ms / 1000).toFixed(1)} s)`;
}
