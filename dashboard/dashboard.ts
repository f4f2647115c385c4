import type { TransferStatus } from '../actors/index.js';
import { actorProxy } from '../actors/api.js';
import { checkArg, PortalError } from '../common/errors.js';
import type { ActorHostStats } from '../runtime/index.js';
import { createDashboardMetrics } from './metrics.js';
import { startDashboardServer } from './server.js';
import { createTracker } from './tracker.js';
import type { Dashboard, DashboardOptions, DashboardSnapshot } from './types.js';

/** A status call slower than this counts as a failed poll of that transfer. */
const STATUS_TIMEOUT_MS = 10_000;

/** The states a transfer's status stays in until a new start, restart or forget (a new revision). */
const FINISHED_STATES = new Set<string>(['done', 'failed', 'cancelled']);

/**
 * Starts the live dashboard: polls `SchedulerActor.status` of every id `transfers()` lists every
 * `pollMs` through the actor host (so it works on the embedded and the Dapr host alike) — a finished one only
 * again once its `revision()` changed — and
 * serves the page (`/`), a server-sent event stream of snapshots (`/events`), the latest snapshot
 * (`/api/state`) and Prometheus metrics (`/metrics`). A status call that fails is shown as an
 * event and counted, never thrown. Rejects with PORTAL_INVALID_ARGUMENT on bad options and
 * PORTAL_DASHBOARD_LISTEN_FAILED when the port cannot be bound.
 */
