import { Actor } from './types.js';

/** Per process: the most turns of one ProbeActor that overlapped (turn-based concurrency check). */
const overlap = { running: new Map<string, number>(), max: 0 };

/**
 * A test and benchmark actor (registered by `portal serve` only with PORTAL_TEST_ACTORS=1): a no-op method,
 * a read-modify-write that yields between its read and its write (lost updates if two turns interleave), and
 * a report of where it runs and how many of its turns ever overlapped in this process.
 */
export class ProbeActor extends Actor {
  /** Does nothing (invocation overhead). */
  async noop(): Promise<null> {
    return null;
  }

  /** Reads the counter, waits `delayMs`, writes counter + 1; returns the new value. */
  async slowIncrement(arg?: { delayMs?: number }): Promise<{ value: number; pid: number }> {
    const key = this.ctx.actorId;
    const now = (overlap.running.get(key) ?? 0) + 1;
    overlap.running.set(key, now);
    overlap.max = Math.max(overlap.max, now);
    try {
      const value = (await this.ctx.state.get<{ n: number }>('counter'))?.n ?? 0;
      await new Promise((r) => setTimeout(r, arg?.delayMs ?? 20));
      await this.ctx.state.set('counter', { n: value + 1 });
      return { value: value + 1, pid: process.pid };
    } finally {
      overlap.running.set(key, (overlap.running.get(key) ?? 1) - 1);
    }
  }

  /** The stored counter, this process's id and the overlap seen in it. */
  async info(): Promise<{ value: number; pid: number; maxOverlap: number }> {
    return {
      value: (await this.ctx.state.get<{ n: number }>('counter'))?.n ?? 0,
      pid: process.pid,
      maxOverlap: overlap.max,
    };
  }

  /** Calls itself through its own proxy: must reject (it would deadlock on the actor lock). */
  async callSelf(): Promise<string> {
    try {
      await this.ctx.proxy('ProbeActor', this.ctx.actorId).invoke('noop');
      return 'no error';
    } catch (err) {
      return (err as { code?: string }).code ?? String(err);
    }
  }

  /** Throws after setting state: the change must be rolled back. */
  async failAfterSet(): Promise<never> {
    await this.ctx.state.set('counter', { n: -1 });
    throw new Error('probe failure');
  }

  /** Starts a one-shot reminder that records its name and data in state (reminder plumbing). */
  async remindMe(arg: { name: string; dueMs: number; data?: unknown }): Promise<null> {
    await this.ctx.registerReminder(arg.name, { dueMs: arg.dueMs, periodMs: 0, data: arg.data });
    return null;
  }

  /** What receiveReminder recorded. */
  async reminded(): Promise<{ name: string; data: unknown; pid: number } | null> {
    return (await this.ctx.state.get<{ name: string; data: unknown; pid: number }>('reminded')) ?? null;
  }

  override async receiveReminder(name: string, data: unknown): Promise<void> {
    await this.ctx.state.set('reminded', { name, data, pid: process.pid });
    await this.ctx.unregisterReminder(name).catch(() => undefined);
  }
}
