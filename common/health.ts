import type http from 'node:http';

/**
 * The bus's connection as a health probe reports it. `connected`: the client is connected. `reconnecting`: the
 * connection was lost and the client is trying again (forever: bus/nats-connect.ts sets no attempt limit), so an
 * outage of the NATS server ends by itself once it is back. `closed`: the bus was closed (shutdown) or the client
 * gave up: nothing brings it back but a restart.
 */
export type BusConnectionState = 'connected' | 'reconnecting' | 'closed';

/** What the bus reports of its connection (Bus.health). */
export interface BusHealth {
  /** `nats`, or `memory` for the in-process bus (always connected until closed). */
  kind: 'nats' | 'memory';
  state: BusConnectionState;
  /** Wall-clock ms since the Unix epoch when it entered `state`. */
  sinceMs: number;
  /** Connections lost and regained since the bus was created (0 for the in-process bus). */
  disconnects: number;
  reconnects: number;
}

/** The JSON body of /healthz and /readyz. */
export interface HealthBody {
  /** `ok` with HTTP 200, `failing` with 503. */
  status: 'ok' | 'failing';
  /** The bus (absent when the host has none), with `since` as ISO 8601 and the seconds in that state. */
  bus?: BusHealth & { since: string; forSeconds: number };
}

/**
 * Paths answered by answerHealth: `/healthz` (and daprd's `/v1.0/healthz`) is liveness, `/readyz` readiness.
 *
 * - Liveness (`/healthz`, the Kubernetes livenessProbe and Dapr's app health check): 200 while the process can
 *   still do its work by itself, bus `connected` or `reconnecting`: a NATS outage is outside this process, and
 *   restarting it would not end the outage, only lose the transfers' in-memory state and reconnect later. 503 only
 *   when the bus is `closed` (a restart is what brings it back).
 * - Readiness (`/readyz`, the readinessProbe): 200 only while the bus is `connected`; 503 while it reconnects or is
 *   closed, so new callers go to an instance that can run transfers now. The instance stays up and comes back
 *   into service by itself when the bus reconnects.
 *
 * Both answer the same JSON (HealthBody): the bus's kind, state, since when and its disconnect/reconnect counts.
 */
export const HEALTH_PATHS: ReadonlyMap<string, 'live' | 'ready'> = new Map([
  ['/healthz', 'live'],
  ['/v1.0/healthz', 'live'],
  ['/readyz', 'ready'],
]);

/** The status and body of probe `kind` for a bus in `bus` (undefined: no bus to report, always 200). */
export function healthAnswer(
  kind: 'live' | 'ready',
  bus: BusHealth | undefined,
  now = Date.now(),
): { status: 200 | 503; body: HealthBody } {
  const ok =
    bus === undefined || bus.state === 'connected' || (kind === 'live' && bus.state === 'reconnecting');
  return {
    status: ok ? 200 : 503,
    body: {
      status: ok ? 'ok' : 'failing',
      ...(bus
        ? {
            bus: {
              ...bus,
              since: new Date(bus.sinceMs).toISOString(),
              forSeconds: Math.max(0, Math.round((now - bus.sinceMs) / 1000)),
            },
          }
        : {}),
    },
  };
}

/**
 * Answers `path` when it is one of HEALTH_PATHS (any method; no authentication: probes carry none) and returns
 * true; else false and `res` is untouched. `bus` is read on each probe; one that throws counts as no report.
 */
export function answerHealth(
  path: string,
  res: Pick<http.ServerResponse, 'writeHead' | 'end'>,
  bus: (() => BusHealth | undefined) | undefined,
): boolean {
  const kind = HEALTH_PATHS.get(path);
  if (kind === undefined) return false;
  let report: BusHealth | undefined;
  try {
    report = bus?.();
  } catch {
    report = undefined;
  }
  const { status, body } = healthAnswer(kind, report);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
  return true;
}
