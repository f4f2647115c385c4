import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ManualClock } from '../../common/clock.js';
import { createSilentLogger } from '../../common/logger.js';
import { createMemoryBus } from '../../bus/memory-bus.js';
import { subjects, type Bus } from '../../bus/types.js';
import type { DispatchBatch } from '../../common/index.js';
import { createCpuTickEngine } from '../../engine/index.js';
import { createEmbeddedHost, createMemoryStateStore, type EmbeddedHost } from '../../runtime/index.js';
import { createManifest, type Manifest } from '../../transfer/index.js';
import { adaptiveTimeoutMs } from '../../scheduler/estimators.js';
import { SchedulerActor, EdgeActor, actorProxy, type TransferRequest } from '../../actors/index.js';
import { TickPacer } from '../../actors/tick-pacer.js';
import { EdgeUsageBoard } from '../../actors/edge-usage.js';

// A transfer whose every chunk is in flight and whose fetches have not answered has nothing to do: its tick
// timer backs off instead of ticking every tickMs, and the fetch deadlines still fire on time. Driven by a
// ManualClock with no executor on the bus, so no report ever comes unless the test sends one.

const CHUNK = 64 * 1024;
let dir: string;
let clock: ManualClock;
let bus: Bus;
let host: EmbeddedHost;
let manifest: Manifest;
const dispatched: DispatchBatch[] = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'portal-idle-tick-'));
  await writeFile(path.join(dir, 'src.bin'), randomBytes(4 * CHUNK));
  manifest = await createManifest(path.join(dir, 'src.bin'), { chunkSize: CHUNK });
  clock = new ManualClock();
  bus = createMemoryBus();
  dispatched.length = 0;
  bus.subscribe<DispatchBatch>(subjects.dispatch(manifest.id), (b) => {
    dispatched.push(b);
  });
  host = createEmbeddedHost({
    store: createMemoryStateStore(),
    clock,
    logger: createSilentLogger(),
    services: { bus, tickEngine: createCpuTickEngine() },
  });
  host.register(SchedulerActor);
  host.register(EdgeActor);
});

afterEach(async () => {
  await host.stop();
  await bus.close();
  await rm(dir, { recursive: true, force: true });
});

/** Moves the clock `ms` forward in `step` ms steps, letting every turn that falls due run. */
async function advance(ms: number, step = 10): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(Math.min(step, ms - t));
    await host.settle();
  }
}

function request(): TransferRequest {
  return {
    transferId: manifest.id,
    manifest,
    output: path.join(dir, 'out.bin'),
    // no bandwidth hint: the fetch timeout before any sample is the cap (60 s)
    edges: [
      { id: 'm0', config: { url: 'http://127.0.0.1:9/src.bin', kind: 'mirror', flags: 0, maxParallel: 8 } },
    ],
    tickMs: 50,
  };
}

test('idle tick: a transfer whose every chunk is in flight ticks a few times in 10 s, not every tickMs', async () => {
  const actor = actorProxy(host, 'SchedulerActor', manifest.id);
  await actor.invoke('start', request());
  await advance(100);
  expect(dispatched.flatMap((b) => b.items)).toHaveLength(4); // every chunk in flight, no report will come
  const before = (await actor.invoke('status')).ticks;
  await advance(10_000);
  const s = await actor.invoke('status');
  const idleTicks = s.ticks - before;
  // at tickMs 50 a periodic timer would have ticked 200 times; backing off 100, 200, … 2000 ms gives about 10
  expect(idleTicks).toBeGreaterThan(0);
  expect(idleTicks).toBeLessThanOrEqual(15);
  expect(s.state).toBe('running');
  expect(s.inFlight).toBe(4);
});

test('idle tick: the fetch deadline still fires on time while the transfer is idle, and the chunks go out again', async () => {
  const actor = actorProxy(host, 'SchedulerActor', manifest.id);
  await actor.invoke('start', request());
  await advance(100);
  const firstDispatchAt = 0; // the first tick runs at once (dueMs 0) and dispatches every chunk
  const view = await actorProxy(host, 'EdgeActor', 'm0').invoke('snapshot');
  const timeoutMs = adaptiveTimeoutMs(view, CHUNK);
  expect(timeoutMs).toBe(60_000);
  // up to just before the deadline: no timeout
  await advance(timeoutMs - 200, 50);
  expect((await actor.invoke('status')).counters.timeouts).toBe(0);
  // the deadline passes: detected within one tickMs (the timer was brought back before the deadline)
  await advance(firstDispatchAt + timeoutMs + 1 + 50 - clock.now(), 5);
  const s = await actor.invoke('status');
  expect(s.counters.timeouts).toBe(4);
  expect(dispatched.flatMap((b) => b.items).length).toBeGreaterThan(4); // the timed-out chunks were sent again
});

test('idle tick: a report wakes an idle transfer: its free slot is refilled at once', async () => {
  const actor = actorProxy(host, 'SchedulerActor', manifest.id);
  const req = request();
  req.edges[0].config.maxParallel = 2;
  await actor.invoke('start', req);
  await advance(5000);
  const sent = dispatched.flatMap((b) => b.items);
  expect(sent).toHaveLength(2); // two slots, both busy: idle, backed off to seconds between ticks
  const first = sent[0];
  await bus.publish(subjects.report(manifest.id), {
    transferId: manifest.id,
    chunk: first.chunk,
    attempt: first.attempt,
    edgeIndex: 0,
    ok: false,
    reason: 'http',
    detail: 'test: 503',
    bytes: 0,
    firstByteMs: 1,
    transferMs: 1,
  });
  // the bus batches reports on the next turn of the event loop, then applies them in one actor turn
  await new Promise((r) => setImmediate(r));
  await host.settle();
  await advance(20, 5);
  const s = await actor.invoke('status');
  expect(s.counters.failures).toBe(1);
  // the report's own tick refilled the slot (well before the backed-off timer's next tick)
  expect(dispatched.flatMap((b) => b.items).length).toBeGreaterThan(2);
});

