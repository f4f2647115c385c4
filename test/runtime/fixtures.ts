import { Actor, typedProxy } from '../../runtime/index.js';

/** Ids from users' bug reports against URL-routed actor runtimes: each must be an actor of its own. */
export const AWKWARD_IDS = [
  'x',
  'x|',
  'x||y',
  '|',
  'a/b',
  'a%2Fb',
  '%41',
  'A',
  '.',
  '..',
  'q?x=1',
  'h#frag',
  '100%',
  'tab\there',
  'new\nline',
  '~',
  'é',
  '日本',
  ' ',
];

/** Services the test actors report to: an event log and a gate tests open when they choose. */
export interface TestServices {
  events: string[];
  gate: Gate;
}

/** A promise tests resolve by hand, to hold a turn open. */
export interface Gate {
  wait(): Promise<void>;
  open(): void;
}

/** Creates a closed gate; `open()` releases every waiter, now and later. */
export function createGate(): Gate {
  let release!: () => void;
  const p = new Promise<void>((resolve) => {
    release = resolve;
  });
  return { wait: () => p, open: () => release() };
}

/** Creates fresh services for one test. */
export function createTestServices(): TestServices {
  return { events: [], gate: createGate() };
}

/** Lets pending I/O callbacks and promise jobs run once. */
export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

abstract class Recording extends Actor<TestServices> {
  protected get svc(): TestServices {
    return this.ctx.services;
  }
  protected _record(event: string): void {
    this.svc.events.push(`${this.ctx.actorId}:${event}`);
  }
  override async onActivate(): Promise<void> {
    this._record('activate');
  }
  override async onDeactivate(): Promise<void> {
    this._record('deactivate');
  }
}

/** A counter whose increment reads, yields, then writes: it loses updates if turns interleave. */
export class Counter extends Recording {
  async increment(): Promise<number> {
    const n = (await this.ctx.state.get<number>('count')) ?? 0;
    await tick();
    await this.ctx.state.set('count', n + 1);
    return n + 1;
  }
  async get(): Promise<number> {
    return (await this.ctx.state.get<number>('count')) ?? 0;
  }
  async failAfterWrite(): Promise<void> {
    await this.ctx.state.set('count', 999);
    throw new Error('boom');
  }
  async callSelf(): Promise<number> {
    return typedProxy<Counter>(this.ctx.proxy('Counter', this.ctx.actorId)).invoke('get');
  }
  async callVia(otherId: string): Promise<number> {
    return typedProxy<Counter>(this.ctx.proxy('Counter', otherId)).invoke('callBack', this.ctx.actorId);
  }
  async callBack(callerId: string): Promise<number> {
    return typedProxy<Counter>(this.ctx.proxy('Counter', callerId)).invoke('get');
  }
  /** Whether a `hold` turn is in progress (an in-memory field). */
  private holding = false;
  async hold(): Promise<string> {
    this._record('hold-start');
    this.holding = true;
    await this.svc.gate.wait();
    this.holding = false;
    this._record('hold-end');
    return this.ctx.actorId;
  }
  /** Reads in-memory state only: it may run beside a turn in progress (mayInterleave). */
  async peek(): Promise<{ holding: boolean }> {
    return { holding: this.holding };
  }
  override mayInterleave(method: string): boolean {
    return method === 'peek';
  }
  async logSomething(): Promise<void> {
    this.ctx.log.info({ detail: 42 }, 'something happened');
  }
  async echo(arg: unknown): Promise<unknown> {
    return arg;
  }
  /** Writes any state key (actor-chosen keys may contain `|`). */
  async put(arg: { key: string; value: unknown }): Promise<void> {
    await this.ctx.state.set(arg.key, arg.value);
  }
  async read(key: string): Promise<unknown> {
    return (await this.ctx.state.get(key)) ?? null;
  }
  /** Its id as the actor sees it. */
  async whoAmI(): Promise<string> {
    return this.ctx.actorId;
  }

  async _secret(): Promise<string> {
    return 'secret';
  }
}

/** An actor driven by timers. */
export class Ticker extends Recording {
  async start(opts: { name?: string; dueMs: number; periodMs: number; block?: boolean }): Promise<void> {
    await this.ctx.registerTimer(opts.name ?? 'tick', {
      method: opts.block ? 'blockingTick' : 'onTick',
      dueMs: opts.dueMs,
      periodMs: opts.periodMs,
      data: { from: 'timer' },
    });
  }
  async stopTimer(name: string): Promise<void> {
    await this.ctx.unregisterTimer(name);
  }
  async onTick(data: { from: string }): Promise<void> {
    this._record(`tick:${data.from}`);
  }
  async blockingTick(): Promise<void> {
    this._record('tick-start');
    await this.svc.gate.wait();
    this._record('tick-end');
  }
  async badTimer(): Promise<void> {
    await this.ctx.registerTimer('bad', { method: 'toString', dueMs: 1, periodMs: 0 });
  }
}

/** An actor driven by durable reminders. */
export class Reminded extends Recording {
  async remind(opts: { name: string; dueMs: number; periodMs: number; data?: unknown }): Promise<void> {
    await this.ctx.registerReminder(opts.name, {
      dueMs: opts.dueMs,
      periodMs: opts.periodMs,
      data: opts.data,
    });
  }
  async forget(name: string): Promise<void> {
    await this.ctx.unregisterReminder(name);
  }
  /** Writes state key `note` and registers reminder `name` in one turn; throws after both when `fail` is set. */
  async noteAndRemind(opts: { note: string; name: string; dueMs: number; fail?: boolean }): Promise<void> {
    await this.ctx.state.set('note', opts.note);
    await this.ctx.registerReminder(opts.name, { dueMs: opts.dueMs, periodMs: 0 });
    if (opts.fail) throw new Error('noteAndRemind failed as asked');
  }
  async fired(): Promise<number> {
    return (await this.ctx.state.get<number>('fired')) ?? 0;
  }
  override async receiveReminder(name: string, data: unknown): Promise<void> {
    this._record(`reminder:${name}:${JSON.stringify(data)}`);
    await this.ctx.state.set('fired', ((await this.ctx.state.get<number>('fired')) ?? 0) + 1);
    if ((data as { unregister?: boolean } | null)?.unregister) await this.ctx.unregisterReminder(name);
  }
}
