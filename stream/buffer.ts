import { PortalError } from '../common/errors.js';
import type { Clock } from '../common/clock.js';
import type { BackpressureConfig } from './config.js';

/**
 * What a producer hands in with its records: settled once every record of the push has a final
 * outcome (processed and published, failed and reported, or dropped). The JetStream source acks its
 * message there, so nothing is acknowledged before its outcome is out.
 */
export interface PushTicket {
  /** Records of the push without an outcome yet. */
  remaining: number;
  /** Called once, when `remaining` reaches 0. */
  onSettled?: () => void;
  /** Set when some record of the push could not be delivered anywhere (the source must not ack it). */
  lost?: boolean;
}

interface Segment {
  ticket: PushTicket;
  bytes: Uint8Array;
  count: number;
  /** Records handed to batches or dropped, from the front. */
  taken: number;
  enqueuedAt: number;
}

/** A range of one push's records inside a batch. */
export interface BatchPart {
  ticket: PushTicket;
  count: number;
  enqueuedAt: number;
}

/** Records taken from the buffer for one batch: contiguous bytes plus where they came from. */
export interface TakenBatch {
  bytes: Uint8Array;
  count: number;
  parts: BatchPart[];
}

/** Counters of the buffer (fed into StreamProcessingMetrics). */
export interface BufferStats {
  size: number;
  capacity: number;
  paused: boolean;
  pauseCount: number;
  pauseDurationMs: number;
  dropped: number;
  /** Pushes that had to wait for space (block mode). */
  blockedPushes: number;
  /** Most records ever held at once. */
  highWater: number;
}

/** Settles `n` records of `ticket`. */
export function settle(ticket: PushTicket, n: number): void {
  ticket.remaining -= n;
  if (ticket.remaining === 0) ticket.onSettled?.();
}

/**
 * The bounded buffer of the stream processor, holding fixed-size records as the byte segments they arrived in
 * (no per-record objects). It pauses at `pauseThreshold` × capacity and resumes at
 * `resumeThreshold` × capacity — sources ask `paused`/`whenResumed()` before they pull. When full it
 * either drops the oldest records (counted in `dropped`, their tickets settled) or makes `push` wait
 * for space (nothing dropped). `push` rejects with PORTAL_STREAM_STOPPED once `close()` ran.
 */
export class BackpressureBuffer {
  private readonly segs: Segment[] = [];
  private head = 0;
  private size_ = 0;
  private paused_ = false;
  private pausedAt = 0;
  private readonly st = { pauseCount: 0, pauseDurationMs: 0, dropped: 0, blockedPushes: 0, highWater: 0 };
  private spaceWaiters: Array<() => void> = [];
  private dataWaiters: Array<() => void> = [];
  private resumeWaiters: Array<() => void> = [];
  private closed = false;
  private readonly pauseAt: number;
  private readonly resumeAt: number;
  /** Called on every pause (true) and resume (false). */
  onPauseChange?: (paused: boolean) => void;

  constructor(
    readonly cfg: BackpressureConfig,
    readonly recordBytes: number,
    private readonly clock: Clock,
  ) {
    this.pauseAt = Math.max(1, Math.ceil(cfg.bufferCapacity * cfg.pauseThreshold));
    this.resumeAt = Math.floor(cfg.bufferCapacity * cfg.resumeThreshold);
  }

  get size(): number {
    return this.size_;
  }
  get capacity(): number {
    return this.cfg.bufferCapacity;
  }
  get paused(): boolean {
    return this.paused_;
  }
  /** Records a source may still add before the buffer pauses. */
  get roomBeforePause(): number {
    return Math.max(0, this.pauseAt - this.size_);
  }
  /** Enqueue time of the oldest record held, or undefined when empty. */
  get oldestAt(): number | undefined {
    return this.head < this.segs.length ? this.segs[this.head].enqueuedAt : undefined;
  }

  stats(): BufferStats {
    const open = this.paused_ ? this.clock.now() - this.pausedAt : 0;
    return {
      size: this.size_,
      capacity: this.cfg.bufferCapacity,
      paused: this.paused_,
      ...this.st,
      pauseDurationMs: this.st.pauseDurationMs + open,
    };
  }

