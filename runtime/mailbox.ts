/** A unit of work run by a Mailbox; it must handle its own errors. */
export type Job = () => Promise<void>;

/**
 * A FIFO queue that runs one job at a time: the turn-based concurrency of one actor. `post` starts the job at
 * once when the mailbox is idle. A job that rejects anyway is reported to `onJobError` and the queue goes on.
 */
export class Mailbox {
  private queue: Array<Job | undefined> = [];
  private head = 0;
  private running = false;
  private waiters: Array<() => void> = [];

  constructor(private readonly onJobError: (err: unknown) => void) {}

  /** True while a job is running or queued. */
  get busy(): boolean {
    return this.running;
  }

  /** Jobs queued and not yet started. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  /** Appends a job; it runs after every job posted before it has finished. */
  post(job: Job): void {
    this.queue.push(job);
    if (!this.running) void this.drain();
  }

  /** Resolves when no job is running or queued. */
  whenIdle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.head < this.queue.length) {
      const job = this.queue[this.head]!;
      this.queue[this.head++] = undefined;
      try {
        await job();
      } catch (err) {
        this.onJobError(err);
      }
    }
    this.queue = [];
    this.head = 0;
    this.running = false;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
