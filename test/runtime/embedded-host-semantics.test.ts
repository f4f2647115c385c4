import { jest } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock, MAX_TIMER_MS, createSystemClock } from '../../common/clock.js';
import { isPortalError } from '../../common/errors.js';
import {
  createEmbeddedHost,
  createFileStateStore,
  createMemoryStateStore,
  type EmbeddedHost,
  type StateStore,
} from '../../runtime/index.js';
import { decodeActorId, encodeActorId } from '../../runtime/state-keys.js';
import {
  AWKWARD_IDS,
  Counter,
  Reminded,
  Ticker,
  createTestServices,
  tick,
  type TestServices,
} from './fixtures.js';

// actor ids, drain on stop, delays above 2^31-1 ms on the embedded host.

const DAY = 24 * 3600_000;

let svc: TestServices;
let hosts: EmbeddedHost<TestServices>[];
let dirs: string[];

beforeEach(() => {
  svc = createTestServices();
  hosts = [];
  dirs = [];
});

afterEach(async () => {
  svc.gate.open();
  for (const h of hosts) await h.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function newHost(o: {
  store?: StateStore;
  clock?: ManualClock;
  drainTimeoutMs?: number;
  callTimeoutMs?: number;
}): EmbeddedHost<TestServices> {
  const host = createEmbeddedHost({
    store: o.store ?? createMemoryStateStore(),
    clock: o.clock,
    drainTimeoutMs: o.drainTimeoutMs,
    callTimeoutMs: o.callTimeoutMs,
    services: svc,
  });
  host.register(Counter);
  host.register(Ticker);
  host.register(Reminded);
  hosts.push(host);
  return host;
}

describe('actor ids', () => {
  test('the wire form of an id is injective, needs no escaping and decodes back', () => {
    const wires = AWKWARD_IDS.map(encodeActorId);
    expect(new Set(wires).size).toBe(AWKWARD_IDS.length);
    for (const [i, w] of wires.entries()) {
      expect(w).toMatch(/^[A-Za-z0-9._~-]+$/);
      expect(w).not.toContain('|');
      expect(w === '.' || w === '..').toBe(false);
      expect(decodeActorId(w)).toBe(AWKWARD_IDS[i]);
    }
    expect(encodeActorId('transfer-1_a.b')).toBe('transfer-1_a.b'); // plain ids are stored as they are
    expect(decodeActorId('~QQ')).toBeUndefined(); // "A" in disguise is not a wire form
    expect(decodeActorId('a|b')).toBeUndefined();
  });

  test('every string is its own actor on the embedded host, and sees its own id', async () => {
    const host = newHost({});
    for (const id of AWKWARD_IDS) expect(await host.proxy('Counter', id).invoke('increment')).toBe(1);
    for (const id of AWKWARD_IDS) {
      expect(await host.proxy('Counter', id).invoke('get')).toBe(1);
      expect(await host.proxy('Counter', id).invoke('whoAmI')).toBe(id);
    }
  });

  test('an id ending in | cannot read a key another actor wrote as |secret', async () => {
    const store = createMemoryStateStore();
    const host = newHost({ store });
    await host.proxy('Counter', 'x').invoke('put', { key: '|secret', value: 'for x only' });
    expect(await host.proxy('Counter', 'x|').invoke('read', 'secret')).toBeNull();
    expect(await host.proxy('Counter', 'x').invoke('read', '|secret')).toBe('for x only');
    // and in the store the two actors' keys do not share a prefix
    const xKeys = await store.keys('Counter||x||');
    expect(xKeys).toEqual(['Counter||x|||secret']);
  });

  test('reminders of ids with | / % . and newlines survive a restart of the host', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portal-ids-'));
    dirs.push(dir);
    const clock = new ManualClock();
    const ids = ['x|', 'a/b', '%41', '..', 'new\nline', 'x||y'];
    const first = newHost({ store: createFileStateStore(dir), clock });
    for (const id of ids)
      await first.proxy('Reminded', id).invoke('remind', { name: 'r', dueMs: 1000, periodMs: 0, data: id });
    await first.stop();

    const second = newHost({ store: createFileStateStore(dir), clock });
    await second.ready();
    clock.advance(1000);
    await second.settle();
    for (const id of ids) {
      expect(svc.events).toContain(`${id}:reminder:r:${JSON.stringify(id)}`);
      expect(await second.proxy('Reminded', id).invoke('fired')).toBe(1);
    }
  });

  test('ids that cannot be carried are refused with PORTAL_INVALID_ARGUMENT, types must be identifiers', () => {
    const host = newHost({});
    // MAX_ACTOR_ID_BYTES: 256 bytes of UTF-8, not characters (86 "€" are 258 bytes)
    expect(() => host.proxy('Counter', 'x'.repeat(256))).not.toThrow();
    expect(() => host.proxy('Counter', `${'€'.repeat(85)}x`)).not.toThrow();
    for (const bad of ['', 'a\uD800b', 'x'.repeat(257), '€'.repeat(86), 42 as unknown as string]) {
      let caught: unknown;
      try {
        host.proxy('Counter', bad);
      } catch (err) {
        caught = err;
      }
      expect(isPortalError(caught, 'PORTAL_INVALID_ARGUMENT')).toBe(true);
    }
    expect(() => host.proxy('Counter|', 'a')).toThrow(/actorType/);
    expect(() => host.proxy('Coun/ter', 'a')).toThrow(/actorType/);
  });
});

describe('interleaved calls (Actor.mayInterleave)', () => {
  test('a call the actor lets interleave answers while a turn is held open; the others wait for it', async () => {
    const host = newHost({});
    const a = host.proxy('Counter', 'a');
    expect(await a.invoke('increment')).toBe(1);
    const held = a.invoke('hold');
    await tick();
    // beside the held turn: it sees the turn's in-memory state, and the gate is still closed
    expect(await a.invoke('peek')).toEqual({ holding: true });
    let got: number | undefined;
    const get = a.invoke('get').then((n) => (got = n as number));
    await tick();
    await tick();
    expect(got).toBeUndefined(); // a call that does not interleave waits for the held turn
    svc.gate.open();
    await held;
    await get;
    expect(got).toBe(1);
    expect(await a.invoke('peek')).toEqual({ holding: false });
  });

  test('an inactive actor is activated by a turn first; mayInterleave itself cannot be invoked', async () => {
    const host = newHost({});
    expect(await host.proxy('Counter', 'b').invoke('peek')).toEqual({ holding: false });
    expect(svc.events).toEqual(['b:activate']);
    const err = await host
      .proxy('Counter', 'b')
      .invoke('mayInterleave', 'peek')
      .catch((e: unknown) => e);
    expect(isPortalError(err) && err.code).toBe('PORTAL_UNKNOWN_ACTOR_METHOD');
  });
});

describe('timers and reminders', () => {
  test('a reminder that unregisters itself in its callback runs once per due time', async () => {
    const clock = new ManualClock();
    const host = newHost({ clock });
    const ids = Array.from({ length: 20 }, (_, i) => `r${i}`);
    for (const id of ids)
      await host
        .proxy('Reminded', id)
        .invoke('remind', { name: 'once', dueMs: 500, periodMs: 1000, data: { unregister: true } });
    for (let t = 0; t < 5000; t += 100) {
      clock.advance(100);
      await host.settle();
    }
    for (const id of ids) expect(await host.proxy('Reminded', id).invoke('fired')).toBe(1);
  });

  test('a timer dies with its activation: an idle-deactivated actor is not re-activated by it', async () => {
    const clock = new ManualClock();
    const host = createEmbeddedHost({
      store: createMemoryStateStore(),
      clock,
      idleTimeoutMs: 2000,
      idleScanMs: 500,
      services: svc,
    });
    hosts.push(host);
    host.register(Ticker);
    await host.proxy('Ticker', 't').invoke('start', { dueMs: 6000, periodMs: 0 });
    for (let t = 0; t < 9000; t += 100) {
      clock.advance(100);
      await host.settle();
    }
    expect(svc.events).toEqual(['t:activate', 't:deactivate']);
    expect(host.stats()).toMatchObject({ activations: 1, timersFired: 0 });
  });
});

describe('drain on stop', () => {
  test('stop() resolves after the drain timeout when a turn never ends, releasing its callers', async () => {
    const clock = new ManualClock();
    const host = newHost({ clock, drainTimeoutMs: 5000, callTimeoutMs: 3_600_000 });
    const stuck = host.proxy('Counter', 'stuck').invoke('hold');
    const queued = host.proxy('Counter', 'stuck').invoke('get');
    const idle = host.proxy('Counter', 'idle');
    await idle.invoke('increment');
    stuck.catch(() => undefined);
    queued.catch(() => undefined);
    await new Promise((r) => setImmediate(r));
    expect(svc.events).toContain('stuck:hold-start');

    let stopped = false;
    const stopping = host.stop().then(() => {
      stopped = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(svc.events).toContain('idle:deactivate'); // actors that are not busy drain at once
    clock.advance(4999);
    await new Promise((r) => setImmediate(r));
    expect(stopped).toBe(false);
    clock.advance(1);
    await stopping;
    expect(stopped).toBe(true);
    await expect(stuck).rejects.toMatchObject({ code: 'PORTAL_HOST_STOPPED' });
    await expect(queued).rejects.toMatchObject({ code: 'PORTAL_HOST_STOPPED' });
    expect(svc.events).not.toContain('stuck:deactivate');
  });

  test('stop() waits for a turn that ends within the drain, then deactivates the actor', async () => {
    const clock = new ManualClock();
    const host = newHost({ clock, drainTimeoutMs: 5000 });
    const call = host.proxy('Counter', 'slow').invoke('hold');
    await new Promise((r) => setImmediate(r));
    const stopping = host.stop();
    clock.advance(1000);
    svc.gate.open();
    await stopping;
    expect(await call).toBe('slow');
    expect(svc.events).toEqual(['slow:activate', 'slow:hold-start', 'slow:hold-end', 'slow:deactivate']);
  });
});

describe('delays above 2^31-1 ms', () => {
  test('the system clock waits out a delay above 2^31-1 ms as a chain of shorter timers', () => {
    jest.useFakeTimers();
    try {
      const clock = createSystemClock();
      let fired = 0;
      clock.setTimeout(() => fired++, 30 * DAY);
      const never = clock.setTimeout(() => fired++, Infinity);
      jest.advanceTimersByTime(MAX_TIMER_MS + 10);
      expect(fired).toBe(0);
      jest.advanceTimersByTime(30 * DAY - MAX_TIMER_MS - 20);
      expect(fired).toBe(0);
      jest.advanceTimersByTime(10);
      expect(fired).toBe(1);
      jest.advanceTimersByTime(100 * DAY);
      expect(fired).toBe(1);
      clock.clearTimeout(never);
      const cancelled = clock.setTimeout(() => fired++, 40 * DAY);
      jest.advanceTimersByTime(MAX_TIMER_MS + 1);
      clock.clearTimeout(cancelled); // cancelling between links
      jest.advanceTimersByTime(40 * DAY);
      expect(fired).toBe(1);
    } finally {
      jest.useRealTimers();
    }
  });

  test('30-day reminders, timers and call timeouts do not fire at once on the embedded host', async () => {
    const store = createMemoryStateStore();
    const host = newHost({ store, callTimeoutMs: 30 * DAY }); // the system clock
    const before = Date.now();
    await host.proxy('Reminded', 'r').invoke('remind', { name: 'once', dueMs: 30 * DAY, periodMs: 0 });
    await host.proxy('Reminded', 'r').invoke('remind', { name: 'monthly', dueMs: 1, periodMs: 30 * DAY });
    await host.proxy('Ticker', 't').invoke('start', { dueMs: 30 * DAY, periodMs: 30 * DAY });
    // a call under a 30-day timeout completes instead of timing out at once
    expect(await host.proxy('Counter', 'c').invoke('increment')).toBe(1);
    await new Promise((r) => setTimeout(r, 400));
    await host.settle();
    const fired = svc.events.filter((e) => e.includes('reminder:') || e.includes('tick'));
    expect(fired).toEqual(['r:reminder:monthly:undefined']); // the 1 ms one, once
    const stored = JSON.parse((await store.get('Reminded||r||__reminders'))!) as Record<
      string,
      { dueAt: number }
    >;
    expect(stored.once.dueAt).toBeGreaterThanOrEqual(before + 30 * DAY);
    expect(stored.once.dueAt).toBeLessThan(Date.now() + 30 * DAY);
    // the next due date of the repeating one is one period after its firing, not years ahead
    expect(stored.monthly.dueAt).toBeGreaterThanOrEqual(before + 30 * DAY);
    expect(stored.monthly.dueAt).toBeLessThanOrEqual(Date.now() + 30 * DAY + 1);
  });
});
