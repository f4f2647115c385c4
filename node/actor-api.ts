import { answerHealth, type BusHealth } from '../common/health.js';
import { browserRefusal, isLoopbackHost } from '../common/browser-guard.js';
import { decodePathSegment } from '../common/path-segment.js';
import http from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import {
  decodeActorId,
  errorEnvelope,
  notWireIdError,
  parseCallBody,
  splitIdHint,
  transferIdOfPathSegment,
  type ActorHost,
} from '../runtime/index.js';
import { actorApiContract } from '../api/validate.js';
import { checkExternalCall, externalMethods, isExternalMethod } from '../actors/api.js';
import { PortalError, type PortalErrorCode } from '../common/errors.js';
import { requestTimeouts } from '../common/net.js';
import { continueBody, decideContinue } from '../common/expect-continue.js';
import { httpStatusFor } from '../common/error-table.js';
import type { Logger } from '../common/logger.js';
import { serveContent, ReaderRates } from '../transfer/index.js';
import type { EventEmitter } from 'node:events';
import { parseListStates, transferContentSource, type TransferIndex } from '../actors/index.js';

/** Largest request body the actor API reads by default (a start request carries its manifest: ~67 B a chunk). */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024;

/** HTTP methods that invoke an actor method on `/v1.0/actors/<type>/<id>/method/<method>`; others answer 405. */
const ACTOR_METHOD_VERBS = new Set(['POST', 'PUT']);

/** Options of serveActorApi. */
export interface ActorApiOptions {
  /** TCP port (0 = any free port). */
  port: number;
  /** Interface to bind (default 127.0.0.1). Anything but loopback requires `token`. */
  hostname?: string;
  /**
   * Bearer token every call but /healthz and /readyz must carry (`authorization: Bearer <token>` or, as on daprd's API,
   * `dapr-api-token: <token>`); compared in constant time, never logged. Required beyond loopback.
   */
  token?: string;
  /** Bodies above this many bytes are refused with 413 before they are read whole (default 64 MiB). */
  maxBodyBytes?: number;
  /**
   * Whether `method` exists on the registered `actorType` (then a method outside the external allow-list is
   * answered 403 PORTAL_ACTOR_METHOD_FORBIDDEN rather than 400 PORTAL_UNKNOWN_ACTOR_METHOD). Default: all exist.
   */
  hasMethod?: (actorType: string, method: string) => boolean;
  /** The host's SchedulerServices.verifiedChunks: content reads wait on its events instead of polling. */
  verifiedChunks?: EventEmitter;
  /** The host's transfers, listed at `GET /v1/transfers` (absent: that route answers 404 as any unknown one). */
  transfers?: TransferIndex;
  /** A request (headers and body) must arrive within this many ms, else 408 (default REQUEST_TIMEOUT_MS, 60 s). */
  requestTimeoutMs?: number;
  /** The bus's connection, reported by /healthz (liveness) and /readyz (readiness): common/health.ts. */
  busHealth?: () => BusHealth | undefined;
  log: Logger;
}

/** True for a loopback interface name or address (127.0.0.0/8, ::1, localhost). */
export { isLoopbackHost };

/** Constant-time comparison of two secrets (their sha256 digests, so lengths need not match). */
export function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The token a request carries (`authorization: Bearer …` or `dapr-api-token`), or undefined. */
function tokenOf(req: http.IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && /^bearer /i.test(auth)) return auth.slice(7).trim();
  const h = req.headers['dapr-api-token'];
  return typeof h === 'string' ? h : undefined;
}

/**
 * Serves the embedded host's actors over HTTP with the shape of Dapr's actor API (docs/api.md)
 * (`POST /v1.0/actors/<type>/<wire id>/method/<method>`), so clients (createDaprActorClient) talk to either runtime
 * the same way; an id that is not in the wire form is refused with PORTAL_INVALID_ARGUMENT. Also serves each
 * transfer's content while it arrives (`GET|HEAD /v1/transfers/<id>/content`, Range reads): a read
 * raises the priority of the chunks it waits for and never returns unverified bytes (serveContent).
 */
