/**
 * The learned coordinator's peer protocol over any Bus (NATS in production, the memory bus in unit
 * tests): tasks to `portal.peer.<peerId>.task`, answers to `portal.coord.<coordId>.result`,
 * heartbeats on `portal.peer.<peerId>.heartbeat` (docs/coord-service.md). Two ends:
 *
 * - createPeerDirectory: the coordinator's end. It learns which peers exist from their heartbeats,
 *   sends attempts, matches answers to them, and declares a peer gone when it leaves or misses
 *   `missedHeartbeats` heartbeats in a row — its attempts in flight then fail with
 *   PORTAL_PEER_LOST so the coordinator retries them elsewhere.
 * - joinAsPeer: a peer's end. It takes its tasks, hands each to `run` and publishes the answer, and
 *   sends a heartbeat every `heartbeatMs` (its advertisement and telemetry).
 *
 * Neither end imports the NATS client: the Bus does (bus/nats-bus.ts).
 */
import { PortalError } from '../common/errors.js';
import { createSilentLogger, type Logger } from '../common/logger.js';
import {
  subjects,
  type Bus,
  type PeerHeartbeatMessage,
  type PeerResultMessage,
  type PeerTaskMessage,
  type Subscription,
} from './types.js';

/** An attempt as the coordinator sends it (the shape of actors' PeerDispatch). */
export interface PeerAttempt {
  taskId: string;
  attempt: number;
  peer: string;
  type: string;
  work: number;
  payload?: unknown;
  hour: number;
}

/** A peer's answer to one attempt (the shape of actors' PeerAnswer). */
export interface PeerAttemptAnswer {
  ok: boolean;
  output?: unknown;
  error?: string;
  pressure?: number;
  serviceMs?: number;
}

/** What the directory tells its owner. */
export interface PeerDirectoryEvents {
  /** A peer announced itself (first heartbeat, or its first after it was gone) or changed its advertisement. */
  onPeerUp?: (h: PeerHeartbeatMessage) => void;
  /** Every heartbeat of a present peer (after onPeerUp for its first): its telemetry. */
  onHeartbeat?: (h: PeerHeartbeatMessage) => void;
  /** A peer left or went silent; its attempts in flight have been failed. */
  onPeerGone?: (peerId: string, reason: 'left' | 'silent') => void;
  /** An answer that matches no attempt this process sent (it was sent before a restart): hand it to the coordinator. */
  onUnmatchedResult?: (r: PeerResultMessage) => void;
}

/** The coordinator's view of its peers over a Bus; `execute` has the shape of actors' PeerTransport. */
export interface PeerDirectory {
  /** Sends one attempt to its peer; resolves with the answer, rejects with PORTAL_PEER_LOST when the peer is not there or goes away first. */
  execute(peer: string, d: PeerAttempt): Promise<PeerAttemptAnswer>;
  /** The last heartbeat of every peer present now. */
  peers(): PeerHeartbeatMessage[];
  /** Attempts sent and not answered yet. */
  pending(): number;
  /** Resolves once the subscriptions receive messages. */
  readonly ready: Promise<void>;
  /** Stops listening; pending attempts fail with PORTAL_HOST_STOPPED. */
  close(): void;
}

interface Pending {
  peer: string;
  resolve: (a: PeerAttemptAnswer) => void;
  reject: (e: Error) => void;
}

interface Known {
  hb: PeerHeartbeatMessage;
  lastSeen: number;
  present: boolean;
  /** Signature of the advertisement, to tell the owner when it changes. */
  advert: string;
}

const advertOf = (h: PeerHeartbeatMessage): string =>
  `${h.taskTypes.join(',')}|${h.maxInFlight}|${h.concurrency}|${h.latencyHintMs}`;

/**
 * Creates the coordinator `coordinatorId`'s peer directory on `bus`. `missedHeartbeats` (default
 * 3) heartbeats missed in a row — judged by each peer's own advertised interval — make a peer
 * gone; `now` is the clock it judges with (ms, default performance.now). Throws
 * PORTAL_INVALID_ARGUMENT for a coordinatorId that is not a subject token.
 */
