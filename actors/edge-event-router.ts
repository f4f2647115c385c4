import { redactUrl } from '../common/redact.js';
import {
  createEdgeEventBridge,
  DEFAULT_MAX_EDGES,
  type EdgeEventBridge,
  type EdgeEventBridgeStats,
} from '../bus/edge-events.js';
import type { Bus } from '../bus/types.js';
import { createLogLimiter } from '../common/log-limit.js';
import type { ActorHost, ActorProxy } from '../runtime/types.js';
import type { Logger } from '../common/logger.js';
import { isPortalError } from '../common/errors.js';
import type { EdgeTelemetryEvent } from '../common/vocabulary.js';
import type { EdgeConfig, EdgeTelemetry } from './types.js';
import { actorProxy, type EdgeActorApi } from './api.js';

/** EdgeActor.telemetry's argument from a telemetry message (its last bandwidth and RTT samples). */
function telemetryOf(ev: EdgeTelemetryEvent, bandwidth?: number, rtt?: number): EdgeTelemetry {
  return {
    online: ev.online,
    metered: ev.metered,
    batteryLow: ev.battery?.low,
    maxParallel: ev.maxParallel,
    bandwidth,
    rtt,
  };
}

/** What routeEdgeEvents counts besides the bridge's own (bus/edge-events.ts). */
export interface EdgeEventRouterStats extends EdgeEventBridgeStats {
  /**
   * Announcements refused: their URL or kind differed from the one a transfer that uses the edge now fetches from
   * (EdgeActor.configure answered PORTAL_TRANSFER_CONFLICT). `portal_edge_announcements_refused_total` in /metrics.
   */
  refusedAnnouncements: number;
}

/** The running router: the bridge, with its counts. */
export interface EdgeEventRouter extends EdgeEventBridge {
  stats(): EdgeEventRouterStats;
}

/**
 * Feeds edge events from the bus into the actors: telemetry to the edge's EdgeActor (a message with a
 * URL the edge was not configured with here configures it — an announcement, also after heartbeats
 * without a URL, which wait for it quietly; an announcement of another URL or kind for an edge a running
 * transfer uses is refused, warned about naming the edge and counted, and the rest of that message is not
 * applied either: the edge keeps the URL the transfer fetches from), availability (`have`) to the
 * SchedulerActor of each transfer of that manifest (`opts.transfersOf`; default: the transfer whose id is the
 * manifest id), which adds a new edge in a spare slot. Errors are logged (rate-limited); one bad event never stops the others. At most
 * `opts.maxEdges` edges are tracked (createEdgeEventBridge); a heartbeat (telemetry without a URL) of an edge
 * nothing here knows — never announced with its URL, no EdgeActor configured by a transfer — is dropped, counted
 * (stats().unknownEvents) and logged as a rate-limited warning, and its edge gives its slot to the next new edge, so
 * heartbeats of invented ids never shut real edges out; events of further edges are dropped once every slot holds a
 * known edge. `opts.ignore` skips an edge's events (a swarm peer's own announcements coming back to it).
 */
