import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import os from 'node:os';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createNatsBus, type NatsBus } from '../../bus/nats-bus.js';
import {
  subjects,
  type CoordOutcomeMessage,
  type DeadLetterEvent,
  type PeerHeartbeatMessage,
} from '../../bus/types.js';
import { freePort, startNatsServer, type TestNatsServer } from '../../harness/index.js';
import type { CoordSnapshot, CoordTaskState } from '../../actors/index.js';
import { SQUARE_WORKER, squarePeerArgs } from '../helpers/coord-peers.js';

const MAIN = path.resolve('dist/cli/main.js');

interface Proc {
  child: ChildProcess;
  ready: Promise<Record<string, unknown>>;
}

/** Starts `portal <args>` and resolves `ready` with its first JSON line whose type is "ready". */
function start(args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, [MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, PORTAL_LOG_LEVEL: 'warn', ...env },
  });
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`portal ${args[0]} not ready in 30 s`)), 30_000);
    child.once('exit', (code) => reject(new Error(`portal ${args[0]} exited with ${code}`)));
    createInterface({ input: child.stdout }).on('line', (l) => {
      if (!l.startsWith('{')) return;
      const m = JSON.parse(l) as Record<string, unknown>;
      if (m.type === 'ready') {
        clearTimeout(timer);
        resolve(m);
      }
    });
  });
  ready.catch(() => undefined);
  return { child, ready };
}

async function stop(p: Proc | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise((r) => p.child.once('exit', r));
  p.child.kill(signal);
  await exited;
}

async function until<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let nats: TestNatsServer;
let dir: string;
let serve: Proc | undefined;
let api = '';
const peers = new Map<string, Proc>();
let client: NatsBus;
let raw: NatsConnection;

async function call<T>(method: string, arg?: unknown): Promise<T> {
  const r = await fetch(`${api}/CoordinatorActor/default/method/${method}`, {
    method: 'POST',
    body: arg === undefined ? undefined : JSON.stringify(arg),
    headers: { 'content-type': 'application/json' },
  });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`${method}: ${r.status} ${text}`);
  return JSON.parse(text) as T;
}

async function startServe(): Promise<void> {
  const port = await freePort();
  serve = start(
    [
      'serve',
      '--runtime',
      'embedded',
      '--app-port',
      String(port),
      '--state-dir',
      path.join(dir, 'state'),
      '--json',
    ],
    { NATS_URL: nats.url },
  );
  await serve.ready;
  api = `http://127.0.0.1:${port}/v1.0/actors`;
}

const onlinePeers = async (): Promise<string[]> =>
  (await call<CoordSnapshot>('snapshot')).peers
    .filter((p) => p.online)
    .map((p) => p.id)
    .sort();

beforeAll(async () => {
  nats = await startNatsServer();
  dir = await mkdtemp(path.join(os.tmpdir(), 'portal-coord-svc-'));
  await writeFile(path.join(dir, 'worker.mjs'), SQUARE_WORKER);
  await startServe();
  for (const id of ['peer-a', 'peer-b', 'peer-c']) {
    const p = start(squarePeerArgs(nats.url, id, 'compute', path.join(dir, 'worker.mjs')), { PEER_NAME: id });
    peers.set(id, p);
  }
  await Promise.all([...peers.values()].map((p) => p.ready));
  client = await createNatsBus({ servers: nats.url, name: 'coord-service-test' });
  raw = await connect({ servers: nats.url });
  await until('three peers registered', async () => ((await onlinePeers()).length === 3 ? true : undefined));
}, 90_000);

afterAll(async () => {
  await Promise.all([...peers.values()].map((p) => stop(p)));
  await stop(serve);
  await client?.close();
  await raw?.close();
  await nats?.stop();
  await rm(dir, { recursive: true, force: true });
}, 60_000);

