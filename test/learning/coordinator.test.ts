import { createEmbeddedHost, createMemoryStateStore, type EmbeddedHost } from '../../runtime/index.js';
import { ManualClock } from '../../common/clock.js';
import {
  CoordinatorActor,
  type PeerTransport,
  type TaskOutcome,
  type PeerDispatch,
} from '../../actors/coordinator-actor.js';
import { actorProxy } from '../../actors/api.js';

/** In-process peers: each answer advances the manual clock by the peer's service time, so the coordinator measures it. */
function fakePeers(
  clock: ManualClock,
  behave: Record<string, (d: PeerDispatch) => { ms: number; ok: boolean }>,
): PeerTransport & { log: PeerDispatch[] } {
  const log: PeerDispatch[] = [];
  return {
    log,
    async execute(peer, d) {
      log.push(d);
      const b = behave[peer](d);
      await Promise.resolve();
      clock.advance(b.ms);
      return b.ok ? { ok: true, output: { peer } } : { ok: false, error: `${peer} failed` };
    },
  };
}

async function setup(
  behave: Record<string, (d: PeerDispatch) => { ms: number; ok: boolean }>,
  maxConcurrent = 2,
  register: string[] = Object.keys(behave),
) {
  const clock = new ManualClock(0, Date.UTC(2026, 0, 1, 9));
  const outcomes: TaskOutcome[] = [];
  const waiters: Array<() => void> = [];
  const transport = fakePeers(clock, behave);
  const store = createMemoryStateStore();
  const host: EmbeddedHost = createEmbeddedHost({
    store,
    clock,
    services: {
      coordinatorTransport: transport,
      coordinatorSink: (o: TaskOutcome) => {
        outcomes.push(o);
        waiters.splice(0).forEach((w) => w());
      },
    },
  });
  host.register(CoordinatorActor);
  await host.ready();
  const coord = actorProxy(host, 'CoordinatorActor', 'c1');
  for (const id of register) await coord.invoke('registerPeer', { id, maxConcurrent, latencyHintMs: 10 });
  const until = async (n: number): Promise<void> => {
    while (outcomes.length < n) await new Promise<void>((r) => waiters.push(r));
  };
  return { clock, outcomes, transport, host, coord, until, store };
}

