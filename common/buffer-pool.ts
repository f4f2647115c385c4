/**
 * A free list of large Buffers reused so a steady stream of chunk-sized reads or receives allocates nothing:
 * each chunk-sized Buffer.allocUnsafe is an external ArrayBuffer that V8 only frees on a garbage collection, and
 * a stream of them drives the collections that pause the thread (10–20 ms stretches in profiles of the content
 * server and the data threads). `take(n)` answers a kept buffer of n to 2n bytes (callers use `subarray(0, n)`)
 * or a new one; `give(b)` keeps it for reuse, up to `max` buffers (the rest are left to the collector). A buffer
 * must be given back only once nothing reads or writes it any more (after a socket write's callback).
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private made = 0;

  /** @param max buffers kept at most (default 8) */
  constructor(private readonly max = 8) {}

  /** A buffer of at least `length` bytes (at most 2 × length when reused). */
  take(length: number): Buffer {
    for (let i = 0; i < this.free.length; i++) {
      const b = this.free[i];
      if (b.length >= length && b.length <= 2 * length) {
        this.free.splice(i, 1);
        return b;
      }
    }
    this.made++;
    return Buffer.allocUnsafeSlow(length);
  }

  /** Buffers `take` has allocated so far (those it did not find free). */
  get allocated(): number {
    return this.made;
  }

  /** Keeps `b` for a later take (dropped when `max` are kept already). */
  give(b: Buffer): void {
    if (this.free.length < this.max) this.free.push(b);
  }

  /** Buffers kept now. */
  get size(): number {
    return this.free.length;
  }
}