export async function createDashboard(opts: DashboardOptions): Promise<Dashboard> {
  checkArg(
    !!opts && typeof opts.host?.proxy === 'function' && typeof opts.host.stats === 'function',
    'createDashboard(opts.host)',
    'an ActorHost',
  );
  checkArg(
    typeof opts.transfers === 'function',
    'createDashboard(opts.transfers)',
    'a function returning transfer ids',
  );
  checkArg(!!opts.logger, 'createDashboard(opts.logger)', 'a logger');
  const pollMs = opts.pollMs ?? 500;
  checkArg(
    Number.isFinite(pollMs) && pollMs >= 20 && pollMs <= 1000,
    'createDashboard(opts.pollMs)',
    'a number of ms in [20, 1000] (the page updates at least once a second)',
  );
  const port = opts.port ?? 0;
  checkArg(
    Number.isInteger(port) && port >= 0 && port <= 65535,
    'createDashboard(opts.port)',
    'an integer port in [0, 65535]',
  );
  const log = opts.logger.child({ component: 'dashboard' });
  const { host } = opts;

  const tracker = createTracker({
    pollMs,
    historyPoints: opts.historyPoints,
    maxEvents: opts.maxEvents,
    keepFinished: opts.keepFinished,
  });
  // Assigned once, after the metrics whose callbacks read it are created.
  // eslint-disable-next-line prefer-const
  let server: Awaited<ReturnType<typeof startDashboardServer>> | undefined;
  const metrics = createDashboardMetrics({
    host,
    snapshot: () => tracker.snapshot(),
    engineStats: opts.engineStats,
    logger: log,
    sseClients: () => server?.clients() ?? 0,
    sseDropped: () => server?.droppedClients() ?? 0,
  });
  server = await startDashboardServer({
    port,
    hostname: opts.hostname ?? '127.0.0.1',
    maxBufferedBytes: opts.sseMaxBufferedBytes,
    logger: log,
    snapshot: () => tracker.snapshot(),
    metrics: async () => ({ contentType: metrics.registry.contentType, body: await metrics.render() }),
  });

  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  /** Transfers whose last status was finished, with the revision (opts.revision) read before that status call. */
  const finishedRevision = new Map<string, number>();
  const revisionOf = (id: string): number | undefined => {
    try {
      return opts.revision?.(id);
    } catch (err) {
      log.warn({ err, transferId: id }, 'dashboard: revision() failed');
      return undefined;
    }
  };
  let inFlight: Promise<DashboardSnapshot> | undefined;

  async function statusOf(id: string): Promise<TransferStatus | Error> {
    let t: NodeJS.Timeout | undefined;
    const timeout = new Promise<Error>((resolve) => {
      t = setTimeout(
        () =>
          resolve(
            new PortalError(
              'PORTAL_DASHBOARD_STATUS_TIMEOUT',
              `SchedulerActor.status of ${id} did not answer within ${STATUS_TIMEOUT_MS} ms`,
            ),
          ),
        STATUS_TIMEOUT_MS,
      );
    });
    try {
      return await Promise.race([
        actorProxy(host, 'SchedulerActor', id).invoke('status', { edges: true }),
        timeout,
      ]);
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    } finally {
      clearTimeout(t);
    }
  }

  async function pollOnce(): Promise<DashboardSnapshot> {
    let ids: string[];
    try {
      ids = [...new Set(opts.transfers())];
    } catch (err) {
      log.warn({ err }, 'dashboard: transfers() failed');
      ids = [];
    }
    let queued: readonly string[] = [];
    try {
      queued = opts.queued?.() ?? [];
    } catch (err) {
      log.warn({ err }, 'dashboard: queued() failed');
    }
    const listed = new Set(ids);
    for (const id of finishedRevision.keys()) if (!listed.has(id)) finishedRevision.delete(id);
    // a finished transfer is asked again only once its revision changed (read before the call: a restart
    // during it leaves the old one recorded, so the next poll asks again)
    const asked = ids
      .map((id) => ({ id, revision: revisionOf(id) }))
      .filter(({ id, revision }) => revision === undefined || finishedRevision.get(id) !== revision);
    const results = await Promise.all(asked.map(({ id }) => statusOf(id)));
    const statuses = new Map<string, TransferStatus | Error>();
    asked.forEach(({ id, revision }, i) => {
      const r = results[i];
      if (r instanceof Error) {
        metrics.countPollError();
        log.debug({ err: r, transferId: id }, 'dashboard: status failed');
      }
      if (!(r instanceof Error) && revision !== undefined && FINISHED_STATES.has(r.state))
        finishedRevision.set(id, revision);
      else finishedRevision.delete(id);
      statuses.set(id, r);
    });
    let hostStats: ActorHostStats | null = null;
    try {
      hostStats = host.stats();
    } catch (err) {
      log.warn({ err }, 'dashboard: host.stats() failed');
    }
    let engineStats: unknown;
    try {
      engineStats = opts.engineStats?.();
    } catch (err) {
      log.warn({ err }, 'dashboard: engineStats() failed');
    }
    const snap = tracker.update({
      at: Date.now(),
      polled: ids,
      queued,
      statuses,
      hostKind: host.kind,
      hostStats,
      engineStats,
    });
    metrics.forget(tracker.evicted());
    metrics.observe(snap);
    server?.broadcast(snap);
    return snap;
  }

  function poll(): Promise<DashboardSnapshot> {
    const run = (inFlight ?? Promise.resolve()).then(pollOnce, pollOnce);
    inFlight = run;
    void run.finally(() => {
      if (inFlight === run) inFlight = undefined;
    });
    return run;
  }

  function schedule(): void {
    if (closed) return;
    timer = setTimeout(() => {
      poll()
        .catch((err: unknown) => log.error({ err }, 'dashboard: poll failed'))
        .finally(schedule);
    }, pollMs);
  }

  await poll().catch((err: unknown) => log.error({ err }, 'dashboard: first poll failed'));
  schedule();
  log.info({ url: server.url }, 'dashboard listening');

  return {
    url: server.url,
    metrics: metrics.registry,
    registerMetricsSource: (source) => metrics.registerSource(source),
    recordDeadLetter: (reason, count) => metrics.recordDeadLetter(reason, count),
    forgetTransfer(transferId) {
      finishedRevision.delete(transferId);
      tracker.drop(transferId);
      metrics.forget([transferId]);
    },
    snapshot: () => tracker.snapshot(),
    pollNow: poll,
    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      await inFlight?.catch(() => undefined);
      await server?.close();
    },
  };
}
