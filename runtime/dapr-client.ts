import { Client, Pool, type Dispatcher } from 'undici';
import { MAX_TIMER_MS } from '../common/clock.js';
import { PortalError, checkArg, type PortalErrorCode } from '../common/errors.js';
import { isPortalErrorCode } from '../common/error-table.js';
import { checkActorId, encodeActorId, encodeWireName } from './state-keys.js';

/**
 * Request header carrying the actor call chain (`type||wireId` keys, outermost first, comma-separated) from a turn
 * to the actors it calls, through daprd, so a host can refuse a call that would re-enter an actor already waiting
 * in the chain (A -> B -> A deadlocks on Dapr's actor lock, as on Orleans' non-reentrant grains).
 */
export const CHAIN_HEADER = 'portal-call-chain';
/**
 * Header a Portal host's own actor calls carry (the cluster's internal-call token): the Dapr host answers
 * methods outside the external allow-list (actors/api externalMethods) only to calls that carry it.
 */
export const INTERNAL_HEADER = 'portal-internal-call';

/** Options of createDaprActorClient. */
export interface DaprActorClientOptions {
  /** daprd HTTP API host (default 127.0.0.1). */
  readonly host?: string;
  /** daprd HTTP API port. */
  readonly port: number;
  /** Sent as `dapr-api-token` when the sidecar was started with DAPR_API_TOKEN. */
  readonly apiToken?: string;
  /** Sent as INTERNAL_HEADER on actor calls (a host's own proxies; never set it for outside clients). */
  readonly internalToken?: string;
  /**
   * A call that has no answer after this long rejects with PORTAL_ACTOR_TIMEOUT (default 60 s). At most 2^31-1 ms
   * (MAX_TIMER_MS): a longer socket timeout would fire at once, so it is refused with PORTAL_INVALID_ARGUMENT.
   */
  readonly timeoutMs?: number;
  /**
   * Sockets kept to the sidecar at most (default 64), kept alive between calls: many actors writing state at once
   * queue on the pool instead of opening a connection each (dapr/js-sdk#317 exhausted ephemeral ports that way).
   */
  readonly maxSockets?: number;
}

/** The error body the Portal Dapr host answers a failed turn with (Dapr passes it through to the caller). */
export interface DaprActorErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}

/**
 * A small client of daprd's HTTP actor API (`/v1.0/actors/...`): what the Dapr host uses for proxies, and what
 * tests, benchmarks and other services can use to call Portal actors through their sidecar.
 */
export interface DaprActorClient {
  /**
   * POST /v1.0/actors/<type>/<wire id>/method/<method>: a turn on that actor wherever placement puts it. The id may
   * be any string checkActorId accepts; it travels in its wire form (encodeActorId), as Portal hosts route it.
   * `o.chain` is the caller's call chain (a Portal host passes it; see CHAIN_HEADER).
   */
  invoke<R = unknown>(
    actorType: string,
    actorId: string,
    method: string,
    arg?: unknown,
    o?: { chain?: readonly string[] },
  ): Promise<R>;
  /** DELETE /v1.0/actors/<type>/<wire id>/timers/<wire name>: removes a timer (a no-op when there is none). */
  deleteTimer(actorType: string, actorId: string, name: string): Promise<void>;
  /**
   * GET /v1.0/actors/<type>/<wire id>/state/<wire key>: the JSON text the actor state store holds under the actor's
   * `key`, undefined when it holds nothing there (daprd's 204). Only the sidecar the actor is active on answers it.
   * Rejects with a PortalError as `invoke` does.
   */
  getState(actorType: string, actorId: string, key: string): Promise<string | undefined>;
  /**
   * POST /v1.0/actors/<type>/<wire id>/state: upserts and deletes of the actor's keys in one transaction of the actor
   * state store. An upsert's `value` is JSON text, stored as that JSON value; a delete of a key that holds nothing is
   * a no-op. Keys travel in their wire form. Rejects with a PortalError as `invoke` does.
   */
  stateTransaction(
    actorType: string,
    actorId: string,
    ops: ReadonlyArray<{ op: 'upsert'; key: string; value: string } | { op: 'delete'; key: string }>,
  ): Promise<void>;
  /** Closes the pooled sockets. */
  close(): void;
}

