import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PortalError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { PeerAnswer, PeerDispatch, PeerTransport } from '../../actors/coordinator-actor.js';
import { EMULATION_PACE, type PeerProfile } from './profiles.js';
import type { KernelRates } from './kernels.js';
import type { ServiceEvent } from './report.js';

/** A set of forked peer processes behind the coordinator's PeerTransport interface. */
export interface PeerPool extends PeerTransport {
  /** Reseeds every peer's failure generator (between runs of the same workload). */
  reset(seed: number): Promise<void>;
  /** Service ms measured inside the peers, per peer, since the last reset. */
  busyMs(): Record<string, number>;
  /** Each peer's ms per work unit of every task type at full speed, measured in the peer when it started (what the oracle scales). */
  rates(): Record<string, KernelRates>;
  /** Every answered attempt since the last reset: peer, when it ended, its hold and computation times inside the peer. */
  events(): ServiceEvent[];
  /** Calls `cb` with every telemetry report of a peer (its resource pressure: max of CPU and memory pressure, 0..1); replaces the previous callback. */
  onTelemetry(cb: (peer: string, pressure: number) => void): void;
  close(): Promise<void>;
}

interface Pending {
  resolve: (a: PeerAnswer) => void;
  reject: (e: Error) => void;
  peer: string;
}

/**
 * Forks one `peer.js` process per profile and talks to it over IPC. A peer that exits fails its
 * pending attempts with PORTAL_PEER_LOST; one that exits before it is ready fails the start (and
 * the peers already started are closed). `script` defaults to the compiled `peer.js` beside this
 * module (tests running the TypeScript sources pass the one in dist/); `pace` is the emulation
 * pace the peers hold tasks at (EMULATION_PACE by default).
 */
export async function startPeerPool(
  profiles: readonly PeerProfile[],
  seed: number,
  log: Logger,
  frame: { width: number; height: number },
  script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'peer.js'),
  pace = EMULATION_PACE,
): Promise<PeerPool> {
  const children = new Map<string, ChildProcess>();
  const pending = new Map<number, Pending>();
  const busy: Record<string, number> = {};
  let events: ServiceEvent[] = [];
  const rates: Record<string, KernelRates> = {};
  const readyWaiters = new Map<string, { resolve: () => void; reject: (e: Error) => void }>();
  let telemetry: (peer: string, pressure: number) => void = () => {};
  let seq = 1;
  /** Sends `msg` and waits for the peer's `ready`; rejects if the peer exits first. */
  const handshake = (id: string, child: ChildProcess, msg: unknown): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      readyWaiters.set(id, { resolve, reject });
      child.send(msg as object);
    });
  const close = async (): Promise<void> => {
    await Promise.all(
      [...children.values()].map(
        (c) =>
          new Promise<void>((resolve) => {
            c.once('exit', () => resolve());
            if (c.connected) c.disconnect();
            else c.kill();
          }),
      ),
    );
  };
  for (const [i, p] of profiles.entries()) {
    const child = fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.set(p.id, child);
    busy[p.id] = 0;
    child.on(
      'message',
      (m: {
        kind: string;
        seq?: number;
        ok?: boolean;
        output?: unknown;
        error?: string;
        serviceMs?: number;
        cpuMs?: number;
        computeMs?: number;
        pressure?: number;
        rates?: KernelRates;
      }) => {
        if (m.kind === 'telemetry') {
          if (typeof m.pressure === 'number') telemetry(p.id, m.pressure);
          return;
        }
        if (m.kind === 'ready') {
          if (m.rates) rates[p.id] = m.rates;
          readyWaiters.get(p.id)?.resolve();
          readyWaiters.delete(p.id);
          return;
        }
        const w = pending.get(m.seq!);
        if (!w) return;
        pending.delete(m.seq!);
        busy[p.id] += m.serviceMs ?? 0;
        events.push({
          peer: p.id,
          doneAt: performance.now(),
          serviceMs: m.serviceMs ?? 0,
          cpuMs: m.cpuMs ?? 0,
          computeMs: m.computeMs ?? 0,
        });
        w.resolve({
          ok: m.ok === true,
          output: m.output,
          error: m.error,
          pressure: m.pressure,
          serviceMs: m.serviceMs,
        });
      },
    );
    // a send to a peer that is going away fails here; its 'exit' then fails what it had pending
    child.on('error', (err) => log.warn({ err, peer: p.id }, 'peer process error'));
    child.on('exit', (code) => {
      children.delete(p.id);
      for (const [k, w] of pending)
        if (w.peer === p.id) {
          pending.delete(k);
          w.reject(new PortalError('PORTAL_PEER_LOST', `peer ${p.id} exited (${code})`));
        }
      readyWaiters
        .get(p.id)
        ?.reject(new PortalError('PORTAL_PEER_LOST', `peer ${p.id} exited (${code}) before it was ready`));
      readyWaiters.delete(p.id);
      log.debug({ peer: p.id, code }, 'peer exited');
    });
    try {
      await handshake(p.id, child, { kind: 'init', profile: p, seed: seed + i, frame, pace });
    } catch (err) {
      await close();
      throw err;
    }
  }
  return {
    execute(peer: string, d: PeerDispatch): Promise<PeerAnswer> {
      const child = children.get(peer);
      if (!child) return Promise.reject(new PortalError('PORTAL_PEER_LOST', `peer ${peer} is not running`));
      const s = seq++;
      return new Promise<PeerAnswer>((resolve, reject) => {
        pending.set(s, { resolve, reject, peer });
        child.send({ kind: 'task', seq: s, type: d.type, work: d.work, hour: d.hour, payload: d.payload });
      });
    },
    async reset(newSeed: number) {
      let i = 0;
      events = [];
      for (const [id, child] of children) {
        busy[id] = 0;
        const k = i++;
        await handshake(id, child, { kind: 'reset', seed: newSeed + k });
      }
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
