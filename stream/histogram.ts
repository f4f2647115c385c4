/**
 * A log-bucketed histogram of non-negative values (latencies in ms): bucket i holds values in
 * [lo·g^i, lo·g^(i+1)) with g = 1 + `relativeError`·2, so any quantile it reports is within
 * `relativeError` of a value that was recorded. Constant memory, O(1) record, counts up to 2^53.
 */
export class LogHistogram {
  private readonly counts: Float64Array;
  private readonly logG: number;
  private total = 0;
  private sum_ = 0;
  private min_ = Infinity;
  private max_ = 0;
  private zeros = 0;

  constructor(
    private readonly lo = 1e-3,
    hi = 3_600_000,
    readonly relativeError = 0.01,
  ) {
    this.logG = Math.log(1 + 2 * relativeError);
    this.counts = new Float64Array(Math.ceil(Math.log(hi / lo) / this.logG) + 1);
  }

  /** Records `value` `n` times. Values below `lo` count as 0; above `hi`, in the last bucket. */
  record(value: number, n = 1): void {
    if (!(n > 0) || !(value >= 0)) return;
    this.total += n;
    this.sum_ += value * n;
    if (value < this.min_) this.min_ = value;
    if (value > this.max_) this.max_ = value;
    if (value < this.lo) {
      this.zeros += n;
      return;
    }
    const i = Math.min(this.counts.length - 1, Math.floor(Math.log(value / this.lo) / this.logG));
    this.counts[i] += n;
  }

  get count(): number {
    return this.total;
  }
  get sum(): number {
    return this.sum_;
  }
  get mean(): number {
    return this.total ? this.sum_ / this.total : 0;
  }
  get min(): number {
    return this.total ? this.min_ : 0;
  }
  get max(): number {
    return this.max_;
  }

  /** The value at quantile `q` ∈ [0, 1] (bucket midpoint, clamped to the recorded min/max); 0 when empty. */
  quantile(q: number): number {
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = this.zeros;
    if (seen >= rank) return this.min_;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i];
      if (seen >= rank) {
        const mid = this.lo * Math.exp(this.logG * (i + 0.5));
        return Math.min(this.max_, Math.max(this.min_, mid));
      }
    }
    return this.max_;
  }

  /** Cumulative counts at each `le` bound (Prometheus buckets; a bucket counts once its upper edge is ≤ the bound), then the total. */
  cumulative(bounds: readonly number[]): number[] {
    const out: number[] = [];
    for (const bound of bounds) {
      let c = this.zeros;
      for (
        let i = 0;
        i < this.counts.length && this.lo * Math.exp(this.logG * (i + 1)) <= bound * (1 + 1e-9);
        i++
      )
        c += this.counts[i];
      out.push(c);
    }
    out.push(this.total);
    return out;
  }

  reset(): void {
    this.counts.fill(0);
    this.total = 0;
    this.sum_ = 0;
    this.min_ = Infinity;
    this.max_ = 0;
    this.zeros = 0;
  }
}

/**
 * Items per second over the last `windowMs` (default 10 s), from `slots` fixed time slots, as seed
 * the sliding window: items recorded at clock time `t` count until `t + windowMs`. Before a full window has
 * passed since `start`, the rate is over the time elapsed (at least one slot).
 */
export class SlidingWindowRate {
  private readonly slotMs: number;
  private readonly counts: Float64Array;
  private readonly stamps: Float64Array;

  constructor(
    private readonly start: number,
    readonly windowMs = 10_000,
    slots = 100,
  ) {
    this.slotMs = windowMs / slots;
    this.counts = new Float64Array(slots);
    this.stamps = new Float64Array(slots).fill(-1);
  }

  record(n: number, now: number): void {
    const k = Math.floor((now - this.start) / this.slotMs);
    const i = k % this.counts.length;
    if (this.stamps[i] !== k) {
      this.stamps[i] = k;
      this.counts[i] = 0;
    }
    this.counts[i] += n;
  }

  /** Items per second at clock time `now`. */
  rate(now: number): number {
    const k = Math.floor((now - this.start) / this.slotMs);
    const slots = this.counts.length;
    let sum = 0;
    for (let i = 0; i < slots; i++)
      if (this.stamps[i] > k - slots && this.stamps[i] <= k) sum += this.counts[i];
    const span = Math.min(this.windowMs, Math.max(this.slotMs, now - this.start));
    return sum / (span / 1000);
  }
}