/**
 * Creates a DaprActorClient. Failures reject with a PortalError: the actor's own code when the turn failed in a
 * Portal actor (the host's error body travels back through Dapr), PORTAL_ACTOR_TIMEOUT on a timeout,
 * PORTAL_CONFIG_INVALID when the sidecar refuses the API token (401), PORTAL_HOST_UNAVAILABLE when the sidecar
 * (or the instance hosting the actor) cannot be reached, and for daprd's own refusals what they mean
 * (DAPR_REFUSALS): PORTAL_UNKNOWN_ACTOR_METHOD, PORTAL_UNKNOWN_ACTOR_TYPE, PORTAL_INVALID_ARGUMENT. An actor id
 * that checkActorId refuses, or an argument that is not JSON-serializable, rejects with PORTAL_INVALID_ARGUMENT
 * before anything is sent. `timeoutMs` above 2^31-1 ms throws PORTAL_INVALID_ARGUMENT.
 */
export function createDaprActorClient(opts: DaprActorClientOptions): DaprActorClient {
  checkArg(
    typeof opts === 'object' && opts !== null && Number.isInteger(opts.port) && opts.port > 0,
    'opts.port',
    'the daprd HTTP port',
  );
  const host = opts.host ?? '127.0.0.1';
  const timeoutMs = opts.timeoutMs ?? 60_000;
  checkArg(
    Number.isFinite(timeoutMs) && timeoutMs > 0 && timeoutMs <= MAX_TIMER_MS,
    'opts.timeoutMs',
    `a number of milliseconds in (0, ${MAX_TIMER_MS}] (Node timers cannot wait longer)`,
  );
  // undici, the project's one HTTP client: a keep-alive pool of connections to the sidecar
  const pool = new Pool(daprOrigin(host, opts.port), { connections: opts.maxSockets ?? 64 });
  const baseHeaders: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.apiToken) baseHeaders['dapr-api-token'] = opts.apiToken;
  if (opts.internalToken) baseHeaders[INTERNAL_HEADER] = opts.internalToken;

  const request = (
    method: string,
    path: string,
    body: string | undefined,
    headers: Record<string, string> = baseHeaders,
  ): Promise<{ status: number; text: string }> =>
    daprRequest({
      host,
      port: opts.port,
      method,
      path,
      dispatcher: pool,
      headers,
      body,
      timeoutMs,
      timeoutError: () =>
        new PortalError(
          'PORTAL_ACTOR_TIMEOUT',
          `${method} ${path}: no answer from daprd within ${timeoutMs} ms`,
        ),
    }).catch((err: Error) => {
      if (err instanceof PortalError) throw err;
      throw new PortalError(
        'PORTAL_HOST_UNAVAILABLE',
        `${method} ${path}: daprd at ${host}:${opts.port} unreachable (${err.message})`,
        { cause: err },
      );
    });

  return {
    async invoke<R>(
      actorType: string,
      actorId: string,
      method: string,
      arg?: unknown,
      o?: { chain?: readonly string[] },
    ): Promise<R> {
      checkArg(typeof actorType === 'string' && actorType.length > 0, 'actorType', 'a non-empty string');
      checkActorId(actorId);
      checkArg(typeof method === 'string' && method.length > 0, 'method', 'a non-empty string');
      const path = `/v1.0/actors/${encodeURIComponent(actorType)}/${encodeActorId(actorId)}/method/${encodeURIComponent(method)}`;
      let body: string | undefined;
      try {
        body = arg === undefined ? undefined : JSON.stringify(arg);
      } catch (cause) {
        throw new PortalError(
          'PORTAL_INVALID_ARGUMENT',
          `${actorType}/${actorId}.${method}: the argument is not JSON-serializable`,
          { cause },
        );
      }
      const headers = o?.chain?.length ? { ...baseHeaders, [CHAIN_HEADER]: o.chain.join(',') } : baseHeaders;
      for (let attempt = 0; ; attempt++) {
        const { status, text } = await request('POST', path, body, headers);
        if (status >= 200 && status < 300) return (text.length === 0 ? undefined : JSON.parse(text)) as R;
        const delay = CLOSED_ACTIVATION_RETRY_MS[attempt];
        if (delay === undefined || !isClosedActivation(status, text))
          throw errorFromResponse(`${actorType}/${actorId}.${method}`, status, text);
        await new Promise((r) => setTimeout(r, delay));
      }
    },
    async deleteTimer(actorType, actorId, name) {
      const path = `/v1.0/actors/${encodeURIComponent(actorType)}/${encodeActorId(actorId)}/timers/${encodeWireName(name)}`;
      const { status, text } = await request('DELETE', path, undefined);
      if (status >= 300) throw errorFromResponse(`${actorType}/${actorId} timer ${name}`, status, text);
    },
    async getState(actorType, actorId, key) {
      const path = `${actorPath(actorType, actorId)}/state/${encodeWireName(key)}`;
      const { status, text } = await request('GET', path, undefined);
      if (status >= 300) throw errorFromResponse(`${actorType}/${actorId} state ${key}`, status, text);
      // 204 and no body: the store holds nothing under the key (a stored value is JSON text, never empty)
      return status === 204 || text.length === 0 ? undefined : text;
    },
    async stateTransaction(actorType, actorId, ops) {
      if (ops.length === 0) return;
      // the values are JSON text already (the state manager's encodeStateValue): spliced in, not parsed again
      const body = `[${ops
        .map((o) =>
          o.op === 'upsert'
            ? `{"operation":"upsert","request":{"key":${JSON.stringify(encodeWireName(o.key))},"value":${o.value}}}`
            : `{"operation":"delete","request":{"key":${JSON.stringify(encodeWireName(o.key))}}}`,
        )
        .join(',')}]`;
      const { status, text } = await request('POST', `${actorPath(actorType, actorId)}/state`, body);
      if (status >= 300) throw errorFromResponse(`${actorType}/${actorId} state transaction`, status, text);
    },
    close() {
      void pool.destroy().catch(() => undefined);
    },
  };
}

