import { randomUUID } from 'node:crypto';
import type { Logger } from '../common/logger.js';
import { daprRequest } from './dapr-client.js';

/** Options of watchDaprSidecar. */
export interface DaprSidecarWatchOptions {
  /** daprd's HTTP API. */
  readonly host: string;
  readonly port: number;
  /** Sent as `dapr-api-token`. */
  readonly apiToken?: string;
  /** Milliseconds between two checks of the sidecar (0: no polling; /dapr/config calls are still seen). */
  readonly intervalMs: number;
  /** A check without an answer after this long counts as unreachable (default: the interval, at least 500 ms). */
  readonly timeoutMs?: number;
  readonly logger: Logger;
  /**
   * The sidecar now serving this app is not the one the app's actors were activated through (it restarted, or
   * another daprd took its place): those activations, their timers and their lease on the actors are gone.
   */
  onReplaced(reason: string): void;
}

/** Watches this app's daprd: reachability (logged) and replacement (onReplaced). */
export interface DaprSidecarWatch {
  /** The sidecar fetched the app's actor configuration (GET /dapr/config): from the second time on, a new sidecar. */
  configRequested(): void;
  /** Marks the current sidecar as this app's and starts polling (call once the sidecar is up). */
  start(): Promise<void>;
  /** Checks the sidecar once now. */
  check(): Promise<void>;
  /** Whether the last check reached the sidecar (undefined before the first check). */
  readonly reachable: boolean | undefined;
  close(): void;
}

/** The daprd metadata attribute (GET/PUT /v1.0/metadata) this app marks its sidecar with. */
export const SIDECAR_MARK = 'portal.host.session';

/**
 * Watches the Dapr sidecar of an actor host. Dapr keeps actor activations and timers in daprd's memory: when
 * daprd dies and a new one starts for the same app, the new one knows none of the actors the app still holds,
 * and placement may hand them right back to this app. Two signals tell a new sidecar apart:
 *
 * - daprd fetches GET /dapr/config once when it starts, before it joins placement: a second fetch is a new
 *   sidecar, seen before it can route any actor call here (no race);
 * - the app marks its sidecar with a metadata attribute (PUT /v1.0/metadata/portal.host.session, kept in daprd's
 *   memory only): a sidecar that answers without the mark is a new one (a safety net when the first is missed).
 *
 * Polls GET /v1.0/metadata every `intervalMs`: warns once when the sidecar becomes unreachable, logs at info when
 * it is back (the same one, or a new one).
 */
export function watchDaprSidecar(opts: DaprSidecarWatchOptions): DaprSidecarWatch {
  const timeoutMs = opts.timeoutMs ?? Math.max(500, opts.intervalMs);
  const headers: Record<string, string> = opts.apiToken ? { 'dapr-api-token': opts.apiToken } : {};
  const session = randomUUID();
  const log = opts.logger;
  const where = { daprHttpPort: opts.port };
  let configs = 0;
  /** Set once a sidecar has carried our mark: from then on a sidecar without it is a new one. */
  let marked = false;
  /** The unmarked sidecar now answering was already reported as new: mark it without reporting it again. */
  let replacedUnmarked = false;
  /** The sidecar refused the mark (metadata API off): rely on /dapr/config alone. */
  let markUnsupported = false;
  let reachable: boolean | undefined;
  let downSince = 0;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let running: Promise<void> | undefined;

  const replaced = (reason: string): void => {
    log.info(
      { ...where, reason },
      'new Dapr sidecar: dropping the actor activations of the old one (they reactivate from the state store)',
    );
    opts.onReplaced(reason);
  };

  /** One request on a connection of its own (a kept-alive one may lead to the dead sidecar and fail once for nothing). */
  const request = (
    method: 'GET' | 'PUT',
    path: string,
    body?: string,
  ): Promise<{ status: number; text: string }> =>
    daprRequest({
      host: opts.host,
      port: opts.port,
      method,
      path,
      timeoutMs,
      body,
      headers: body === undefined ? headers : { ...headers, 'content-type': 'text/plain' },
      timeoutError: () => new Error(`${method} ${path}: no answer within ${timeoutMs} ms`),
    });

  const mark = async (): Promise<void> => {
    const res = await request('PUT', `/v1.0/metadata/${SIDECAR_MARK}`, session);
    if (res.status >= 300) {
      markUnsupported = true;
      log.warn(
        { ...where, status: res.status },
        'the Dapr sidecar refused the metadata mark: a new sidecar is recognized by its /dapr/config call only',
      );
      return;
    }
    marked = true;
    replacedUnmarked = false;
  };

  const checkOnce = async (): Promise<void> => {
    let mine: string | undefined;
    try {
      const res = await request('GET', '/v1.0/metadata');
      if (res.status !== 200) throw new Error(`GET /v1.0/metadata answered ${res.status}`);
      mine = (JSON.parse(res.text) as { extended?: Record<string, string> }).extended?.[SIDECAR_MARK];
    } catch (err) {
      if (reachable !== false) {
        downSince = Date.now();
        log.warn(
          { ...where, err: (err as Error).message },
          'Dapr sidecar unreachable: actor calls, timers and reminders of this app wait for it',
        );
      }
      reachable = false;
      return;
    }
    const wasDown = reachable === false;
    reachable = true;
    if (mine === session) {
      if (wasDown)
        log.info(
          { ...where, downMs: Date.now() - downSince },
          'Dapr sidecar reachable again (the same sidecar)',
        );
      return;
    }
    if (markUnsupported) {
      if (wasDown) log.info({ ...where, downMs: Date.now() - downSince }, 'Dapr sidecar reachable again');
      return;
    }
    if (marked && !replacedUnmarked) {
      replacedUnmarked = true; // reported once, even if marking it fails now
      replaced("the sidecar answers without this app's mark");
    } else if (wasDown)
      log.info({ ...where, downMs: Date.now() - downSince }, 'Dapr sidecar reachable again (a new sidecar)');
    try {
      await mark();
    } catch (err) {
      log.warn({ ...where, err: (err as Error).message }, 'could not mark the Dapr sidecar; will try again');
    }
  };

  const check = (): Promise<void> => {
    running ??= checkOnce().finally(() => {
      running = undefined;
    });
    return running;
  };

  const schedule = (): void => {
    if (closed || opts.intervalMs <= 0) return;
    timer = setTimeout(() => void check().finally(schedule), opts.intervalMs);
    timer.unref();
  };

  return {
    configRequested() {
      configs++;
      if (configs < 2) return;
      replacedUnmarked = true;
      replaced('the sidecar fetched /dapr/config again');
    },
    async start() {
      await check();
      schedule();
    },
    check,
    get reachable() {
      return reachable;
    },
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
    },
  };
}
