import { PassThrough } from 'node:stream';
import { ManualClock } from '../../common/clock.js';
import { createLogger } from '../../common/logger.js';
import { PortalError, isPortalError } from '../../common/errors.js';
import {
  createEmbeddedHost,
  createMemoryStateStore,
  type EmbeddedHost,
  type StateStore,
  typedProxy,
} from '../../runtime/index.js';
import { Counter, createTestServices, tick, type TestServices } from './fixtures.js';

let svc: TestServices;
let store: StateStore;
let clock: ManualClock;
let host: EmbeddedHost<TestServices>;

beforeEach(() => {
  svc = createTestServices();
  store = createMemoryStateStore();
  clock = new ManualClock();
  host = createEmbeddedHost({ store, clock, services: svc });
  host.register(Counter);
});

afterEach(async () => {
  svc.gate.open();
  await host.stop();
});

async function rejection(p: Promise<unknown>): Promise<PortalError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof PortalError) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

test('embedded host: activates an actor on its first call, exactly once', async () => {
  const ref = host.proxy('Counter', 'a');
  expect(host.stats().activations).toBe(0);
  const results = await Promise.all([ref.invoke('get'), ref.invoke('get'), ref.invoke('get')]);
  expect(results).toEqual([0, 0, 0]);
  expect(svc.events.filter((e) => e === 'a:activate')).toHaveLength(1);
  expect(host.stats()).toMatchObject({ activations: 1, active: 1, calls: 3 });
});

