import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../common/clock.js';
import { PortalError } from '../../common/errors.js';
import {
  createEmbeddedHost,
  createFileStateStore,
  createMemoryStateStore,
  type EmbeddedHost,
  type StateStore,
} from '../../runtime/index.js';
import { Reminded, Ticker, createTestServices, tick, type TestServices } from './fixtures.js';

let svc: TestServices;
let clock: ManualClock;
let hosts: EmbeddedHost<TestServices>[];
let dirs: string[];

beforeEach(() => {
  svc = createTestServices();
  clock = new ManualClock();
  hosts = [];
  dirs = [];
});

afterEach(async () => {
  svc.gate.open();
  for (const h of hosts) await h.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function newHost(store: StateStore, hostClock: ManualClock = clock): EmbeddedHost<TestServices> {
  const host = createEmbeddedHost({
    store,
    clock: hostClock,
    services: svc,
  });
  host.register(Ticker);
  host.register(Reminded);
  hosts.push(host);
  return host;
}

async function advance(host: EmbeddedHost<TestServices>, ms: number, step = ms): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(Math.min(step, ms - t));
    await host.settle();
  }
}

const ticks = (): number => svc.events.filter((e) => e.startsWith('t:tick')).length;

test('timers: a periodic timer runs its method as a turn on every period', async () => {
  const host = newHost(createMemoryStateStore());
  await host.proxy('Ticker', 't').invoke('start', { dueMs: 100, periodMs: 10 });
  await advance(host, 99);
  expect(ticks()).toBe(0);
  await advance(host, 41, 1); // fires at 100, 110, 120, 130, 140
  expect(svc.events.filter((e) => e === 't:tick:timer')).toHaveLength(5);
  expect(host.stats().timersFired).toBe(5);
});

test("timers: a firing is skipped while the previous firing's turn is still running", async () => {
  const host = newHost(createMemoryStateStore());
  await host.proxy('Ticker', 't').invoke('start', { dueMs: 10, periodMs: 10, block: true });
  clock.advance(10);
  await tick();
  expect(svc.events).toEqual(['t:activate', 't:tick-start']);
  clock.advance(50); // five more firings while the first turn holds the actor: all skipped
  await tick();
  svc.gate.open();
  await host.settle();
  expect(svc.events).toEqual(['t:activate', 't:tick-start', 't:tick-end']);
  await advance(host, 10);
  expect(svc.events.filter((e) => e === 't:tick-start')).toHaveLength(2);
  expect(host.stats().timersFired).toBe(2);
});

test('timers: a timer with periodMs 0 fires once', async () => {
  const host = newHost(createMemoryStateStore());
  await host.proxy('Ticker', 't').invoke('start', { dueMs: 5, periodMs: 0 });
  await advance(host, 100, 5);
  expect(ticks()).toBe(1);
});

test('timers: unregistering a timer stops it and timers die with the activation', async () => {
  const host = newHost(createMemoryStateStore());
  const ref = host.proxy('Ticker', 't');
  await ref.invoke('start', { name: 'a', dueMs: 10, periodMs: 10 });
  await advance(host, 10);
  await ref.invoke('stopTimer', 'a');
  await advance(host, 50, 10);
  expect(ticks()).toBe(1);
  await ref.invoke('start', { name: 'b', dueMs: 10, periodMs: 10 });
  await host.deactivate('Ticker', 't');
  await advance(host, 50, 10);
  expect(ticks()).toBe(1);
  expect(host.stats().active).toBe(0);
});

test('timers: registering a timer on a method callers may not invoke fails with PORTAL_UNKNOWN_ACTOR_METHOD', async () => {
  const host = newHost(createMemoryStateStore());
  const err = await host
    .proxy('Ticker', 't')
    .invoke('badTimer')
    .catch((e: unknown) => e);
  expect(err).toBeInstanceOf(PortalError);
  expect((err as PortalError).code).toBe('PORTAL_UNKNOWN_ACTOR_METHOD');
});