export function serveActorApi(host: ActorHost, opts: ActorApiOptions): Promise<http.Server> {
  const log = opts.log;
  const hostname = opts.hostname ?? '127.0.0.1';
  if (!opts.token && !isLoopbackHost(hostname))
    return Promise.reject(
      new PortalError(
        'PORTAL_CONFIG_INVALID',
        `actor API on ${hostname}: an API token is required beyond loopback (--api-token or PORTAL_API_TOKEN)`,
      ),
    );
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  /** Answers a refusal and closes the connection (the rest of the body is not read). */
  const refuse = (res: http.ServerResponse, code: PortalErrorCode, message: string): void => {
    // the socket goes once the answer is out: an unread body (a 1 GiB POST) is never read
    res.once('finish', () => res.socket?.destroy());
    res
      .writeHead(httpStatusFor(code), { 'content-type': 'application/json', connection: 'close' })
      .end(JSON.stringify({ error: { code, message } }));
  };
  /** Answers a failed call with the error envelope (runtime/api-errors.ts): code, message, fields, table status. */
  const fail = (res: http.ServerResponse, err: unknown): void => {
    const { status, body } = errorEnvelope(err);
    // a refusal under overload is the host working as designed (counted in portal_transfers_rejected_total):
    // logging each one with its stack would add work exactly when the host has none to spare
    if (body.error.code === 'PORTAL_OVERLOADED')
      log.debug({ code: body.error.code }, 'start refused: overloaded');
    else if (status >= 500) log.warn({ err }, 'actor call failed');
    if (!res.headersSent)
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  const contract = actorApiContract();
  /** Content readers' rates across their Range requests (sizes their read-ahead). */
  const readers = new ReaderRates();
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    // a query string after the method is accepted and ignored
    const url = req.url ?? '/';
    const path = url.includes('?') ? url.slice(0, url.indexOf('?')) : url;
    const m = /^\/v1\.0\/actors\/([^/]+)\/([^/]+)\/method\/([^/]+)$/.exec(path);
    // probes carry no token: liveness and readiness with the bus's state (common/health.ts HEALTH_PATHS)
    if (answerHealth(path, res, opts.busHealth)) return;
    // a web page cannot send the token; without one, a page in the user's browser could call the API
    const crossSite = opts.token === undefined ? browserRefusal(req, { loopback: true }) : undefined;
    if (crossSite !== undefined) {
      refuse(res, 'PORTAL_CROSS_SITE_REFUSED', crossSite);
      return;
    }
    if (opts.token !== undefined) {
      const given = tokenOf(req);
      if (given === undefined || !sameSecret(given, opts.token)) {
        refuse(res, 'PORTAL_UNAUTHORIZED', 'missing or wrong API token (authorization: Bearer <token>)');
        return;
      }
    }
    if (path === '/v1/transfers' && opts.transfers) {
      listTransfers(req, res, opts.transfers, url, fail);
      return;
    }
    const content = /^\/v1\/transfers\/([^/?]+)\/content(?:\?.*)?$/.exec(req.url ?? '');
    if (content) {
      let transferId: string;
      try {
        // the actor API's wire form (`~` and base64url) or %-encoding: either names the transfer
        transferId = transferIdOfPathSegment(decodePathSegment('transfer id', content[1]));
      } catch (err) {
        refuse(res, 'PORTAL_INVALID_ARGUMENT', (err as Error).message);
        return;
      }
      const source = transferContentSource(host, transferId, opts.verifiedChunks);
      serveContent(req, res, source, { logger: log, readers, transferId }).catch((err: unknown) => {
        if (res.headersSent) {
          res.destroy();
          return;
        }
        fail(res, err);
      });
      return;
    }
    // daprd also routes GET and DELETE here; this API does not: without a token it is guarded against web pages
    // by Origin / Sec-Fetch-Site on POST and PUT only, and a GET (an <img> on any site) must not cancel a transfer
    if (m && !ACTOR_METHOD_VERBS.has(req.method ?? '')) {
      res.once('finish', () => res.socket?.destroy());
      res.writeHead(405, { allow: 'POST, PUT', 'content-type': 'application/json', connection: 'close' }).end(
        JSON.stringify({
          error: {
            code: 'PORTAL_UNKNOWN_ACTOR_METHOD',
            message: `${req.method ?? '?'} ${path}: an actor method is called with POST (or PUT) on this API; a web page's GET must not reach it`,
          },
        }),
      );
      return;
    }
    if (!m) {
      refuse(
        res,
        'PORTAL_UNKNOWN_ACTOR_METHOD',
        `no actor API route ${req.method ?? '?'} ${path}: use POST /v1.0/actors/<type>/<id>/method/<method>${splitIdHint(path)}`,
      );
      return;
    }
    let type: string, method: string;
    try {
      type = decodePathSegment('actor type', m[1]);
      method = decodePathSegment('actor method', m[3]);
    } catch (err) {
      refuse(res, 'PORTAL_INVALID_ARGUMENT', (err as Error).message);
      return;
    }
    if (
      !isExternalMethod(type, method) &&
      (opts.hasMethod?.(type, method) ?? true) &&
      Object.hasOwn(externalMethods, type)
    ) {
      refuse(
        res,
        'PORTAL_ACTOR_METHOD_FORBIDDEN',
        `${type}.${method} is not callable from outside the host (callable: ${String(externalMethods[type])})`,
      );
      return;
    }
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBody) {
      refuse(
        res,
        'PORTAL_BODY_TOO_LARGE',
        `request body of ${declared} bytes is over the ${maxBody}-byte limit`,
      );
      return;
    }
    continueBody(req, res);
    const parts: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      if (tooLarge) return;
      size += c.length;
      if (size > maxBody) {
        tooLarge = true;
        parts.length = 0;
        refuse(res, 'PORTAL_BODY_TOO_LARGE', `request body is over the ${maxBody}-byte limit`);
        return;
      }
      parts.push(c);
    });
    req.on('end', () => {
      if (tooLarge) return;
      let ref;
      let arg: unknown;
      try {
        // any content type (none from daprd's gRPC path, a form type from `curl -d`): the body is JSON, scalars too
        arg = parseCallBody(`${type}.${method}`, Buffer.concat(parts));
        // the contract (api/schemas): every problem of the argument at once, before anything is activated
        contract.checkRequest(type, method, arg);
        // an external method whose argument asks for what only Portal's own actors may do (EdgeActor feeding)
        checkExternalCall(type, method, arg);
        // Ids arrive in their wire form (runtime/state-keys.ts encodeActorId), as on the Dapr path: one rule for
        // ids on every host, so `a%2Fb` is not `a/b` and `%41` is not `A`.
        const wireId = decodePathSegment('actor id', m[2]);
        const id = decodeActorId(wireId);
        if (id === undefined) throw notWireIdError(wireId, m[2]);
        ref = host.proxy(type, id);
      } catch (err) {
        fail(res, err);
        return;
      }
      ref.invoke(method, arg).then(
        (r) => {
          if (r === undefined) res.writeHead(200).end();
          else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(r));
        },
        (err: unknown) => fail(res, err),
      );
    });
  };
  const server = http.createServer(requestTimeouts(opts.requestTimeoutMs), onRequest);
  // `Expect: 100-continue` is answered after the checks above: a refused request gets its 413/401 without a 100
  decideContinue(server, onRequest);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, hostname, () => resolve(server));
  });
}

