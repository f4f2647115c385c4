import { spawn, type ChildProcess } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { PortalError } from '../../common/errors.js';
import { makeTempDir } from '../env.js';
import type { Logger } from '../../common/logger.js';
import {
  createNatsBus,
  createPeerDirectory,
  natsOptionsFromEnv,
  type PeerDirectory,
} from '../../bus/index.js';
import type { PeerAnswer, PeerDispatch } from '../../actors/index.js';
import type { KernelRates } from './kernels.js';
import type { PeerSet } from './profiles.js';
import type { PeerPool } from './pool.js';
import type { ServiceEvent } from './report.js';

/** Heartbeat period of the demo's `portal peer` processes, ms. */
const HEARTBEAT_MS = 500;

/**
 * The coord-demo's peers as separate `portal peer` processes over NATS (the PeerPool of
 * `coord-demo` when NATS_URL is set): one process per profile, emulating it with the built-in
 * kernels (`portal peer --profile FILE --as ID`), reached through a PeerDirectory on the NATS bus
 * like `portal serve`'s coordinator reaches its peers. `reset` restarts the peers with the new
 * seed (their failure draws start over, as the forked peers' do); the kernel rates are those the
 * peers measured at the first start. Events carry no CPU or compute times (0): PeerResult carries
 * only the service time. Rejects with PORTAL_PEER_LOST when a peer does not start.
 */
export async function startNatsPeerPool(
  set: PeerSet,
  seed: number,
  log: Logger,
  servers: string,
  main = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'main.js'),
): Promise<PeerPool> {
  const dir = makeTempDir('portal-coord-peers-', "the demo's peer list");
  const file = path.join(dir, 'peers.json');
  await writeFile(file, JSON.stringify({ peers: set.peers, mix: set.mix, pace: set.pace }));
  const bus = await createNatsBus({
    ...(natsOptionsFromEnv() ?? {}),
    servers,
    name: `coord-demo-${process.pid}`,
    logger: log,
  });
  const present = new Set<string>();
  let telemetry: (peer: string, pressure: number) => void = () => {};
  let waiters: Array<() => void> = [];
  const directory: PeerDirectory = createPeerDirectory({
    bus,
    coordinatorId: `demo-${process.pid}`,
    // the demo's peers do not die: tolerate long stalls of a machine the peers load (5 s)
    missedHeartbeats: 10,
    logger: log,
    onPeerUp: (h) => {
      present.add(h.peerId);
      waiters.splice(0).forEach((w) => w());
    },
    onHeartbeat: (h) => telemetry(h.peerId, Math.max(h.cpuPressure, h.memoryPressure)),
    onPeerGone: (id) => present.delete(id),
  });
  await directory.ready;
  const children = new Map<string, ChildProcess>();
  const rates: Record<string, KernelRates> = {};
  let events: ServiceEvent[] = [];
  const busy: Record<string, number> = {};

  const startPeers = async (s: number): Promise<void> => {
    await Promise.all(
      set.peers.map(
        (p, i) =>
          new Promise<void>((resolve, reject) => {
            const child = spawn(
              process.execPath,
              [
                main,
                'peer',
                '--nats',
                servers,
                '--profile',
                file,
                '--as',
                p.id,
                '--seed',
                String(s + i),
              ].concat(['--heartbeat-ms', String(HEARTBEAT_MS), '--log-level', 'warn']),
              { stdio: ['ignore', 'pipe', 'inherit'] },
            );
            children.set(p.id, child);
            child.once('exit', (code) =>
              reject(
                new PortalError('PORTAL_PEER_LOST', `peer ${p.id} exited (${code}) before it was ready`),
              ),
            );
            createInterface({ input: child.stdout }).on('line', (l) => {
              if (!l.startsWith('{')) return;
              const m = JSON.parse(l) as { type?: string; rates?: KernelRates };
              if (m.type !== 'ready') return;
              if (m.rates && !rates[p.id]) rates[p.id] = m.rates;
              resolve();
            });
          }),
      ),
    );
    // every peer's first heartbeat has reached the directory
    while (!set.peers.every((p) => present.has(p.id))) await new Promise<void>((r) => waiters.push(r));
  };
  const stopPeers = async (): Promise<void> => {
    await Promise.all(
      [...children.values()].map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGTERM');
          }),
      ),
    );
    children.clear();
    present.clear();
  };
  const close = async (): Promise<void> => {
    await stopPeers();
    directory.close();
    waiters = [];
    await bus.close();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await startPeers(seed);
  } catch (err) {
    await close();
    throw err;
  }
  for (const p of set.peers) busy[p.id] = 0;

  return {
    async execute(peer: string, d: PeerDispatch): Promise<PeerAnswer> {
      const a = await directory.execute(peer, d);
      busy[peer] += a.serviceMs ?? 0;
      events.push({ peer, doneAt: performance.now(), serviceMs: a.serviceMs ?? 0, cpuMs: 0, computeMs: 0 });
      return a;
    },
    async reset(newSeed: number) {
      events = [];
      for (const id of Object.keys(busy)) busy[id] = 0;
      await stopPeers();
      await startPeers(newSeed);
    },
    busyMs: () => ({ ...busy }),
    rates: () => structuredClone(rates),
    events: () => events.slice(),
    onTelemetry(cb) {
      telemetry = cb;
    },
    close,
  };
}
