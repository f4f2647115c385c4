import { Actor } from './types.js';

/** Per process: the most turns of one ProbeActor that overlapped (turn-based concurrency check). */
const overlap = { running: new Map<string, number>(), max: 0 };

/** Per process: activations of each ProbeActor id (timers must not re-activate an actor). */
const activations = new Map<string, number>();

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

  /** Answers the argument as the host handed it over, with its JavaScript type (body parsing checks). */
  async echo(arg?: unknown): Promise<{ arg: unknown; type: string }> {
    return { arg: arg === undefined ? '(none)' : arg, type: arg === null ? 'null' : typeof arg };
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

  override async onActivate(): Promise<void> {
    activations.set(this.ctx.actorId, (activations.get(this.ctx.actorId) ?? 0) + 1);
  }

  override async receiveReminder(name: string, data: unknown): Promise<void> {
    const counted = data as { count?: boolean; unregister?: boolean } | null;
    if (counted?.count) {
      await this._bump('reminderFires', name);
      if (counted.unregister) await this.ctx.unregisterReminder(name);
      return;
    }
    await this.ctx.state.set('reminded', { name, data, pid: process.pid });
    await this.ctx.unregisterReminder(name).catch(() => undefined);
  }

  /** Registers reminder `name` whose executions are counted (see counts); with `unregister` it removes itself. */
  async remindCount(arg: {
    name: string;
    dueMs: number;
    periodMs?: number;
    unregister?: boolean;
  }): Promise<null> {
    await this.ctx.registerReminder(arg.name, {
      dueMs: arg.dueMs,
      periodMs: arg.periodMs ?? 0,
      data: { count: true, unregister: arg.unregister === true },
    });
    return null;
  }

  /** Registers timer `name` (one-shot unless periodMs) whose executions are counted (see counts). */
  async timerCount(arg: { name: string; dueMs: number; periodMs?: number }): Promise<null> {
    await this.ctx.registerTimer(arg.name, {
      method: 'timerFired',
      dueMs: arg.dueMs,
      periodMs: arg.periodMs ?? 0,
      data: arg.name,
    });
    return null;
  }

  /** Timer callback of timerCount. */
  async timerFired(name: string): Promise<void> {
    await this._bump('timerFires', name);
  }

  /** Reminder and timer executions, and activations of this id in this process. */
  async counts(): Promise<{
    reminderFires: Record<string, number>;
    timerFires: Record<string, number>;
    activations: number;
  }> {
    return {
      reminderFires: (await this.ctx.state.get<Record<string, number>>('reminderFires')) ?? {},
      timerFires: (await this.ctx.state.get<Record<string, number>>('timerFires')) ?? {},
      activations: activations.get(this.ctx.actorId) ?? 0,
    };
  }

  /** Its id as the actor sees it. */
  async whoAmI(): Promise<string> {
    return this.ctx.actorId;
  }

  /** Writes any state key (keys may contain `|`, `/`, `?`). */
  async put(arg: { key: string; value: unknown }): Promise<null> {
    await this.ctx.state.set(arg.key, arg.value);
    return null;
  }

  /** Reads any state key (null when absent). */
  async read(key: string): Promise<unknown> {
    return (await this.ctx.state.get(key)) ?? null;
  }

  /** A turn that does not end for `ms` milliseconds (drain on shutdown). */
  async hang(ms: number): Promise<null> {
    await new Promise((r) => setTimeout(r, ms));
    return null;
  }

  /** Calls ProbeActor `id`, which calls this actor back: A -> B -> A must be refused, not deadlock. */
  async callVia(id: string): Promise<string> {
    return (await this.ctx.proxy('ProbeActor', id).invoke('callBack', this.ctx.actorId)) as string;
  }

  /** Calls `callerId` (the second hop of callVia); answers the error code it got. */
  async callBack(callerId: string): Promise<string> {
    try {
      await this.ctx.proxy('ProbeActor', callerId).invoke('noop');
      return 'no error';
    } catch (err) {
      return (err as { code?: string }).code ?? String(err);
    }
  }

  private async _bump(key: string, name: string): Promise<void> {
    const counts = (await this.ctx.state.get<Record<string, number>>(key)) ?? {};
    counts[name] = (counts[name] ?? 0) + 1;
    await this.ctx.state.set(key, counts);
  }
}