describe('the learned coordinator as a service (portal serve + three portal peer processes over a real nats-server)', () => {
  test('the peers register themselves with their id and task types', async () => {
    const snap = await call<CoordSnapshot>('snapshot');
    expect(snap.peers.map((p) => [p.id, p.online, p.taskTypes]).sort()).toEqual([
      ['peer-a', true, ['compute']],
      ['peer-b', true, ['compute']],
      ['peer-c', true, ['compute']],
    ]);
  });

  test("a peer's heartbeat telemetry reaches the actor as its pressure, which the model's predictions use", async () => {
    const hb = (pressure: number, seq: number, leaving = false): PeerHeartbeatMessage => ({
      peerId: 'probe-t',
      taskTypes: ['telemetry-only'],
      maxInFlight: 1,
      concurrency: 1,
      latencyHintMs: 1,
      load: 3,
      running: 1,
      queued: 2,
      pressure,
      cpuPressure: pressure,
      memoryPressure: 0,
      intervalMs: 1000,
      leaving,
      seq,
      sentAtMs: Date.now(),
      completed: 0,
      failed: 0,
    });
    const pressureOf = async (): Promise<number | undefined> =>
      (await call<CoordSnapshot>('snapshot')).peers.find((p) => p.id === 'probe-t' && p.online)?.pressure;
    await client.publish(subjects.peerHeartbeat('probe-t'), hb(0.25, 1));
    await until('first reading', async () => ((await pressureOf()) === 0.25 ? true : undefined));
    await client.publish(subjects.peerHeartbeat('probe-t'), hb(0.75, 2));
    await until('second reading', async () => ((await pressureOf()) === 0.75 ? true : undefined));
    await client.publish(subjects.peerHeartbeat('probe-t'), hb(0.75, 3, true));
    await until('probe-t gone', async () => ((await onlinePeers()).includes('probe-t') ? undefined : true));
  });

  test('a task submitted through the actor API by another process runs on a peer and its outcome can be polled', async () => {
    await call('submit', { tasks: [{ id: 'api-1', type: 'compute', work: 1, payload: { x: 7 } }] });
    const done = await until('api-1 done', async () => {
      const s = await call<CoordTaskState>('outcome', { taskId: 'api-1' });
      return s.state === 'done' ? s : undefined;
    });
    expect(done.outcome).toMatchObject({ taskId: 'api-1', ok: true, attempts: 1 });
    const out = done.outcome.output as { peer: string; square: number; taskId: string };
    expect(out.square).toBe(49);
    expect(out.taskId).toBe('api-1');
    expect(['peer-a', 'peer-b', 'peer-c']).toContain(out.peer);
    expect(done.outcome.peer).toBe(out.peer);
  });

  test('a task submitted on the NATS subject comes back on the outcome subject', async () => {
    const outcomes: CoordOutcomeMessage[] = [];
    const sub = client.subscribe<CoordOutcomeMessage>(subjects.coordOutcome('default'), (o) => {
      outcomes.push(o);
    });
    await sub.ready;
    await client.publish(subjects.coordSubmit('default'), {
      coordinatorId: 'default',
      submitter: 'coord-service-test',
      tasks: [{ id: 'nats-1', type: 'compute', work: 2, payload: { x: 12 } }],
    });
    const o = await until('nats-1 outcome', async () => outcomes.find((x) => x.taskId === 'nats-1'));
    sub.unsubscribe();
    expect(o).toMatchObject({
      coordinatorId: 'default',
      taskId: 'nats-1',
      type: 'compute',
      ok: true,
      attempts: 1,
    });
    expect((o.output as { square: number }).square).toBe(144);
  });

  test('a peer killed in the middle of a task: the task is retried on another peer and completes', async () => {
    await call('submit', {
      tasks: [{ id: 'kill-1', type: 'compute', work: 1, pin: 'peer-a', payload: { x: 3, ms: 5000 } }],
    });
    await until('kill-1 running on peer-a', async () => {
      const snap = await call<CoordSnapshot>('snapshot');
      return snap.peers.find((p) => p.id === 'peer-a')!.inFlight === 1 ? true : undefined;
    });
    await new Promise((r) => setTimeout(r, 300)); // the peer has taken it and is computing
    await stop(peers.get('peer-a'), 'SIGKILL');
    const done = await until('kill-1 done', async () => {
      const s = await call<CoordTaskState>('outcome', { taskId: 'kill-1' });
      return s.state === 'done' ? s : undefined;
    });
    expect(done.outcome).toMatchObject({ taskId: 'kill-1', ok: true, attempts: 2, failures: 1 });
    expect(done.outcome.peer).not.toBe('peer-a');
    expect((done.outcome.output as { square: number }).square).toBe(9);
    expect(await onlinePeers()).toEqual(['peer-b', 'peer-c']);
  }, 30_000);

  test('a malformed PeerResult is dead-lettered with its reason and the coordinator keeps working', async () => {
    const dead: DeadLetterEvent[] = [];
    const sub = client.subscribe<DeadLetterEvent>(
      subjects.deadLetter(subjects.coordResult('default')),
      (d) => {
        dead.push(d);
      },
    );
    await sub.ready;
    raw.publish(subjects.coordResult('default'), new Uint8Array([0x0a, 0xff, 0xff, 0x01, 0x02]));
    const d = await until('the dead letter', async () => dead[0]);
    sub.unsubscribe();
    expect(d.subject).toBe('portal.coord.default.result');
    expect(d.code).toBe('PORTAL_WIRE_MALFORMED');
    expect(d.rejectedBy).toMatch(/^portal-serve-/);
    await call('submit', { tasks: [{ id: 'after-dl', type: 'compute', work: 1, payload: { x: 2 } }] });
    const s = await until('after-dl done', async () => {
      const x = await call<CoordTaskState>('outcome', { taskId: 'after-dl' });
      return x.state === 'done' ? x : undefined;
    });
    expect(s.outcome.ok).toBe(true);
  });

  test('a restarted coordinator keeps what it learned (actor state) and gets its peers back from their heartbeats', async () => {
    const before = await call<{ time: { observations?: number } }>('exportModel');
    const snapBefore = await call<CoordSnapshot>('snapshot');
    expect(snapBefore.observations).toBeGreaterThan(0);
    await stop(serve);
    await startServe();
    const snapAfter = await call<CoordSnapshot>('snapshot');
    expect(snapAfter.observations).toBe(snapBefore.observations);
    expect(await call('exportModel')).toEqual(before);
    await until('peers back', async () => ((await onlinePeers()).length === 2 ? true : undefined));
    await call('submit', { tasks: [{ id: 'after-restart', type: 'compute', work: 1, payload: { x: 5 } }] });
    const s = await until('after-restart done', async () => {
      const x = await call<CoordTaskState>('outcome', { taskId: 'after-restart' });
      return x.state === 'done' ? x : undefined;
    });
    expect(s.outcome).toMatchObject({ ok: true });
    expect((s.outcome.output as { square: number }).square).toBe(25);
  }, 60_000);
});

test("the coordinator's internal methods are not callable through the actor API (allow-list)", async () => {
  const r = await fetch(`${api}/CoordinatorActor/default/method/apply`, { method: 'POST', body: '{}' });
  expect(r.status).toBe(403);
  expect(((await r.json()) as { error: { code: string } }).error.code).toBe('PORTAL_ACTOR_METHOD_FORBIDDEN');
  const pump = await fetch(`${api}/CoordinatorActor/default/method/pump`, { method: 'POST' });
  expect(pump.status).toBe(403);
});