export function createPeerDirectory(
  opts: {
    bus: Bus;
    coordinatorId: string;
    missedHeartbeats?: number;
    /**
     * Queue group of the result subscription. A stable name makes a JetStream bus keep one durable
     * consumer across restarts (answers sent while the coordinator was down are delivered when it
     * is back) and share the answers among the instances of one coordinator.
     */
    resultQueue?: string;
    /** For this long after start, an attempt for a peer not heard from yet waits for its first heartbeat (default 3 s). */
    startGraceMs?: number;
    logger?: Logger;
    now?: () => number;
  } & PeerDirectoryEvents,
): PeerDirectory {
  const { bus, coordinatorId } = opts;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(coordinatorId ?? ''))
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `coordinatorId: expected 1–64 of A-Z a-z 0-9 _ -, got ${JSON.stringify(coordinatorId)}`,
    );
  const log = (opts.logger ?? createSilentLogger()).child({ component: 'peer-directory', coordinatorId });
  const missed = opts.missedHeartbeats ?? 3;
  const now = opts.now ?? (() => performance.now());
  const known = new Map<string, Known>();
  const pending = new Map<string, Pending>();
  const key = (taskId: string, attempt: number): string => `${attempt}\u0000${taskId}`;
  let closed = false;
  const startedAt = now();
  const startGraceMs = opts.startGraceMs ?? 3000;

  const gone = (peerId: string, reason: 'left' | 'silent'): void => {
    const k = known.get(peerId);
    if (!k || !k.present) return;
    k.present = false;
    let failed = 0;
    for (const [id, p] of pending)
      if (p.peer === peerId) {
        pending.delete(id);
        failed++;
        p.reject(
          new PortalError(
            'PORTAL_PEER_LOST',
            `peer ${peerId} ${reason === 'left' ? 'left' : 'stopped sending heartbeats'} with the attempt in flight`,
          ),
        );
      }
    log.info({ peer: peerId, reason, failedAttempts: failed }, 'peer gone');
    opts.onPeerGone?.(peerId, reason);
  };

  const subs: Subscription[] = [
    bus.subscribe<PeerHeartbeatMessage>(subjects.allPeerHeartbeats, (h) => {
      if (closed) return;
      const k = known.get(h.peerId);
      if (h.leaving) {
        if (k) k.hb = h;
        gone(h.peerId, 'left');
        return;
      }
      const advert = advertOf(h);
      if (!k) known.set(h.peerId, { hb: h, lastSeen: now(), present: true, advert });
      else {
        k.hb = h;
        k.lastSeen = now();
      }
      if (!k || !k.present || k.advert !== advert) {
        if (k) {
          k.present = true;
          k.advert = advert;
        }
        log.info({ peer: h.peerId, taskTypes: h.taskTypes, maxInFlight: h.maxInFlight }, 'peer up');
        opts.onPeerUp?.(h);
      }
      opts.onHeartbeat?.(h);
    }),
    bus.subscribe<PeerResultMessage>(
      subjects.coordResult(coordinatorId),
      (r) => {
        const p = pending.get(key(r.taskId, r.attempt));
        if (!p) {
          opts.onUnmatchedResult?.(r);
          return;
        }
        pending.delete(key(r.taskId, r.attempt));
        p.resolve({
          ok: r.ok,
          output: r.output,
          error: r.error,
          pressure: r.pressure,
          serviceMs: r.serviceMs,
        });
      },
      opts.resultQueue ? { queue: opts.resultQueue } : undefined,
    ),
  ];

  // Silence check every 100 ms (a loop over the known peers; heartbeats are ≥ 100 ms apart in practice).
  const timer = setInterval(() => {
    const t = now();
    for (const [id, k] of known)
      if (k.present && t - k.lastSeen > missed * k.hb.intervalMs) gone(id, 'silent');
  }, 100);
  timer.unref();

  return {
    async execute(peer, d) {
      if (closed) throw new PortalError('PORTAL_HOST_STOPPED', 'peer directory closed');
      // a peer not heard from yet, shortly after start (a restarted coordinator dispatching to the
      // peers its state remembers): wait for its heartbeat a while before giving up on it
      while (!known.has(peer) && now() - startedAt < startGraceMs && !closed)
        await new Promise((r) => setTimeout(r, 50));
      const k = known.get(peer);
      if (!k?.present) throw new PortalError('PORTAL_PEER_LOST', `peer ${peer} is not present`);
      const msg: PeerTaskMessage = {
        coordinatorId,
        peerId: peer,
        taskId: d.taskId,
        attempt: d.attempt,
        type: d.type,
        work: d.work,
        hour: d.hour,
        sentAtMs: Date.now(),
      };
      if (d.payload !== undefined) msg.payload = d.payload;
      const answer = new Promise<PeerAttemptAnswer>((resolve, reject) =>
        pending.set(key(d.taskId, d.attempt), { peer, resolve, reject }),
      );
      // the peer may go away while the publish below is still waiting for JetStream's ack: the
      // rejection is then the caller's once `answer` is returned, not an unhandled one meanwhile
      answer.catch(() => undefined);
      try {
        await bus.publish(subjects.peerTask(peer), msg);
      } catch (err) {
        pending.delete(key(d.taskId, d.attempt));
        throw err;
      }
      return answer;
    },
    peers: () => [...known.values()].filter((k) => k.present).map((k) => k.hb),
    pending: () => pending.size,
    ready: Promise.all(subs.map((s) => s.ready ?? Promise.resolve())).then(() => undefined),
    close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      for (const s of subs) s.unsubscribe();
      for (const p of pending.values())
        p.reject(new PortalError('PORTAL_HOST_STOPPED', 'peer directory closed with the attempt in flight'));
      pending.clear();
    },
  };
}

/** What a peer advertises in its heartbeats (PeerHeartbeatMessage without the telemetry). */
export interface PeerAdvert {
  peerId: string;
  taskTypes: string[];
  maxInFlight: number;
  concurrency: number;
  latencyHintMs: number;
}