/** `/v1.0/actors/<type>/<wire id>`: an actor's path in daprd's HTTP API. */
function actorPath(actorType: string, actorId: string): string {
  return `/v1.0/actors/${encodeURIComponent(actorType)}/${encodeActorId(actorId)}`;
}

/**
 * Waits (ms) before each new try of a call daprd cut because the actor's activation was closing: daprd 1.16 closes an
 * actor's lock when it deactivates it (idle timeout, rebalancing) and answers every call queued on or running under
 * that lock 500 "actor lock is closed" (dapr/dapr pkg/actors/internal/locker, ErrLockClosed). The next try
 * activates the actor again. A call cut while it ran may have run in part or in full, so across these tries a call
 * is delivered at least once, as with a Dapr resiliency retry policy; Portal's actor methods are idempotent where a
 * repeat matters (SchedulerActor.start of a running or finished transfer answers its status).
 */
const CLOSED_ACTIVATION_RETRY_MS: readonly number[] = [25, 100, 400];

/** Whether daprd's answer says the call was cut by the actor's closing activation (see CLOSED_ACTIVATION_RETRY_MS). */
function isClosedActivation(status: number, text: string): boolean {
  if (status < 500) return false;
  try {
    const body = JSON.parse(text) as { errorCode?: unknown; message?: unknown };
    return (
      body.errorCode === 'ERR_ACTOR_INVOKE_METHOD' &&
      typeof body.message === 'string' &&
      /: actor lock is closed$/.test(body.message)
    );
  } catch {
    return false;
  }
}

/** One HTTP request to daprd (see daprRequest). */
export interface DaprRequest {
  readonly host: string;
  readonly port: number;
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: string;
  /** A pooled undici dispatcher for the sidecar; absent: a connection of its own, closed after the answer. */
  readonly dispatcher?: Dispatcher;
  /** No response headers, or no body byte, for this long ends the request with `timeoutError()`. */
  readonly timeoutMs: number;
  /** What the request rejects with when it has no answer after timeoutMs. */
  readonly timeoutError: () => Error;
}

