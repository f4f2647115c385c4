import { createEdgeEventBridge, DEFAULT_MAX_EDGES, type EdgeEventBridge } from '../bus/edge-events.js';
import type { Bus } from '../bus/types.js';
import { createLogLimiter } from '../common/log-limit.js';
import type { ActorHost } from '../runtime/types.js';
import type { Logger } from '../common/logger.js';
import type { EdgeConfig } from './types.js';
import { actorProxy } from './api.js';

/**
 * Feeds edge events from the bus into the actors: telemetry to the edge's EdgeActor (the first
 * message of an edge with a URL configures it — an announcement), availability (`have`) to the
 * SchedulerActor of that manifest's transfer (transfer id = manifest id), which adds a new edge in
 * a spare slot. Errors are logged (rate-limited); one bad event never stops the others. At most
 * `opts.maxEdges` edges are tracked (createEdgeEventBridge); events of further edges are dropped. `opts.ignore`
 * skips an edge's events (a swarm peer's own announcements coming back to it).
 */
export function routeEdgeEvents(
  bus: Bus,
  host: ActorHost,
  logger: Logger,
  opts: { maxEdges?: number; ignore?: (edgeId: string) => boolean } = {},
): EdgeEventBridge {
  const ignore = opts.ignore ?? ((): boolean => false);
  // lines anyone on the bus can trigger at will are rate-limited (a flood costs a counter, not a log line each)
  const gapLog = createLogLimiter();
  const errorLog = createLogLimiter();
  const dropLog = createLogLimiter();
  return createEdgeEventBridge(bus, {
    maxEdges: opts.maxEdges,
    onEdgeDropped(edgeId) {
      const { ok, suppressed } = dropLog.allow();
      if (ok)
        logger.warn(
          { edgeId, maxEdges: opts.maxEdges ?? DEFAULT_MAX_EDGES, suppressed },
          'edge event dropped: the tracked-edge cap is reached',
        );
    },
    async onTelemetry(ev, { first }) {
      if (ignore(ev.edgeId)) return;
      const edge = actorProxy(host, 'EdgeActor', ev.edgeId);
      const bandwidth = ev.bandwidth.at(-1)?.bytesPerSec;
      const rtt = ev.rtt.at(-1)?.rttMs;
      if (first && ev.url) {
        const cfg: EdgeConfig = {
          url: ev.url,
          kind: ev.kind ?? 'portal',
          flags: 0,
          maxParallel: ev.maxParallel ?? 8,
          bandwidthHint: bandwidth,
          rttHint: rtt,
        };
        await edge.invoke('configure', cfg);
      }
      await edge.invoke('telemetry', {
        online: ev.online,
        metered: ev.metered,
        batteryLow: ev.battery?.low,
        maxParallel: ev.maxParallel,
        bandwidth,
        rtt,
      });
    },
    async onHave(state) {
      if (ignore(state.edgeId)) return;
      const bitmap = Buffer.from(state.bitmap).toString('base64');
      await actorProxy(host, 'SchedulerActor', state.manifestId).invoke('edgeHave', {
        edgeId: state.edgeId,
        manifestId: state.manifestId,
        bitmap,
      });
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
}
