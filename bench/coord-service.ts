/**
 * The learned coordinator as a service, measured (BENCHMARKS.md "Learned coordinator over NATS"):
 *
 * 1. Transport overhead: the same tiny task (0.2 audio work units, well under a millisecond) sent
 *    `--pings` times in a row to one peer, over IPC to a forked coord-demo peer and over NATS to a
 *    `portal peer` process (PeerTask on JetStream, PeerResult on JetStream). Overhead = round trip
 *    − the service time the peer measured; p50 and p99 of each, and the difference (what the NATS
 *    path adds per task).
 * 2. Coordinator throughput with `--peers` (16) peers: CoordinatorActor (learned policy, warm
 *    model) on the embedded host, fed `--tasks` tasks in batches of 50, each peer with 4 slots,
 *    (a) with peers that answer at once in-process, so the coordinator's own scheduling and state
 *    writes are all that is measured, and (b) with `portal peer` processes over NATS running the
 *    same tiny task. Tasks/s from the first submit to the last outcome.
 *
 * Run: `npm run bench:coord-service [-- --pings 300 --tasks 3000 --peers 16 --nats-tasks 2000 --step-timeout 300]`.
 * Every wait (a peer starting, peers coming up, a task, a run's outcomes) ends after `--step-timeout` s with an
 * error naming what it waited for, and a task that fails for good ends the run naming it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import os from 'node:os';
import { arg, quantile, startBenchNats } from './lib.js';
import { createSilentLogger } from '../common/logger.js';
import { startPeerPool } from '../cli/coord/pool.js';
import { createNatsBus, createPeerDirectory } from '../bus/index.js';
import type { PeerTransport } from '../actors/index.js';
import { coordinatorThroughput, withDeadline } from './coord-throughput.js';
import type { PeerProfile } from '../cli/coord/profiles.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const MAIN = path.resolve(here, '../cli/main.js');
const PEER = path.resolve(here, '../cli/coord/peer.js');
const log = createSilentLogger();
/** How long one step may wait (a peer's start, peers coming up, a run's outcomes), ms: `--step-timeout` s. */
let deadlineMs = 300_000;
/** `portal peer` processes still running: killed when a step fails, so the bench exits. */
const peerProcesses = new Set<ChildProcess>();

const flat: PeerProfile = {
  id: 'p0',
  latencyHintMs: 1,
  maxConcurrent: 4,
  speed: { render: 1, physics: 1, audio: 1 },
  peakHours: [0, 0],
  peakFactor: 1,
  loadFactor: 0,
  overloadAt: 1e6,
  failProb: 0,
};
const tiny = (i: number) => ({ taskId: `t${i}`, attempt: i + 1, type: 'audio', work: 0.2, hour: 12 });
const stats = (xs: number[]) => ({ p50: quantile(xs, 0.5, 0), p99: quantile(xs, 0.99, 0) });
const fmt = (x: number) => x.toFixed(3);

function startPeerProcess(
  url: string,
  id: string,
  extra: string[] = [],
): Promise<{ child: ChildProcess; stop(): Promise<void> }> {
  const child = spawn(
    process.execPath,
    [MAIN, 'peer', '--nats', url, '--id', id, '--heartbeat-ms', '500', '--log-level', 'warn', ...extra],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  peerProcesses.add(child);
  child.once('exit', () => peerProcesses.delete(child));
  const ready = new Promise<{ child: ChildProcess; stop(): Promise<void> }>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`portal peer ${id} exited with ${code}`)));
    createInterface({ input: child.stdout }).on('line', (l) => {
      if (l.includes('"ready"'))
        resolve({
          child,
          stop: () =>
            new Promise<void>((r) => {
              if (child.exitCode !== null) return r();
              child.once('exit', () => r());
              child.kill('SIGTERM');
            }),
        });
    });
  });
  return withDeadline(ready, deadlineMs, `portal peer ${id} printing ready`).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
}

