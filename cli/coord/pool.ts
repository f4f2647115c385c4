import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PortalError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { PeerAnswer, PeerDispatch, PeerTransport } from '../../actors/coordinator-actor.js';
import type { PeerProfile } from './profiles.js';
import type { ServiceEvent } from './report.js';

/** A set of forked peer processes behind the coordinator's PeerTransport interface. */
export interface PeerPool extends PeerTransport {
  /** Reseeds every peer's failure generator (between runs of the same workload). */
  reset(seed: number): Promise<void>;
  /** Service ms measured inside the peers, per peer, since the last reset. */
  busyMs(): Record<string, number>;
  /** Every answered attempt since the last reset: peer, when it ended, compute ms inside the peer. */
  events(): ServiceEvent[];
  close(): Promise<void>;
}

interface Pending { resolve: (a: PeerAnswer) => void; reject: (e: Error) => void; peer: string }

/**
 * Forks one `peer.js` process per profile and talks to it over IPC. A peer that exits fails its
 * pending attempts with PORTAL_PEER_LOST.
 */
export async function startPeerPool(profiles: readonly PeerProfile[], seed: number, log: Logger): Promise<PeerPool> {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'peer.js');
  const children = new Map<string, ChildProcess>();
  const pending = new Map<number, Pending>();
  const busy: Record<string, number> = {};
  let events: ServiceEvent[] = [];
  const readyWaiters = new Map<string, () => void>();
  let seq = 1;
  for (const [i, p] of profiles.entries()) {
    const child = fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.set(p.id, child);
    busy[p.id] = 0;
    child.on('message', (m: { kind: string; seq?: number; ok?: boolean; output?: unknown; error?: string; serviceMs?: number; pressure?: number }) => {
      if (m.kind === 'ready') { readyWaiters.get(p.id)?.(); return; }
      const w = pending.get(m.seq!);
      if (!w) return;
      pending.delete(m.seq!);
      busy[p.id] += m.serviceMs ?? 0;
      events.push({ peer: p.id, doneAt: performance.now(), serviceMs: m.serviceMs ?? 0 });
      w.resolve({ ok: m.ok === true, output: m.output, error: m.error, pressure: m.pressure, serviceMs: m.serviceMs });
    });
    child.on('exit', (code) => {
      children.delete(p.id);
      for (const [k, w] of pending) if (w.peer === p.id) { pending.delete(k); w.reject(new PortalError('PORTAL_PEER_LOST', `peer ${p.id} exited (${code})`)); }
      log.debug({ peer: p.id, code }, 'peer exited');
    });
    await new Promise<void>((resolve) => { readyWaiters.set(p.id, resolve); child.send({ kind: 'init', profile: p, seed: seed + i }); });
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
        await new Promise<void>((resolve) => { readyWaiters.set(id, resolve); child.send({ kind: 'reset', seed: newSeed + k }); });
      }
    },
    busyMs: () => ({ ...busy }),
    events: () => events.slice(),
    async close() {
      await Promise.all([...children.values()].map((c) => new Promise<void>((resolve) => { c.once('exit', () => resolve()); c.disconnect(); })));
    },
  };
}