  /**
   * Adds whole records. Drop-oldest mode returns at once (dropping what does not fit, oldest first);
   * block mode resolves once every record is inside, waiting for space as batches drain it.
   */
  async push(
    bytes: Uint8Array,
    ticket: PushTicket = { remaining: bytes.byteLength / this.recordBytes },
  ): Promise<void> {
    if (this.closed) throw new PortalError('PORTAL_STREAM_STOPPED', 'the stream buffer is closed');
    const rb = this.recordBytes;
    let n = bytes.byteLength / rb;
    if (n === 0) return;
    const cap = this.cfg.bufferCapacity;
    if (this.cfg.dropOldestOnFull) {
      if (n > cap) {
        // the push alone overflows: its own oldest records go
        const cut = n - cap;
        this.st.dropped += cut;
        settle(ticket, cut);
        bytes = bytes.subarray(cut * rb);
        n = cap;
      }
      const over = this.size_ + n - cap;
      if (over > 0) this.dropOldest(over);
      this.append(ticket, bytes, n);
      return;
    }
    let off = 0;
    let waited = false;
    while (off < n) {
      let free = cap - this.size_;
      while (free <= 0) {
        if (!waited) {
          waited = true;
          this.st.blockedPushes++;
        }
        await new Promise<void>((r) => this.spaceWaiters.push(r));
        if (this.closed)
          throw new PortalError(
            'PORTAL_STREAM_STOPPED',
            'the stream buffer closed while a push waited for space',
          );
        free = cap - this.size_;
      }
      const k = Math.min(free, n - off);
      this.append(ticket, bytes.subarray(off * rb, (off + k) * rb), k);
      off += k;
    }
  }

  /** Takes up to `max` records, oldest first, copied into one contiguous array. */
  take(max: number): TakenBatch {
    const rb = this.recordBytes;
    const count = Math.min(max, this.size_);
    const out = new Uint8Array(count * rb);
    const parts: BatchPart[] = [];
    let filled = 0;
    while (filled < count) {
      const s = this.segs[this.head];
      const k = Math.min(s.count - s.taken, count - filled);
      out.set(s.bytes.subarray(s.taken * rb, (s.taken + k) * rb), filled * rb);
      parts.push({ ticket: s.ticket, count: k, enqueuedAt: s.enqueuedAt });
      s.taken += k;
      filled += k;
      if (s.taken === s.count) this.shift();
    }
    this.size_ -= count;
    this.afterDrain();
    return { bytes: out, count, parts };
  }

  /** Resolves when the buffer holds at least `n` records, or at `deadline` (clock time), or on close. */
  waitForData(n: number, deadline?: number): Promise<void> {
    if (this.size_ >= n || this.closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let timer: ReturnType<Clock['setTimeout']> | undefined;
      const check = (): void => {
        if (this.size_ >= n || this.closed) {
          if (timer) this.clock.clearTimeout(timer);
          resolve();
        } else this.dataWaiters.push(check);
      };
      if (deadline !== undefined)
        timer = this.clock.setTimeout(() => {
          const i = this.dataWaiters.indexOf(check);
          if (i >= 0) this.dataWaiters.splice(i, 1);
          resolve();
        }, deadline - this.clock.now());
      this.dataWaiters.push(check);
    });
  }

  /** Resolves once the buffer is not paused (at once when it is not). */
  whenResumed(): Promise<void> {
    if (!this.paused_ || this.closed) return Promise.resolve();
    return new Promise<void>((r) => this.resumeWaiters.push(r));
  }

  /** Wakes every waiter; later pushes reject. Records still held stay for `take`. */
  close(): void {
    this.closed = true;
    this.wake('space');
    this.wake('data');
    this.wake('resume');
  }

  private append(ticket: PushTicket, bytes: Uint8Array, n: number): void {
    this.segs.push({ ticket, bytes, count: n, taken: 0, enqueuedAt: this.clock.now() });
    this.size_ += n;
    if (this.size_ > this.st.highWater) this.st.highWater = this.size_;
    if (!this.paused_ && this.size_ >= this.pauseAt) {
      this.paused_ = true;
      this.pausedAt = this.clock.now();
      this.st.pauseCount++;
      this.onPauseChange?.(true);
    }
    this.wake('data');
  }

  private dropOldest(n: number): void {
    let left = n;
    while (left > 0) {
      const s = this.segs[this.head];
      const k = Math.min(s.count - s.taken, left);
      s.taken += k;
      left -= k;
      settle(s.ticket, k);
      if (s.taken === s.count) this.shift();
    }
    this.size_ -= n;
    this.st.dropped += n;
  }

  private shift(): void {
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.segs.length) {
      this.segs.splice(0, this.head);
      this.head = 0;
    }
  }

  private afterDrain(): void {
    if (this.paused_ && this.size_ <= this.resumeAt) {
      this.paused_ = false;
      this.st.pauseDurationMs += this.clock.now() - this.pausedAt;
      this.wake('resume');
      this.onPauseChange?.(false);
    }
    this.wake('space');
  }

  private wake(which: 'space' | 'data' | 'resume'): void {
    const key = which === 'space' ? 'spaceWaiters' : which === 'data' ? 'dataWaiters' : 'resumeWaiters';
    const ws = this[key];
    if (ws.length === 0) return;
    this[key] = [];
    for (const w of ws) w();
  }
}
