/** A bounded FIFO of the last `capacity` items (oldest evicted first); `push` returns the evicted item. */
export class Ring<T> {
  private readonly items: T[] = [];
  private head = 0;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.items.length;
  }

  push(v: T): T | undefined {
    if (this.items.length < this.capacity) {
      this.items.push(v);
      return undefined;
    }
    const old = this.items[this.head];
    this.items[this.head] = v;
    this.head = (this.head + 1) % this.capacity;
    return old;
  }

  /** Items oldest first. */
  toArray(): T[] {
    return this.items.length < this.capacity
      ? this.items.slice()
      : [...this.items.slice(this.head), ...this.items.slice(0, this.head)];
  }

  /** The last `n` items, oldest first. */
  last(n: number): T[] {
    const all = this.toArray();
    return all.slice(Math.max(0, all.length - n));
  }
}