export function routeEdgeEvents(
  bus: Bus,
  host: ActorHost,
  logger: Logger,
  opts: {
    maxEdges?: number;
    ignore?: (edgeId: string) => boolean;
    /** The ids of the transfers of a manifest that run here (a node whose transfer ids are not manifest ids). */
    transfersOf?: (manifestId: string) => Iterable<string>;
    /** Told of each edge announced (or moved) with the configuration its EdgeActor got (e.g. its location). */
    onAnnounce?: (edgeId: string, cfg: EdgeConfig) => void;
    /**
     * Filled with each announced URL as sent, credentials included (PortalServices.announcedEdgeUrls): the
     * EdgeActor is configured with it redacted.
     */
    realUrls?: Map<string, string>;
  } = {},
): EdgeEventRouter {
  const ignore = opts.ignore ?? ((): boolean => false);
  const transfersOf = opts.transfersOf ?? ((manifestId: string): Iterable<string> => [manifestId]);
  // lines anyone on the bus can trigger at will are rate-limited (a flood costs a counter, not a log line each)
  const gapLog = createLogLimiter();
  const errorLog = createLogLimiter();
  const dropLog = createLogLimiter();
  const refuseLog = createLogLimiter();
  const unknownLog = createLogLimiter();
  let refusedAnnouncements = 0;
  /**
   * Configures the edge as announced; false when refused because a transfer uses it with another URL or kind. A
   * user that has ended (counted after a crash, see EdgeActor.release) is released first, as a start's claim does.
   */
  const configureAnnounced = async (
    edge: ActorProxy<EdgeActorApi>,
    edgeId: string,
    cfg: EdgeConfig,
  ): Promise<boolean> => {
    let err: unknown;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await edge.invoke('configure', cfg);
        return true;
      } catch (e) {
        if (!isPortalError(e, 'PORTAL_TRANSFER_CONFLICT')) throw e;
        err = e;
      }
      if (attempt > 0) break;
      const { users } = await edge.invoke('listUsers');
      let released = false;
      for (const user of users) {
        const r = await actorProxy(host, 'SchedulerActor', user).invoke('releaseEdgeIfEnded', { edgeId });
        released ||= r.released;
      }
      if (!released) break;
    }
    refusedAnnouncements++;
    const { ok, suppressed } = refuseLog.allow();
    if (ok)
      logger.warn(
        { edgeId, url: cfg.url, kind: cfg.kind, reason: (err as Error).message, suppressed },
        'edge announcement refused: a running transfer fetches from this edge at another URL',
      );
    return false;
  };
  /** The URL each edge was last configured with from telemetry: a new or changed one (re)configures it. */
  const announced = new Map<string, string>();
  const bridge = createEdgeEventBridge(bus, {
    maxEdges: opts.maxEdges,
    onEdgeDropped(edgeId) {
      const { ok, suppressed } = dropLog.allow();
      if (ok)
        logger.warn(
          { edgeId, maxEdges: opts.maxEdges ?? DEFAULT_MAX_EDGES, suppressed },
          'edge event dropped: the tracked-edge cap is reached',
        );
    },
    async onTelemetry(ev) {
      if (ignore(ev.edgeId)) return;
      const edge = actorProxy(host, 'EdgeActor', ev.edgeId);
      const bandwidth = ev.bandwidth.at(-1)?.bytesPerSec;
      const rtt = ev.rtt.at(-1)?.rttMs;
      // Any message with a URL the edge was not configured with announces it: also after heartbeats without one
      // (a valid heartbeat, proto/portal.proto), and again when the edge moves.
      if (ev.url && announced.get(ev.edgeId) !== ev.url) {
        const realBefore = opts.realUrls?.get(ev.edgeId);
        opts.realUrls?.set(ev.edgeId, ev.url);
        const cfg: EdgeConfig = {
          // credentials in an announced URL (user:pass@, a signed query) stay in this host's memory
          url: redactUrl(ev.url),
          kind: ev.kind ?? 'portal',
          flags: 0,
          maxParallel: ev.maxParallel ?? 8,
          bandwidthHint: bandwidth,
          rttHint: rtt,
          ...(ev.location ? { location: ev.location } : {}),
          ...(ev.accepts !== undefined ? { accepts: ev.accepts } : {}),
        };
        if (!(await configureAnnounced(edge, ev.edgeId, cfg))) {
          // the real URL (credentials included) stays the one the transfer fetches from
          if (realBefore === undefined) opts.realUrls?.delete(ev.edgeId);
          else opts.realUrls?.set(ev.edgeId, realBefore);
          return;
        }
        announced.set(ev.edgeId, ev.url);
        opts.onAnnounce?.(ev.edgeId, { ...cfg, url: ev.url });
      }
      if (!ev.url && !announced.has(ev.edgeId)) {
        // A heartbeat of an edge not announced here yet: fine if something else configured its EdgeActor (a
        // transfer's request), else nothing to apply it to until a message brings the URL.
        try {
          await edge.invoke('telemetry', telemetryOf(ev, bandwidth, rtt));
        } catch (err) {
          if (!isPortalError(err, 'PORTAL_UNKNOWN_EDGE')) throw err;
          // anyone on the bus can send these under invented ids: rate-limited, and no claim on a tracked slot
          const { ok, suppressed } = unknownLog.allow();
          if (ok)
            logger.warn(
              { edgeId: ev.edgeId, suppressed },
              'heartbeat of an edge nothing here knows (never announced with its URL, in no transfer): dropped',
            );
          return 'unknown';
        }
        return;
      }
      await edge.invoke('telemetry', telemetryOf(ev, bandwidth, rtt));
    },
    async onHave(state) {
      if (ignore(state.edgeId)) return;
      const bitmap = Buffer.from(state.bitmap).toString('base64');
      let taken = false;
      for (const transferId of transfersOf(state.manifestId)) {
        const { edgeIndex } = await actorProxy(host, 'SchedulerActor', transferId).invoke('edgeHave', {
          edgeId: state.edgeId,
          manifestId: state.manifestId,
          bitmap,
        });
        if (edgeIndex >= 0) taken = true;
      }
      // no running transfer here took it (no such transfer, or the edge is not configured): no evidence
      if (!taken) return 'unknown';
    },
    onHaveGap(ev, knownSeq) {
      const { ok, suppressed } = gapLog.allow();
      if (ok)
        logger.warn(
          {
            edgeId: ev.edgeId,
            manifestId: ev.manifestId,
            seq: ev.seq,
            baseSeq: ev.baseSeq,
            knownSeq,
            suppressed,
          },
          'incremental have without its base: waiting for a full one',
        );
    },
    onError(err, subject) {
      const { ok, suppressed } = errorLog.allow();
      if (ok) logger.warn({ err, subject, suppressed }, 'edge event not applied');
    },
  });
  return {
    have: (edgeId, manifestId) => bridge.have(edgeId, manifestId),
    edges: () => bridge.edges(),
    stats: () => ({ ...bridge.stats(), refusedAnnouncements }),
    close: () => bridge.close(),
  };
}
