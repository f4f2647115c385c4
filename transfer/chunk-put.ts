import { PortalError } from '../common/errors.js';
import { redactUrl } from '../common/redact.js';
import { cidOf } from './cid.js';
import type { ChunkWriter } from './chunk-writer.js';

/** True when an executor's output names an edge to PUT chunks to (a pre-position task) rather than a file. */
/**
 * The bearer token a host sends with its PUTs to accepting edges (`PORTAL_EDGE_PUT_TOKEN`), and the only edge
 * origins (`scheme://host:port`, lower case, from `PORTAL_EDGE_PUT_ORIGINS`) it may be sent to. A transfer's
 * output URL is chosen by the caller of `start`, so without this list any caller could have the token sent to a
 * server of its own.
 */
export interface EdgePutCredential {
  token: string;
  origins: ReadonlySet<string>;
}

/** `scheme://host:port` of a URL as WHATWG URL serialises it (default ports omitted); '' when not a URL. */
function originOf(url: string): string {
  try {
    return new URL(url).origin.toLowerCase();
  } catch {
    return '';
  }
}

/**
 * The host's edge PUT credential from the environment: undefined without `PORTAL_EDGE_PUT_TOKEN`.
 * `PORTAL_EDGE_PUT_ORIGINS` is a comma-separated list of edge URLs or origins; without it the token is sent to
 * no edge. Throws PortalError(PORTAL_CONFIG_INVALID) naming an entry that is not an http(s) URL.
 */
export function edgePutCredentialFromEnv(env: NodeJS.ProcessEnv): EdgePutCredential | undefined {
  const token = env.PORTAL_EDGE_PUT_TOKEN;
  if (!token) return undefined;
  const origins = new Set<string>();
  for (const entry of (env.PORTAL_EDGE_PUT_ORIGINS ?? '').split(',')) {
    const e = entry.trim();
    if (!e) continue;
    const o = isEdgeOutput(e) ? originOf(e) : '';
    if (!o || o === 'null')
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `PORTAL_EDGE_PUT_ORIGINS: ${JSON.stringify(e)} is not an http(s) URL or origin`,
      );
    origins.add(o);
  }
  return { token, origins };
}

/** How every PUT failure's message starts, so that a scheduler tells the destination's faults from a source's. */
const DESTINATION = 'destination edge';

/**
 * What a PUT answer other than 200/201 says, as a PUT failure's message puts it: a refusal (401, 403, any other
 * 4xx), no space (507) — permanent, no retry of the same PUT can help — or a failure (other 5xx) that a retry may cure.
 */
function refusal(status: number, hostHasToken: boolean, tokenSent: boolean, origin: string): string {
  if (status === 401)
    return `refused the PUT: 401 (put token missing or wrong${
      !tokenSent
        ? hostHasToken
          ? `: the host's PORTAL_EDGE_PUT_TOKEN is sent only to the origins in PORTAL_EDGE_PUT_ORIGINS; ${origin} is not one of them`
          : ': this host sends none (PORTAL_EDGE_PUT_TOKEN and PORTAL_EDGE_PUT_ORIGINS)'
        : ''
    })`;
  if (status === 403) return 'refused the PUT: 403 (forbidden)';
  if (status === 507) return 'refused the PUT: 507 (no space left on the edge)';
  if (status >= 400 && status < 500) return `refused the PUT: ${status}`;
  return `failed the PUT: ${status}`;
}

/**
 * Whether an executor's failure detail is a fault of the destination of a pre-position task (an edge that
 * refused the PUT, has no space, failed it or cannot be reached), not of the source the chunk came from: `permanent`
 * for refusals (4xx, 507), which no retry cures, else transient (unreachable, other 5xx). Undefined for any other
 * detail. The detail is openPutWriter's message, as the executor reports it.
 */
export function destinationFault(detail: string | undefined): { permanent: boolean } | undefined {
  const m = /^destination edge \S+ (refused the PUT|failed the PUT|unreachable for the PUT)/.exec(
    detail ?? '',
  );
  return m ? { permanent: m[1] === 'refused the PUT' } : undefined;
}

export function isEdgeOutput(output: string): boolean {
  return /^https?:\/\//i.test(output);
}

/**
 * A ChunkWriter whose writes go to an edge that accepts chunks (`portal edge --accept`): each verified chunk
 * is sent as `PUT <edge>/v1/chunks/<cid>` (with `Authorization: Bearer <token>` when given), and a write
 * resolves once the edge answered 201 or 200 — it checked the body against the CID and holds it. Any other
 * answer rejects with PORTAL_EDGE_HTTP naming the status and what it means (`destination edge <url> refused the
 * PUT: 401 (put token missing or wrong)`); a connection error with PORTAL_EDGE_UNREACHABLE (`destination edge
 * <url> unreachable for the PUT …`): destinationFault tells these from a source's faults. The messages name the
 * edge by its URL without credentials and never carry the token (it travels in a header, never echoed).
 */
export function openPutWriter(
  edgeUrl: string,
  opts: { fileSize: number; put?: EdgePutCredential },
): ChunkWriter {
  const base = edgeUrl.replace(/\/+$/, '');
  /** The edge as messages name it: without any credentials its URL carries (the token is never in it). */
  const shown = redactUrl(base);
  // the token goes only to an edge the operator named: an output URL comes from whoever called `start`
  const token = opts.put && opts.put.origins.has(originOf(base)) ? opts.put.token : undefined;
  let closed = false;
  return {
    path: base,
    fileSize: opts.fileSize,
    // every write is acknowledged by the edge, which holds the chunk: nothing to flush in the background
    backgroundSyncs: 0,
    async write(offset, bytes) {
      if (closed) throw new PortalError('PORTAL_TRANSFER_FAILED', `writer to ${base} is closed`);
      const cid = cidOf(bytes);
      let res;
      try {
        // undici's index (fetch, WebSocket…) loads only when a chunk is PUT, not with every `portal fetch`
        const { request } = await import('undici');
        res = await request(`${base}/v1/chunks/${cid}`, {
          method: 'PUT',
          body: bytes,
          headers: {
            'content-type': 'application/octet-stream',
            ...(token ? { authorization: `Bearer ${token}` } : {}),
          },
        });
      } catch (cause) {
        throw new PortalError(
          'PORTAL_EDGE_UNREACHABLE',
          `${DESTINATION} ${shown} unreachable for the PUT of chunk ${cid} (at ${offset}): ${(cause as Error).message}`,
          { cause },
        );
      }
      const text = await res.body.text().catch(() => '');
      if (res.statusCode !== 201 && res.statusCode !== 200)
        throw new PortalError(
          'PORTAL_EDGE_HTTP',
          `${DESTINATION} ${shown} ${refusal(res.statusCode, opts.put !== undefined, token !== undefined, originOf(base))} (chunk ${cid} at ${offset}${text ? `; it said ${text.slice(0, 200)}` : ''})`,
        );
    },
    writeSync() {
      // only data-plane threads write synchronously, and edge outputs never go to them
      throw new PortalError('PORTAL_INVALID_ARGUMENT', `chunks go to ${base} by PUT, never synchronously`);
    },
    async sync() {},
    async close() {
      closed = true;
    },
  };
}