/** Query parameters `GET /v1/transfers` takes. */
const LIST_PARAMS = new Set(['state', 'limit', 'after']);

/**
 * `GET /v1/transfers?state=<state>[,<state>…]&limit=<n>&after=<id>`: a page of the host's transfers in transfer-id
 * order (TransferIndex.page), `{ transfers: [...], next }` where `next` is the `after` of the next page. 400
 * PORTAL_INVALID_ARGUMENT names an unknown state or parameter, or a limit outside [1, 1000]; methods other than
 * GET and HEAD answer 405.
 */
function listTransfers(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  index: TransferIndex,
  url: string,
  fail: (res: http.ServerResponse, err: unknown) => void,
): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.once('finish', () => res.socket?.destroy());
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'application/json', connection: 'close' }).end(
      JSON.stringify({
        error: {
          code: 'PORTAL_INVALID_ARGUMENT',
          message: `${req.method ?? '?'} /v1/transfers: the list is read with GET`,
        },
      }),
    );
    return;
  }
  let body: string;
  try {
    const q = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
    for (const k of q.keys())
      if (!LIST_PARAMS.has(k))
        throw new PortalError(
          'PORTAL_INVALID_ARGUMENT',
          `unknown parameter ${JSON.stringify(k)} of /v1/transfers (state, limit, after)`,
        );
    const state = q.get('state');
    const limit = q.get('limit');
    if (limit !== null && !/^[0-9]{1,7}$/.test(limit))
      throw new PortalError(
        'PORTAL_INVALID_ARGUMENT',
        `limit: expected an integer in [1, 1000], got ${JSON.stringify(limit)}`,
      );
    body = JSON.stringify(
      index.page({
        states: state === null ? undefined : parseListStates(state),
        limit: limit === null ? undefined : Number(limit),
        after: q.get('after') ?? undefined,
      }),
    );
  } catch (err) {
    fail(res, err);
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : body);
}