/** The telemetry part of a heartbeat. */
export type PeerTelemetryFields = Pick<
  PeerHeartbeatMessage,
  'load' | 'running' | 'queued' | 'pressure' | 'cpuPressure' | 'memoryPressure' | 'completed' | 'failed'
>;

/** A peer on the bus. */
export interface BusPeer {
  /** Resolves once its task subscription receives messages and its first heartbeat is out. */
  readonly ready: Promise<void>;
  /** Attempts received and not yet answered. */
  inFlight(): number;
  /**
   * Leaves: stops taking tasks, waits for the ones it took to be answered (at most `graceMs`,
   * default 30 s), and sends a last heartbeat with `leaving` so coordinators stop at once.
   */
  leave(graceMs?: number): Promise<void>;
}

/**
 * Joins `bus` as a peer: takes the attempts sent to `advert.peerId` (the subscription acks each on
 * receipt, so a JetStream bus does not redeliver a long task; a peer that dies with it is
 * detected by the coordinator, which retries elsewhere), runs each with `run` — which answers,
 * never rejects — and publishes the answer to the sending coordinator. Heartbeats carry `advert`
 * and `telemetry()` every `heartbeatMs` (default 1000).
 */
export function joinAsPeer(opts: {
  bus: Bus;
  advert: PeerAdvert;
  run: (
    t: PeerTaskMessage,
  ) => Promise<{ ok: boolean; output?: unknown; error?: string; serviceMs: number; pressure: number }>;
  telemetry: () => PeerTelemetryFields;
  heartbeatMs?: number;
  logger?: Logger;
}): BusPeer {
  const { bus, advert } = opts;
  const log = (opts.logger ?? createSilentLogger()).child({ component: 'bus-peer', peer: advert.peerId });
  const intervalMs = Math.max(1, Math.round(opts.heartbeatMs ?? 1000));
  let seq = 0;
  let inFlight = 0;
  let leaving = false;
  let idle: Array<() => void> = [];

  const heartbeat = async (last = false): Promise<void> => {
    const t = opts.telemetry();
    const h: PeerHeartbeatMessage = {
      ...advert,
      ...t,
      pressure: Math.min(1, Math.max(0, t.pressure)),
      cpuPressure: Math.min(1, Math.max(0, t.cpuPressure)),
      memoryPressure: Math.min(1, Math.max(0, t.memoryPressure)),
      intervalMs,
      leaving: last,
      seq: ++seq,
      sentAtMs: Date.now(),
    };
    await bus.publish(subjects.peerHeartbeat(advert.peerId), h);
  };

  const sub = bus.subscribe<PeerTaskMessage>(subjects.peerTask(advert.peerId), (t) => {
    if (leaving) {
      // a task that arrives after the last heartbeat: answer it failed so it is retried elsewhere now
      void bus
        .publish(subjects.coordResult(t.coordinatorId), {
          coordinatorId: t.coordinatorId,
          peerId: advert.peerId,
          taskId: t.taskId,
          attempt: t.attempt,
          ok: false,
          error: `peer ${advert.peerId} is leaving`,
          serviceMs: 0,
          pressure: 0,
          sentAtMs: Date.now(),
        } satisfies PeerResultMessage)
        .catch((err: unknown) => log.warn({ err }, 'cannot answer a task while leaving'));
      return;
    }
    inFlight++;
    void opts
      .run(t)
      .then((r) => {
        const msg: PeerResultMessage = {
          coordinatorId: t.coordinatorId,
          peerId: advert.peerId,
          taskId: t.taskId,
          attempt: t.attempt,
          ok: r.ok,
          serviceMs: r.serviceMs,
          pressure: Math.min(1, Math.max(0, r.pressure)),
          sentAtMs: Date.now(),
        };
        if (r.ok && r.output !== undefined) msg.output = r.output;
        if (!r.ok) msg.error = r.error ?? 'failed';
        return bus.publish(subjects.coordResult(t.coordinatorId), msg);
      })
      .catch((err: unknown) =>
        log.error({ err, taskId: t.taskId, attempt: t.attempt }, 'cannot publish the result'),
      )
      .finally(() => {
        inFlight--;
        if (inFlight === 0) idle.splice(0).forEach((w) => w());
      });
  });

  const timer = setInterval(() => {
    void heartbeat().catch((err: unknown) => log.warn({ err }, 'heartbeat not sent'));
  }, intervalMs);
  timer.unref();
  const ready = (sub.ready ?? Promise.resolve()).then(() => heartbeat());

  return {
    ready,
    inFlight: () => inFlight,
    async leave(graceMs = 30_000) {
      if (leaving) return;
      leaving = true;
      if (inFlight > 0)
        await new Promise<void>((r) => {
          const t = setTimeout(r, graceMs);
          idle.push(() => {
            clearTimeout(t);
            r();
          });
        });
      clearInterval(timer);
      sub.unsubscribe();
      idle = [];
      await heartbeat(true).catch((err: unknown) => log.warn({ err }, 'last heartbeat not sent'));
    },
  };
}
