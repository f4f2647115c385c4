import http from 'node:http';
import { PortalError, checkArg, type PortalErrorCode } from '../common/errors.js';
import { isPortalErrorCode } from '../common/error-table.js';

/** Options of createDaprActorClient. */
export interface DaprActorClientOptions {
  /** daprd HTTP API host (default 127.0.0.1). */
  readonly host?: string;
  /** daprd HTTP API port. */
  readonly port: number;
  /** Sent as `dapr-api-token` when the sidecar was started with DAPR_API_TOKEN. */
  readonly apiToken?: string;
  /** A call that has no answer after this long rejects with PORTAL_ACTOR_TIMEOUT (default 60 s). */
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
  /** POST /v1.0/actors/<type>/<id>/method/<method>: a turn on that actor wherever placement puts it. */
  invoke<R = unknown>(actorType: string, actorId: string, method: string, arg?: unknown): Promise<R>;
  /** Closes the pooled sockets. */
  close(): void;
}

/**
 * Creates a DaprActorClient. Failures reject with a PortalError: the actor's own code when the turn failed in a
 * Portal actor (the host's error body travels back through Dapr), PORTAL_ACTOR_TIMEOUT on a timeout,
 * PORTAL_CONFIG_INVALID when the sidecar refuses the API token (401), PORTAL_HOST_STOPPED when the sidecar
 * cannot be reached, and PORTAL_UNKNOWN_ACTOR_TYPE / PORTAL_INVALID_ARGUMENT for other refusals.
 */
export function createDaprActorClient(opts: DaprActorClientOptions): DaprActorClient {
  checkArg(
    typeof opts === 'object' && opts !== null && Number.isInteger(opts.port) && opts.port > 0,
    'opts.port',
    'the daprd HTTP port',
  );
  const host = opts.host ?? '127.0.0.1';
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const agent = new http.Agent({
    keepAlive: true,
    maxSockets: opts.maxSockets ?? 64,
    maxFreeSockets: opts.maxSockets ?? 64,
  });
  const baseHeaders: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.apiToken) baseHeaders['dapr-api-token'] = opts.apiToken;

  const request = (
    method: string,
    path: string,
    body: string | undefined,
  ): Promise<{ status: number; text: string }> =>
    daprRequest({
      host,
      port: opts.port,
      method,
      path,
      agent,
      headers: baseHeaders,
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
        'PORTAL_HOST_STOPPED',
        `${method} ${path}: daprd at ${host}:${opts.port} unreachable (${err.message})`,
        { cause: err },
      );
    });

  return {
    async invoke<R>(actorType: string, actorId: string, method: string, arg?: unknown): Promise<R> {
      checkArg(typeof actorType === 'string' && actorType.length > 0, 'actorType', 'a non-empty string');
      checkArg(typeof actorId === 'string' && actorId.length > 0, 'actorId', 'a non-empty string');
      checkArg(typeof method === 'string' && method.length > 0, 'method', 'a non-empty string');
      const path = `/v1.0/actors/${encodeURIComponent(actorType)}/${encodeURIComponent(actorId)}/method/${encodeURIComponent(method)}`;
      const body = arg === undefined ? undefined : JSON.stringify(arg);
      const { status, text } = await request('POST', path, body);
      if (status >= 200 && status < 300) return (text.length === 0 ? undefined : JSON.parse(text)) as R;
      throw errorFromResponse(`${actorType}/${actorId}.${method}`, status, text);
    },
    close() {
      agent.destroy();
    },
  };
}

/** One HTTP request to daprd (see daprRequest). */
export interface DaprRequest {
  readonly host: string;
  readonly port: number;
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: string;
  /** A pooled keep-alive agent, or false for a connection of its own. */
  readonly agent: http.Agent | false;
  readonly timeoutMs: number;
  /** What the request rejects with when it has no answer after timeoutMs. */
  readonly timeoutError: () => Error;
}

/** Sends one request to daprd: resolves with its status and body text, rejects with the socket's error. */
export function daprRequest(r: DaprRequest): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers =
      r.body === undefined
        ? r.headers
        : { ...r.headers, 'content-length': String(Buffer.byteLength(r.body)) };
    const req = http.request(
      {
        host: r.host,
        port: r.port,
        method: r.method,
        path: r.path,
        agent: r.agent,
        headers,
        timeout: r.timeoutMs,
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(r.timeoutError()));
    req.on('error', reject);
    req.end(r.body);
  });
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
  const code: PortalErrorCode =
    status === 401
      ? 'PORTAL_CONFIG_INVALID'
      : daprCode === 'ERR_ACTOR_INSTANCE_MISSING' || daprCode === 'ERR_ACTOR_RUNTIME_NOT_FOUND'
        ? 'PORTAL_UNKNOWN_ACTOR_TYPE'
        : status === 408 || status === 504
          ? 'PORTAL_ACTOR_TIMEOUT'
          : status >= 500
            ? 'PORTAL_HOST_STOPPED'
            : 'PORTAL_INVALID_ARGUMENT';
  return new PortalError(
    code,
    `${what}: daprd answered ${status}${daprCode ? ` ${daprCode}` : ''}: ${message}`,
  );
}