describe('CoordinatorActor on the embedded host', () => {
  let host: EmbeddedHost | undefined;
  afterEach(async () => {
    await host?.stop();
    host = undefined;
  });

  test('coordinator: a failed attempt is retried on another peer and the task completes', async () => {
    const s = await setup({ bad: () => ({ ms: 5, ok: false }), good: () => ({ ms: 20, ok: true }) });
    host = s.host;
    await s.coord.invoke('configure', { policy: 'heuristic', maxAttempts: 3 });
    await s.coord.invoke('submit', { tasks: [{ id: 't1', type: 'render', work: 1, pin: 'bad' }] });
    await s.until(1);
    expect(s.outcomes[0]).toMatchObject({ taskId: 't1', ok: true, peer: 'good', attempts: 2, failures: 1 });
    expect(s.transport.log.map((d) => d.peer)).toEqual(['bad', 'good']);
    const snap = await s.coord.invoke('snapshot');
    expect(snap.counters).toMatchObject({ completed: 1, failures: 1, retries: 1, failedTasks: 0 });
  });

  test('coordinator: a task that fails on every attempt is reported failed after maxAttempts', async () => {
    const s = await setup({ a: () => ({ ms: 1, ok: false }), b: () => ({ ms: 1, ok: false }) });
    host = s.host;
    await s.coord.invoke('configure', { maxAttempts: 3 });
    await s.coord.invoke('submit', { tasks: [{ id: 'doomed', type: 'x', work: 1 }] });
    await s.until(1);
    expect(s.outcomes[0]).toMatchObject({ taskId: 'doomed', ok: false, attempts: 3, failures: 3 });
    expect(new Set(s.transport.log.map((d) => d.peer))).toEqual(new Set(['a', 'b']));
  });

  test("coordinator: never runs more than a peer's concurrency limit at once", async () => {
    const held: Array<() => void> = [];
    let inflight = 0,
      peak = 0;
    const clock = new ManualClock();
    const outcomes: TaskOutcome[] = [];
    const transport: PeerTransport = {
      execute: () => {
        inflight++;
        peak = Math.max(peak, inflight);
        return new Promise((r) =>
          held.push(() => {
            inflight--;
            r({ ok: true });
          }),
        );
      },
    };
    host = createEmbeddedHost({
      store: createMemoryStateStore(),
      clock,
      services: { coordinatorTransport: transport, coordinatorSink: (o: TaskOutcome) => outcomes.push(o) },
    });
    host.register(CoordinatorActor);
    const coord = actorProxy(host, 'CoordinatorActor', 'c');
    await coord.invoke('registerPeer', { id: 'only', maxConcurrent: 3, latencyHintMs: 1 });
    await coord.invoke('submit', {
      tasks: Array.from({ length: 10 }, (_, i) => ({ id: `t${i}`, type: 'x', work: 1 })),
    });
    while (outcomes.length < 10) {
      const h = held.shift();
      if (h) h();
      await new Promise((r) => setImmediate(r));
    }
    expect(peak).toBe(3);
  });

  test('coordinator: after warm-up it sends each task type to the peer that is fastest at it, and the model survives deactivation', async () => {
    const s = await setup({
      gpu: (d) => ({ ms: d.type === 'render' ? 10 : 40, ok: true }),
      cpu: (d) => ({ ms: d.type === 'render' ? 40 : 10, ok: true }),
    });
    host = s.host;
    let n = 0;
    for (let i = 0; i < 60; i++) {
      await s.coord.invoke('submit', {
        tasks: [{ id: `t${i}`, type: i % 2 === 0 ? 'render' : 'physics', work: 1 }],
      });
      await s.until(++n);
    }
    const late = s.transport.log.slice(30);
    expect(late.every((d) => (d.type === 'render' ? d.peer === 'gpu' : d.peer === 'cpu'))).toBe(true);
    const before = await s.coord.invoke('snapshot');
    const model = await s.coord.invoke('exportModel');
    await s.host.deactivate('CoordinatorActor', 'c1');
    expect(s.host.stats().deactivations).toBe(1);
    const after = await s.coord.invoke('snapshot');
    expect(after.observations).toBe(before.observations);
    expect(after.warm).toBe(true);
    expect(await s.coord.invoke('exportModel')).toEqual(model);
    const ranks = await s.coord.invoke('rankPeers', {
      type: 'render',
    });
    expect(ranks[0].peer).toBe('gpu');
    expect(ranks[0].timeMs).toBeGreaterThan(8);
    expect(ranks[0].timeMs).toBeLessThan(12);
  });
  test('coordinator: a task goes only to peers that advertise its type, and waits while none does', async () => {
    const ok = (): { ms: number; ok: boolean } => ({ ms: 5, ok: true });
    const s = await setup({ gpu: ok, cpu: ok, dsp: ok }, 2, []);
    host = s.host;
    await s.coord.invoke('registerPeer', {
      id: 'gpu',
      maxConcurrent: 2,
      latencyHintMs: 50,
      taskTypes: ['render'],
    });
    await s.coord.invoke('registerPeer', {
      id: 'cpu',
      maxConcurrent: 2,
      latencyHintMs: 1,
      taskTypes: ['physics'],
    });
    await s.coord.invoke('submit', {
      tasks: [
        { id: 'r1', type: 'render', work: 1 },
        { id: 'p1', type: 'physics', work: 1 },
        { id: 'a1', type: 'audio', work: 1 },
      ],
    });
    await s.until(2);
    expect(s.outcomes.map((o) => [o.taskId, o.peer]).sort()).toEqual([
      ['p1', 'cpu'],
      ['r1', 'gpu'],
    ]);
    expect((await s.coord.invoke('snapshot')).queued).toBe(1);
    await s.coord.invoke('registerPeer', {
      id: 'dsp',
      maxConcurrent: 1,
      latencyHintMs: 1,
      taskTypes: ['audio'],
    });
    await s.until(3);
    expect(s.outcomes[2]).toMatchObject({ taskId: 'a1', peer: 'dsp', ok: true });
    const ranks = await s.coord.invoke('rankPeers', { type: 'render' });
    expect(ranks.map((r) => r.peer)).toEqual(['gpu']);
  });

  test("coordinator: a peer's telemetry is the pressure feature of its next attempts, and a pressure outside 0..1 is refused", async () => {
    // 'vm' is 4× slower whenever its telemetry reports pressure 1; 'box' is steady at 20 ms
    let vmPressure = 0;
    const s = await setup({
      vm: () => ({ ms: vmPressure >= 1 ? 40 : 10, ok: true }),
      box: () => ({ ms: 20, ok: true }),
    });
    host = s.host;
    let done = 0;
    const round = async (pressure: number, n: number): Promise<void> => {
      vmPressure = pressure;
      expect(await s.coord.invoke('peerTelemetry', { id: 'vm', pressure })).toEqual({ known: true });
      for (let i = 0; i < n; i++) {
        await s.coord.invoke('submit', { tasks: [{ id: `t${done}`, type: 'x', work: 1 }] });
        await s.until(++done);
      }
    };
    // alternate calm and contended spells so the model sees both on both peers
    for (let k = 0; k < 6; k++) await round(k % 2, 8);
    const snap = await s.coord.invoke('snapshot');
    expect(snap.peers.find((p) => p.id === 'vm')?.pressure).toBe(1);
    const calm = await s.coord.invoke('peerTelemetry', { id: 'vm', pressure: 0 });
    expect(calm.known).toBe(true);
    expect((await s.coord.invoke('rankPeers', { type: 'x' }))[0].peer).toBe('vm');
    await s.coord.invoke('peerTelemetry', { id: 'vm', pressure: 1 });
    const ranked = await s.coord.invoke('rankPeers', { type: 'x' });
    expect(ranked[0].peer).toBe('box');
    expect(ranked.find((r) => r.peer === 'vm')!.timeMs).toBeGreaterThan(30);
    expect(await s.coord.invoke('peerTelemetry', { id: 'nobody', pressure: 0.5 })).toEqual({ known: false });
    await expect(s.coord.invoke('peerTelemetry', { id: 'vm', pressure: 2 })).rejects.toMatchObject({
      code: 'PORTAL_INVALID_ARGUMENT',
    });
  });

  test('coordinator: a peer that is gone gets no tasks, keeps its learned model and gets tasks again when it registers', async () => {
    const s = await setup({ a: () => ({ ms: 10, ok: true }), b: () => ({ ms: 30, ok: true }) });
    host = s.host;
    for (let i = 0; i < 30; i++) {
      await s.coord.invoke('submit', { tasks: [{ id: `w${i}`, type: 'x', work: 1 }] });
      await s.until(i + 1);
    }
    const snap = await s.coord.invoke('peerGone', { id: 'a', reason: 'test' });
    expect(snap.peers.find((p) => p.id === 'a')).toMatchObject({ online: false });
    s.transport.log.length = 0;
    for (let i = 0; i < 5; i++) {
      await s.coord.invoke('submit', { tasks: [{ id: `g${i}`, type: 'x', work: 1 }] });
      await s.until(31 + i);
    }
    expect(s.transport.log.map((d) => d.peer)).toEqual(['b', 'b', 'b', 'b', 'b']);
    const ranked = await s.coord.invoke('rankPeers', { type: 'x' });
    expect(ranked.map((r) => r.peer)).toEqual(['b']);
    await s.coord.invoke('registerPeer', { id: 'a', maxConcurrent: 2, latencyHintMs: 10 });
    const back = await s.coord.invoke('rankPeers', {
      type: 'x',
    });
    expect(back[0]).toMatchObject({ peer: 'a', source: 'model' });
    expect(back[0].timeMs).toBeGreaterThan(8);
    expect(back[0].timeMs).toBeLessThan(12);
    s.transport.log.length = 0;
    await s.coord.invoke('submit', { tasks: [{ id: 'back', type: 'x', work: 1 }] });
    await s.until(36);
    // what was learned about a while it was away still ranks it first (10 ms against 30 ms)
    expect(s.transport.log.map((d) => d.peer)).toEqual(['a']);
  });
});