async function overhead(pings: number, url: string): Promise<void> {
  // IPC: a forked coord-demo peer, pace 1 (it holds a task no longer than its computation)
  const pool = await startPeerPool([flat], 1, log, { width: 48, height: 36 }, PEER, 1);
  const ipc: number[] = [];
  for (let i = 0; i < pings + 20; i++) {
    const t0 = performance.now();
    const a = await withDeadline(
      pool.execute('p0', { ...tiny(i), peer: 'p0' }),
      deadlineMs,
      `task ${i} over IPC`,
    );
    if (i >= 20) ipc.push(performance.now() - t0 - (a.serviceMs ?? 0)); // the first 20 warm up
  }
  await pool.close();
  // NATS: one portal peer process with the built-in kernels, at this machine's speed
  const peer = await startPeerProcess(url, 'ping');
  const bus = await createNatsBus({ servers: url, name: 'bench-coord-overhead' });
  let up!: () => void;
  const isUp = new Promise<void>((r) => (up = r));
  const dir = createPeerDirectory({ bus, coordinatorId: 'bench', onPeerUp: () => up() });
  await dir.ready;
  await withDeadline(isUp, deadlineMs, 'the heartbeat of portal peer ping');
  const nats: number[] = [];
  for (let i = 0; i < pings + 20; i++) {
    const t0 = performance.now();
    const a = await withDeadline(
      dir.execute('ping', { ...tiny(i), peer: 'ping' }),
      deadlineMs,
      `task ${i} to portal peer ping over NATS`,
    );
    if (i >= 20) nats.push(performance.now() - t0 - (a.serviceMs ?? 0));
  }
  dir.close();
  await bus.close();
  await peer.stop();
  const a = stats(ipc),
    b = stats(nats);
  console.log(`transport overhead per task, ms (${pings} sequential tiny tasks):`);
  console.log(`  IPC  p50 ${fmt(a.p50)}  p99 ${fmt(a.p99)}`);
  console.log(`  NATS p50 ${fmt(b.p50)}  p99 ${fmt(b.p99)}`);
  console.log(`  added by NATS: p50 ${fmt(b.p50 - a.p50)}  p99 ${fmt(b.p99 - a.p99)}`);
}

async function main(): Promise<void> {
  const pings = Number(arg('pings', '300'));
  const tasks = Number(arg('tasks', '3000'));
  const natsTasks = Number(arg('nats-tasks', '2000'));
  const n = Number(arg('peers', '16'));
  deadlineMs = Number(arg('step-timeout', '300')) * 1000;
  console.log(
    `machine: ${os.cpus().length} cores, load average ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );
  const nats = await startBenchNats();
  try {
    await overhead(pings, nats.url);
    const ids = Array.from({ length: n }, (_, i) => `p${i}`);
    const instant: PeerTransport = {
      execute: async () => ({ ok: true, output: null, serviceMs: 0.1, pressure: 0 }),
    };
    const a = await coordinatorThroughput(instant, ids, tasks, deadlineMs);
    console.log(
      `coordinator throughput, ${n} peers answering at once in-process: ${a.toFixed(0)} tasks/s (${tasks} tasks)`,
    );
    const procs = await Promise.all(
      ids.map((id) => startPeerProcess(nats.url, id, ['--concurrency', '4', '--types', 'audio'])),
    );
    const bus = await createNatsBus({ servers: nats.url, name: 'bench-coord-throughput' });
    const present = new Set<string>();
    let wake: () => void = () => {};
    const dir = createPeerDirectory({
      bus,
      coordinatorId: 'bench-tp',
      onPeerUp: (h) => {
        present.add(h.peerId);
        wake();
      },
    });
    await dir.ready;
    const allUp = (async () => {
      while (present.size < n) await new Promise<void>((r) => (wake = r));
    })();
    await withDeadline(allUp, deadlineMs, `heartbeats of ${n} portal peers`, () => `${present.size} up`);
    const b = await coordinatorThroughput(dir, ids, natsTasks, deadlineMs);
    console.log(
      `coordinator throughput, ${n} portal peer processes over NATS: ${b.toFixed(0)} tasks/s (${natsTasks} tasks)`,
    );
    dir.close();
    await bus.close();
    await Promise.all(procs.map((p) => p.stop()));
  } finally {
    for (const c of peerProcesses) c.kill('SIGKILL');
    await nats.stop();
  }
  console.log(
    `load average after: ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );
}

try {
  await main();
} catch (err) {
  // the peer processes are killed by main; open connections (NATS, the IPC pool) must not keep a failed run alive
  console.error(`bench:coord-service failed: ${(err as Error).message}`);
  process.exit(1);
}