test('reminders: a due reminder activates its actor and calls receiveReminder as a turn', async () => {
  const host = newHost(createMemoryStateStore());
  await host
    .proxy('Reminded', 'r')
    .invoke('remind', { name: 'once', dueMs: 1000, periodMs: 0, data: { n: 1 } });
  await host.deactivate('Reminded', 'r');
  expect(host.stats().active).toBe(0);
  await advance(host, 1000);
  expect(svc.events).toEqual(['r:activate', 'r:deactivate', 'r:activate', 'r:reminder:once:{"n":1}']);
  expect(host.stats()).toMatchObject({ remindersFired: 1, active: 1 });
  await advance(host, 5000, 1000);
  expect(host.stats().remindersFired).toBe(1); // one-shot
  expect(await host.proxy('Reminded', 'r').invoke('fired')).toBe(1);
});

test('reminders: a periodic reminder keeps firing until unregistered', async () => {
  const host = newHost(createMemoryStateStore());
  const ref = host.proxy('Reminded', 'r');
  await ref.invoke('remind', { name: 'p', dueMs: 100, periodMs: 100 });
  await advance(host, 300, 100);
  expect(await ref.invoke('fired')).toBe(3);
  await ref.invoke('forget', 'p');
  await advance(host, 300, 100);
  expect(await ref.invoke('fired')).toBe(3);
});

test('reminders: survive a new host over the same file store, which reloads and fires them', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'portal-reminders-'));
  dirs.push(dir);
  const first = newHost(createFileStateStore(dir));
  await first.ready();
  await first
    .proxy('Reminded', 'r')
    .invoke('remind', { name: 'wake', dueMs: 60_000, periodMs: 0, data: 'hello' });
  await first.stop();
  svc.events.length = 0;

  // A new process: new store object, new clock at the same wall time.
  const clock2 = new ManualClock();
  const second = newHost(createFileStateStore(dir), clock2);
  await second.ready();
  expect(second.stats().active).toBe(0);
  clock2.advance(59_999);
  await second.settle();
  expect(svc.events).toEqual([]);
  clock2.advance(1);
  await second.settle();
  expect(svc.events).toEqual(['r:activate', 'r:reminder:wake:"hello"']);
  expect(second.stats().remindersFired).toBe(1);
  expect(await second.proxy('Reminded', 'r').invoke('fired')).toBe(1);
});

/** A host over a new file store in group-commit mode (its commit log counts records). */
async function groupCommitHost() {
  const dir = await mkdtemp(join(tmpdir(), 'portal-reminders-'));
  dirs.push(dir);
  const store = createFileStateStore(dir, { groupCommit: true });
  const host = newHost(store);
  await host.ready();
  return { store, host };
}

test('reminders: registered in a turn that writes state, both go to the store in one transaction (one commit-log record)', async () => {
  const { store, host } = await groupCommitHost();
  const before = store.stats().commitLog!.records;
  await host.proxy('Reminded', 'r').invoke('noteAndRemind', { note: 'kept', name: 'wake', dueMs: 1000 });
  // answered: both are in the commit log, as one record (a separate reminder write would be a second)
  expect(store.stats().commitLog!.records - before).toBe(1);
  expect(await store.get('Reminded||r||note')).toBe('"kept"');
  expect(await store.get('Reminded||r||__reminders')).toContain('wake');
  await advance(host, 1000);
  expect(svc.events).toContain('r:reminder:wake:undefined');
});

test('reminders: registered in a turn that fails, the reminder is still stored and the state rolled back', async () => {
  const { store, host } = await groupCommitHost();
  const err = await host
    .proxy('Reminded', 'r')
    .invoke('noteAndRemind', { note: 'lost', name: 'wake', dueMs: 1000, fail: true })
    .catch((e: unknown) => e);
  expect((err as Error).message).toMatch(/failed as asked/);
  expect(await store.get('Reminded||r||note')).toBeUndefined();
  expect(await store.get('Reminded||r||__reminders')).toContain('wake');
  await advance(host, 1000);
  expect(svc.events).toContain('r:reminder:wake:undefined');
});

test('reminders: a reminder that fell due while no host ran fires as soon as a host is ready', async () => {
  const store = createMemoryStateStore();
  const first = newHost(store);
  await first.proxy('Reminded', 'r').invoke('remind', { name: 'late', dueMs: 10, periodMs: 0 });
  await first.stop();
  svc.events.length = 0;
  const later = new ManualClock(0, Date.UTC(2026, 0, 2));
  const second = newHost(store, later);
  await second.ready();
  later.advance(0);
  await second.settle();
  expect(svc.events).toEqual(['r:activate', 'r:reminder:late:undefined']);
  expect(await store.get('Reminded||r||__reminders')).toBeUndefined(); // one-shot: removed after firing
});
