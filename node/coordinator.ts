import {
  createPeerDirectory,
  subjects,
  type Bus,
  type CoordOutcomeMessage,
  type CoordSubmitMessage,
  type PeerDirectory,
  type Subscription,
} from '../bus/index.js';
import {
  actorProxy,
  type ActorRefSource,
  type CoordinatorServices,
  type TaskOutcome,
} from '../actors/index.js';
import { codeOf } from '../common/errors.js';
import type { Logger } from '../common/logger.js';

/** Counters of a coordinator bridge. */
export interface CoordinatorBridgeStats {
  peers: number;
  pendingAttempts: number;
  submissions: number;
  rejectedSubmissions: number;
  outcomesPublished: number;
  unmatchedResults: number;
}

/** CoordinatorActor `coordinatorId` wired to its peers and clients over a Bus. */
export interface CoordinatorBridge {
  readonly coordinatorId: string;
  /** The services to give the actor host (before it starts): the peer transport and the outcome sink. */
  readonly services: Required<Pick<CoordinatorServices, 'coordinatorTransport' | 'coordinatorSink'>>;
  /** Starts listening (heartbeats, results, submissions) once `host` can take calls. */
  start(host: ActorRefSource): Promise<void>;
  stats(): CoordinatorBridgeStats;
  close(): void;
}

/**
 * Hosts the learned coordinator as a service (docs/coord-service.md): peers that announce themselves
 * on the bus are registered with CoordinatorActor `coordinatorId` (peerGone when they leave or go
 * silent; the actor keeps what it learned about them), its attempts travel as PeerTask messages,
 * answers come back through the PeerDirectory (those sent before a restart go to the actor's
 * `report` directly), tasks submitted on `portal.coord.<id>.submit` are handed to its `submit`, and
 * every final outcome is published on `portal.coord.<id>.outcome` (and kept for the actor's
 * `outcome` polling). `reconcileAfterMs` after start (default 5 s, more than a few heartbeats),
 * peers the actor still counts as present but nobody has heard from are declared gone, so the
 * attempts a restarted coordinator had in flight on a peer that died meanwhile are retried.
 */
export function createCoordinatorBridge(opts: {
  bus: Bus;
  coordinatorId: string;
  logger: Logger;
  reconcileAfterMs?: number;
  missedHeartbeats?: number;
}): CoordinatorBridge {
  const { bus, coordinatorId } = opts;
  const log = opts.logger.child({ component: 'coordinator-bridge', coordinatorId });
  const queue = `coord-${coordinatorId}`;
  let directory: PeerDirectory | undefined;
  let submitSub: Subscription | undefined;
  let reconcileTimer: NodeJS.Timeout | undefined;
  const stats: CoordinatorBridgeStats = {
    peers: 0,
    pendingAttempts: 0,
    submissions: 0,
    rejectedSubmissions: 0,
    outcomesPublished: 0,
    unmatchedResults: 0,
  };
  const sink = (o: TaskOutcome): void => {
    const msg: CoordOutcomeMessage = {
      coordinatorId,
      taskId: o.taskId,
      type: o.type,
      ok: o.ok,
      peer: o.peer,
      attempts: o.attempts,
      failures: o.failures,
      latencyMs: o.latencyMs,
      ...(o.ok ? { output: o.output } : { error: o.error ?? 'failed' }),
    };
    bus.publish(subjects.coordOutcome(coordinatorId), msg).then(
      () => {
        stats.outcomesPublished++;
      },
      (err: unknown) => log.error({ err, taskId: o.taskId }, 'cannot publish the outcome'),
    );
  };
  return {
    coordinatorId,
    services: {
      coordinatorTransport: {
        execute: (peer, d) =>
          directory
            ? directory.execute(peer, d)
            : Promise.reject(new Error('coordinator bridge not started')),
      },
      coordinatorSink: sink,
    },
    async start(host) {
      const coord = actorProxy(host, 'CoordinatorActor', coordinatorId);
      const call = (what: string, p: Promise<unknown>): void => {
        p.catch((err: unknown) => log.error({ err }, `${what} failed`));
      };
      directory = createPeerDirectory({
        bus,
        coordinatorId,
        resultQueue: queue,
        missedHeartbeats: opts.missedHeartbeats,
        logger: opts.logger,
        onPeerUp: (h) =>
          call(
            'registerPeer',
            coord.invoke('registerPeer', {
              id: h.peerId,
              maxConcurrent: h.maxInFlight,
              latencyHintMs: h.latencyHintMs,
              taskTypes: h.taskTypes,
            }),
          ),
        // the resource pressure (CPU, memory) becomes the model's pressure feature for the peer's
        // next attempts; its queue is the coordinator's load feature already
        onHeartbeat: (h) =>
          call(
            'peerTelemetry',
            coord.invoke('peerTelemetry', {
              id: h.peerId,
              pressure: Math.min(1, Math.max(0, h.cpuPressure, h.memoryPressure)),
              load: h.load,
            }),
          ),
        onPeerGone: (id, reason) => call('peerGone', coord.invoke('peerGone', { id, reason })),
        onUnmatchedResult: (r) => {
          stats.unmatchedResults++;
          call(
            'report',
            coord.invoke('report', {
              taskId: r.taskId,
              attempt: r.attempt,
              peer: r.peerId,
              ok: r.ok,
              output: r.output,
              error: r.error,
              serviceMs: r.serviceMs,
              pressure: r.pressure,
            }),
          );
        },
      });
      submitSub = bus.subscribe<CoordSubmitMessage>(
        subjects.coordSubmit(coordinatorId),
        async (m) => {
          stats.submissions++;
          try {
            await coord.invoke('submit', { tasks: m.tasks });
          } catch (err) {
            // a bad submission (a task id already queued, …) is the submitter's error: logged, not redelivered
            if (codeOf(err) !== 'PORTAL_INVALID_ARGUMENT') throw err;
            stats.rejectedSubmissions++;
            log.warn({ err, submitter: m.submitter, tasks: m.tasks.length }, 'submission refused');
          }
        },
        { queue },
      );
      await Promise.all([directory.ready, submitSub.ready ?? Promise.resolve()]);
      reconcileTimer = setTimeout(() => {
        const present = new Set(directory?.peers().map((p) => p.peerId));
        call(
          'reconcile',
          coord.invoke('snapshot').then(async (snap) => {
            for (const p of snap.peers)
              if (p.online && !present.has(p.id))
                await coord.invoke('peerGone', {
                  id: p.id,
                  reason: 'not heard from since the coordinator started',
                });
          }),
        );
      }, opts.reconcileAfterMs ?? 5000);
      reconcileTimer.unref();
      log.info('coordinator listening');
    },
    stats: () => ({
      ...stats,
      peers: directory?.peers().length ?? 0,
      pendingAttempts: directory?.pending() ?? 0,
    }),
    close() {
      if (reconcileTimer) clearTimeout(reconcileTimer);
      submitSub?.unsubscribe();
      directory?.close();
    },
  };
}
