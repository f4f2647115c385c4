import type { ActorHost, ActorHostStats, ActorRef } from '../../runtime/index.js';
import type { EdgeView, TransferStatus } from '../../actors/index.js';
import { zeroCounters } from '../../scheduler/index.js';

/** An EdgeView with plausible defaults. */
export function edgeView(id: string, over: Partial<EdgeView> = {}): EdgeView {
  return {
    id,
    url: `http://127.0.0.1:1/${id}`,
    kind: 'portal',
    flags: 0,
    maxParallel: 4,
    available: true,
    bandwidth: 1_000_000,
    rtt: 20,
    health: 0.9,
    successRate: 1,
    uptime: 1,
    consistency: 1,
    transferMs: 10,
    transferDevMs: 1,
    samples: 5,
    epoch: 0,
    queueDepth: 0,
    ...over,
  };
}

/** A running TransferStatus with plausible defaults. */
export function transferStatus(id: string, over: Partial<TransferStatus> = {}): TransferStatus {
  return {
    transferId: id,
    state: 'running',
    total: 100,
    complete: 0,
    inFlight: 0,
    pending: 100,
    failedPermanent: 0,
    bytesDone: 0,
    fileSize: 100 * 1024,
    startedAt: 1_000,
    verified: false,
    resumedChunks: 0,
    recoveredChunks: 0,
    ticks: 0,
    tickMsP50: 0.2,
    tickMsP99: 0.5,
    backend: 'cpu',
    counters: zeroCounters(),
    edges: [edgeView('a'), edgeView('b')],
    perEdgeChunks: [0, 0],
    ...over,
  };
}

/** An ActorHost whose SchedulerActor.status answers from `statuses` (an Error entry rejects). */
export function fakeHost(
  statuses: Map<string, TransferStatus | Error>,
): ActorHost & { calls: number; callsOf: Map<string, number> } {
  const stats: ActorHostStats = {
    activations: 3,
    deactivations: 0,
    calls: 0,
    active: 3,
    activeByType: { SchedulerActor: 3 },
    remindersFired: 0,
    timersFired: 7,
  };
  const host = {
    kind: 'embedded' as const,
    calls: 0,
    /** status calls per transfer id. */
    callsOf: new Map<string, number>(),
    register() {},
    proxy(actorType: string, actorId: string): ActorRef {
      return {
        actorType,
        actorId,
        async invoke<R>(method: string): Promise<R> {
          host.calls++;
          host.callsOf.set(actorId, (host.callsOf.get(actorId) ?? 0) + 1);
          stats.calls++;
          if (actorType !== 'SchedulerActor' || method !== 'status')
            throw new Error(`unexpected ${actorType}.${method}`);
          const s = statuses.get(actorId);
          if (!s) throw new Error(`no transfer ${actorId}`);
          if (s instanceof Error) throw s;
          return structuredClone(s) as R;
        },
      };
    },
    async stop() {},
    stats: () => ({ ...stats }),
  };
  return host;
}