test('tick pacer: idle ticks double the period up to the cap and never past the next due event; work resets it', () => {
  const p = new TickPacer(50, 2000);
  expect(p.afterTick({ busy: false, untilDueMs: Infinity })).toBe(100);
  expect(p.afterTick({ busy: false, untilDueMs: Infinity })).toBe(200);
  expect(p.afterTick({ busy: false, untilDueMs: 300 })).toBe(undefined); // 400 would pass the due event: stays 200
  expect(p.afterTick({ busy: false, untilDueMs: 120 })).toBe(100);
  expect(p.afterTick({ busy: false, untilDueMs: 10 })).toBe(50); // never below tickMs
  for (let i = 0; i < 10; i++) p.afterTick({ busy: false, untilDueMs: Infinity });
  expect(p.periodMs).toBe(2000);
  expect(p.bound(700)).toBe(500);
  expect(p.bound(Infinity)).toBe(undefined);
  expect(p.afterTick({ busy: true, untilDueMs: Infinity })).toBe(50);
  p.afterTick({ busy: false, untilDueMs: Infinity });
  expect(p.wake()).toBe(50);
  expect(p.wake()).toBe(undefined);
});

test('demand: a report frees a slot for a chunk a reader waits for: it goes out in that report’s turn, even within dispatchOnReportMs of the last tick', async () => {
  const actor = actorProxy(host, 'SchedulerActor', manifest.id);
  const req = request();
  req.edges[0].config.maxParallel = 1;
  await actor.invoke('start', req);
  await advance(100);
  expect(dispatched.flatMap((b) => b.items).map((i) => i.chunk)).toEqual([0]);
  // a reader waits for chunks 1-3: chunk 1 pre-empts chunk 0 on the one slot, 2 and 3 wait for it
  const plan = await actor.invoke('read', { readerId: 'r', offset: CHUNK, length: 3 * CHUNK });
  expect(plan.complete).toEqual([]);
  const demand = dispatched.flatMap((b) => b.items).filter((i) => i.chunk !== 0);
  expect(demand.map((i) => i.chunk)).toEqual([1]);
  // chunk 1 arrives at the same instant as that tick (the clock does not move): chunk 2 goes out at once
  await bus.publish(subjects.report(manifest.id), {
    transferId: manifest.id,
    chunk: 1,
    attempt: demand[0].attempt,
    edgeIndex: 0,
    ok: true,
    bytes: CHUNK,
    firstByteMs: 1,
    transferMs: 1,
  });
  await new Promise((r) => setImmediate(r));
  await host.settle();
  expect(dispatched.flatMap((b) => b.items).map((i) => i.chunk)).toEqual([0, 1, 2]);
});

test('idle tick: a pre-position task kept off a busy edge turns foreground at its deadline, not at the end of an idle back-off', async () => {
  // its own host: the background gate needs the host's edge-usage board
  const board = createMemoryBus();
  const gated = createEmbeddedHost({
    store: createMemoryStateStore(),
    clock,
    logger: createSilentLogger(),
    services: {
      bus: board,
      tickEngine: createCpuTickEngine(),
      edgeUsage: new EdgeUsageBoard(),
      probeMs: 2000,
    },
  });
  gated.register(SchedulerActor);
  gated.register(EdgeActor);
  const bgBatches: Array<{ at: number }> = [];
  board.subscribe<DispatchBatch>(subjects.dispatch('bg'), () => {
    bgBatches.push({ at: clock.now() });
  });
  const step = async (ms: number): Promise<void> => {
    for (let t = 0; t < ms; t += 10) {
      clock.advance(Math.min(10, ms - t));
      await gated.settle();
    }
  };
  try {
    // the foreground transfer's 4 fetches stay in flight (no executor): the shared edge is busy throughout
    await actorProxy(gated, 'SchedulerActor', manifest.id).invoke('start', request());
    await step(100);
    const start = clock.now();
    // no bandwidth estimate exists (no sample, no hint), so only the deadline itself can turn the task foreground;
    // 7.3 s falls between two ticks of an idle transfer backed off to its 2 s period (fails without the bound)
    const deadlineInMs = 7300;
    await actorProxy(gated, 'SchedulerActor', 'bg').invoke('start', {
      ...request(),
      transferId: 'bg',
      output: 'http://127.0.0.1:9/',
      prePosition: { deadlineWallMs: clock.wallNow() + deadlineInMs },
    });
    await step(deadlineInMs - 100);
    expect(bgBatches).toEqual([]); // gated while it is background
    await step(300);
    expect(bgBatches.length).toBeGreaterThan(0);
    // the first fetch goes out within two ticks (tickMs 50) of the deadline
    expect(bgBatches[0].at - start).toBeLessThanOrEqual(deadlineInMs + 100);
  } finally {
    await gated.stop();
    await board.close();
  }
});