/** `http://host:port` of a sidecar (IPv6 hosts in brackets). */
function daprOrigin(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Sends one request to daprd over undici: resolves with its status and body text, rejects with
 * `timeoutError()` after `timeoutMs` without progress, and with the transport's error otherwise.
 */
export async function daprRequest(r: DaprRequest): Promise<{ status: number; text: string }> {
  const origin = daprOrigin(r.host, r.port);
  const own = r.dispatcher ? undefined : new Client(origin);
  try {
    const res = await (r.dispatcher ?? own!).request({
      origin,
      path: r.path,
      method: r.method,
      headers: r.headers,
      body: r.body,
      headersTimeout: r.timeoutMs,
      bodyTimeout: r.timeoutMs,
    });
    return { status: res.statusCode, text: await res.body.text() };
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') throw r.timeoutError();
    throw err;
  } finally {
    if (own) await own.destroy().catch(() => undefined);
  }
}

/**
 * The error a turn failed with, rebuilt on the caller's side: a PortalError with the same code, or (for errors that
 * were not PortalErrors, sent as PORTAL_INTERNAL, or a code this build does not know) a plain Error with the same
 * message, as the embedded host gives.
 */
function remoteError(code: string, message: string): Error {
  if (isPortalErrorCode(code) && code !== 'PORTAL_INTERNAL') return new PortalError(code, message);
  return new Error(message);
}

/**
 * What daprd's refusals of an actor call mean, first match wins: [error code or undefined, pattern of its message,
 * Portal code]. Seen against daprd 1.16 (test/dapr/dapr-semantics.test.ts): a path the app does not route is
 * "actor method not found", an id with a control character fails to "parse" as a URL, a type no instance hosts
 * has no address in placement, and transport failures between sidecars are the other instance being away.
 */
const DAPR_REFUSALS: ReadonlyArray<readonly [string | undefined, RegExp, PortalErrorCode]> = [
  [undefined, /actor method not found/i, 'PORTAL_UNKNOWN_ACTOR_METHOD'],
  [
    undefined,
    /invalid control character|invalid URL|invalid URI|net\/url|parse "|invalid escape/i,
    'PORTAL_INVALID_ARGUMENT',
  ],
  [
    undefined,
    /did not find address for actor|actor type .* not (found|registered)/i,
    'PORTAL_UNKNOWN_ACTOR_TYPE',
  ],
  ['ERR_ACTOR_INSTANCE_MISSING', /./, 'PORTAL_UNKNOWN_ACTOR_TYPE'],
  ['ERR_ACTOR_RUNTIME_NOT_FOUND', /./, 'PORTAL_UNKNOWN_ACTOR_TYPE'],
  ['ERR_DIRECT_INVOKE', /./, 'PORTAL_INVALID_ARGUMENT'],
  ['ERR_MALFORMED_REQUEST', /./, 'PORTAL_INVALID_ARGUMENT'],
  [undefined, /deadline exceeded|timed? ?out/i, 'PORTAL_ACTOR_TIMEOUT'],
  [undefined, /shutting down|runtime is closed|actor runtime stopped/i, 'PORTAL_HOST_STOPPED'],
  [
    undefined,
    /connection refused|connection reset|no such host|unavailable|placement|EOF|broken pipe/i,
    'PORTAL_HOST_UNAVAILABLE',
  ],
];

/** The Portal code of a daprd refusal that carries no Portal error body (see DAPR_REFUSALS). */
function classifyDaprError(status: number, daprCode: string | undefined, message: string): PortalErrorCode {
  if (status === 401) return 'PORTAL_CONFIG_INVALID';
  for (const [code, pattern, portal] of DAPR_REFUSALS)
    if ((code === undefined || code === daprCode) && pattern.test(message)) return portal;
  if (status === 408 || status === 504) return 'PORTAL_ACTOR_TIMEOUT';
  // "error from actor service: (4xx) …": the app refused the request (a non-Portal body, e.g. an HTML error page)
  const app = /error from actor service: \((\d{3})\)/.exec(message);
  if (app && Number(app[1]) >= 400 && Number(app[1]) < 500) return 'PORTAL_INVALID_ARGUMENT';
  if (status === 404) return 'PORTAL_INVALID_ARGUMENT';
  return status >= 500 ? 'PORTAL_HOST_UNAVAILABLE' : 'PORTAL_INVALID_ARGUMENT';
}

/** Maps a failed actor call's answer to a PortalError (see createDaprActorClient). */
export function errorFromResponse(what: string, status: number, text: string): Error {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  // The Portal host answers { error: { code, message } }; daprd may wrap it as { errorCode, message }.
  const inner = (parsed as Partial<DaprActorErrorBody> | undefined)?.error;
  if (inner && typeof inner.code === 'string') return remoteError(inner.code, inner.message);
  const daprCode = (parsed as { errorCode?: string } | undefined)?.errorCode;
  const message = (parsed as { message?: string } | undefined)?.message ?? text.slice(0, 500);
  // daprd 1.16 answers a failed actor turn with 500 { errorCode: ERR_ACTOR_INVOKE_METHOD, message: "… (status) <app body>" }.
  const at = typeof message === 'string' ? message.indexOf('{"error":') : -1;
  if (at >= 0) {
    try {
      const body = JSON.parse(message.slice(at)) as Partial<DaprActorErrorBody>;
      if (body.error) return remoteError(body.error.code, body.error.message);
    } catch {
      /* not the Portal host's body: fall through */
    }
  }
  const code = classifyDaprError(status, daprCode, String(message));
  return new PortalError(
    code,
    `${what}: daprd answered ${status}${daprCode ? ` ${daprCode}` : ''}: ${message}`,
  );
}