test('embedded host: runs one turn at a time per actor, so 50 concurrent read-yield-write calls count to 50', async () => {
  const ref = typedProxy<Counter>(host.proxy('Counter', 'a'));
  const results = await Promise.all(Array.from({ length: 50 }, () => ref.invoke('increment')));
  expect(await ref.invoke('get')).toBe(50);
  expect([...results].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  expect(results).toEqual(Array.from({ length: 50 }, (_, i) => i + 1)); // FIFO order
});

test('embedded host: runs calls to different actors concurrently', async () => {
  const a = host.proxy('Counter', 'a').invoke('hold');
  const b = host.proxy('Counter', 'b').invoke('hold');
  for (let i = 0; i < 5 && svc.events.filter((e) => e.endsWith('hold-start')).length < 2; i++) await tick();
  expect(svc.events).toEqual(expect.arrayContaining(['a:hold-start', 'b:hold-start']));
  expect(svc.events.some((e) => e.endsWith('hold-end'))).toBe(false);
  svc.gate.open();
  expect(await Promise.all([a, b])).toEqual(['a', 'b']);
});

test('embedded host: passes arguments and results by reference and method errors through unchanged', async () => {
  const arg = { big: [1, 2, 3] };
  expect(await host.proxy('Counter', 'a').invoke('echo', arg)).toBe(arg);
  const err = await host
    .proxy('Counter', 'a')
    .invoke('failAfterWrite')
    .catch((e: unknown) => e);
  expect(err).toBeInstanceOf(Error);
  expect((err as Error).message).toBe('boom');
});

test('embedded host: rolls back the state changes of a failed turn', async () => {
  const ref = host.proxy('Counter', 'a');
  await ref.invoke('increment');
  await ref.invoke('increment');
  await expect(ref.invoke('failAfterWrite')).rejects.toThrow('boom');
  expect(await ref.invoke('get')).toBe(2);
  await host.deactivate('Counter', 'a');
  expect(await store.get('Counter||a||count')).toBe('2');
  expect(await ref.invoke('get')).toBe(2);
});

test('embedded host: saves state after each successful turn in the Dapr key layout', async () => {
  await host.proxy('Counter', 'x').invoke('increment');
  expect(await store.get('Counter||x||count')).toBe('1');
  expect(await store.keys('Counter||x||')).toEqual(['Counter||x||count']);
});

test('embedded host: rejects an unknown actor type with PORTAL_UNKNOWN_ACTOR_TYPE', async () => {
  const err = await rejection(host.proxy('Nope', 'a').invoke('get'));
  expect(err.code).toBe('PORTAL_UNKNOWN_ACTOR_TYPE');
});

test('embedded host: rejects unknown, private, lifecycle and inherited method names without activating', async () => {
  const ref = host.proxy('Counter', 'a');
  for (const method of [
    'nope',
    '_secret',
    'constructor',
    'toString',
    'hasOwnProperty',
    'onActivate',
    'onDeactivate',
    'receiveReminder',
    'svc',
    '_record',
    '',
    '__proto__',
  ]) {
    const err = await rejection(ref.invoke(method));
    expect({ method, code: err.code }).toEqual({ method, code: 'PORTAL_UNKNOWN_ACTOR_METHOD' });
  }
  expect(host.stats()).toMatchObject({ activations: 0, active: 0, calls: 0 });
  expect(svc.events).toEqual([]);
  expect(await ref.invoke('get')).toBe(0);
});

test('embedded host: rejects a call an actor makes to itself instead of deadlocking', async () => {
  const err = await rejection(host.proxy('Counter', 'a').invoke('callSelf'));
  expect(err.code).toBe('PORTAL_INVALID_ARGUMENT');
  expect(err.message).toMatch(/reentrancy is not supported/);
  // A -> B -> A is the same deadlock one hop further.
  const viaOther = await rejection(host.proxy('Counter', 'a').invoke('callVia', 'b'));
  expect(viaOther.code).toBe('PORTAL_INVALID_ARGUMENT');
  // The actor is still usable afterwards.
  expect(await host.proxy('Counter', 'a').invoke('get')).toBe(0);
});

test('embedded host: rejects a caller whose turn outlasts callTimeoutMs, and finishes that turn before the next', async () => {
  const ref = host.proxy('Counter', 'a');
  const slow = ref.invoke('hold');
  await tick();
  clock.advance(60_000);
  const err = await rejection(slow);
  expect(err.code).toBe('PORTAL_ACTOR_TIMEOUT');
  const next = ref.invoke('increment');
  await tick();
  expect(svc.events).not.toContain('a:hold-end');
  svc.gate.open();
  expect(await next).toBe(1);
  expect(svc.events.indexOf('a:hold-end')).toBeGreaterThan(-1);
});

test('embedded host: deactivates idle actors and reloads their state on the next call', async () => {
  const ref = host.proxy('Counter', 'a');
  await ref.invoke('increment');
  await ref.invoke('increment');
  clock.advance(59 * 60_000);
  await host.settle();
  expect(host.stats()).toMatchObject({ active: 1, deactivations: 0 });
  clock.advance(2 * 60_000);
  await host.settle();
  expect(host.stats()).toMatchObject({ active: 0, deactivations: 1 });
  expect(svc.events).toEqual(['a:activate', 'a:deactivate']);
  expect(await ref.invoke('get')).toBe(2);
  expect(host.stats()).toMatchObject({ active: 1, activations: 2 });
});

test('embedded host: deactivating an actor that is not active is a no-op', async () => {
  await expect(host.deactivate('Counter', 'never')).resolves.toBeUndefined();
  await host.proxy('Counter', 'a').invoke('get');
  await host.deactivate('Counter', 'a');
  await host.deactivate('Counter', 'a');
  expect(host.stats()).toMatchObject({ deactivations: 1, active: 0 });
});

test('embedded host: stop() deactivates every actor and rejects later calls with PORTAL_HOST_STOPPED', async () => {
  await host.proxy('Counter', 'a').invoke('increment');
  await host.proxy('Counter', 'b').invoke('increment');
  await host.stop();
  expect(host.stats()).toMatchObject({ active: 0, deactivations: 2 });
  expect(svc.events.filter((e) => e.endsWith(':deactivate')).sort()).toEqual([
    'a:deactivate',
    'b:deactivate',
  ]);
  const err = await rejection(host.proxy('Counter', 'a').invoke('get'));
  expect(isPortalError(err, 'PORTAL_HOST_STOPPED')).toBe(true);
  expect(clock.pendingTimers).toBe(0);
});

test('embedded host: rejects actor ids it cannot carry at the proxy; an id with || is an actor of its own', async () => {
  expect(() => host.proxy('Counter', '')).toThrow(PortalError);
  expect(() => host.proxy('Counter', '')).toThrow(/actorId/);
  await host.proxy('Counter', 'a||b').invoke('increment');
  expect(await host.proxy('Counter', 'a').invoke('get')).toBe(0);
  expect(await host.proxy('Counter', 'a||b').invoke('get')).toBe(1);
});

test('embedded host: gives each actor a child logger carrying actorType and actorId', async () => {
  const lines: string[] = [];
  const destination = new PassThrough();
  destination.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  const logged = createEmbeddedHost({
    store,
    clock,
    services: svc,
    logger: createLogger({ level: 'info', destination }),
  });
  logged.register(Counter);
  await logged.proxy('Counter', 'z').invoke('logSomething');
  await logged.stop();
  await new Promise((resolve) => setImmediate(resolve));
  const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(records).toContainEqual(
    expect.objectContaining({ actorType: 'Counter', actorId: 'z', detail: 42, msg: 'something happened' }),
  );
});

test('embedded host: a failed activation rejects the call and is retried by the next one', async () => {
  class Flaky extends Counter {
    static failures = 1;
    override async onActivate(): Promise<void> {
      if (Flaky.failures-- > 0) throw new Error('not yet');
    }
  }
  host.register(Flaky);
  await expect(host.proxy('Flaky', 'f').invoke('get')).rejects.toThrow('not yet');
  expect(host.stats().activations).toBe(0);
  expect(await host.proxy('Flaky', 'f').invoke('get')).toBe(0);
  expect(host.stats().activations).toBe(1);
});
