import { Agent, request, type IncomingMessage, type ClientRequest } from 'node:http';
import { createHash } from 'node:crypto';
import { PortalError } from '../common/errors.js';
import type { EdgeKind, FailureReason } from '../common/index.js';
import { ChunkFetchError } from './chunk-fetch-error.js';
import { isCid } from './cid.js';

/** Sockets kept per edge (origin) by the shared agent. */
export const FETCH_MAX_SOCKETS_PER_EDGE = 16;

/** Creates a keep-alive agent for chunk fetches (`maxSockets` per edge, default 16); throws PORTAL_INVALID_ARGUMENT for a bad count. */
export function createFetchAgent(opts: { maxSocketsPerEdge?: number } = {}): Agent {
  const max = opts.maxSocketsPerEdge ?? FETCH_MAX_SOCKETS_PER_EDGE;
  if (!Number.isInteger(max) || max < 1)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `maxSocketsPerEdge: expected a positive integer, got ${String(max)}`,
    );
  return new Agent({
    keepAlive: true,
    keepAliveMsecs: 1000,
    maxSockets: max,
    maxFreeSockets: max,
    scheduling: 'lifo',
  });
}

/** The process-wide keep-alive agent fetchChunk uses unless given another. */
export const defaultFetchAgent: Agent = createFetchAgent();

/** One chunk fetch: where from, which bytes, how long to wait. */
export interface FetchChunkRequest {
  edgeUrl: string;
  edgeKind: EdgeKind;
  /** Expected sha256 hex of the bytes. */
  cid: string;
  /** Byte offset of the chunk in the file (used for mirror Range requests). */
  offset: number;
  length: number;
  /** Budget for the whole fetch, request to last byte. */
  timeoutMs: number;
  signal?: AbortSignal;
  agent?: Agent;
}

/** The verified bytes of a chunk and how long they took (ms, performance.now()). */
export interface FetchChunkResult {
  bytes: Buffer;
  /** Request sent → response headers received. */
  firstByteMs: number;
  /** Request sent → last byte received. */
  transferMs: number;
}

/** The shape of fetchChunk, so executors can be given a stand-in. */
export type FetchChunkFn = (req: FetchChunkRequest) => Promise<FetchChunkResult>;

class RetryOnFreshSocket extends Error {}

/** 5xx and 429 mean "busy, try later" (`busy`); other statuses (404: not held, 416, …) are `http`. */
function httpReason(status: number): 'busy' | 'http' {
  return status >= 500 || status === 429 ? 'busy' : 'http';
}

function checkRequest(r: FetchChunkRequest): URL {
  if (!r || typeof r !== 'object')
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'req: expected an object');
  let url: URL;
  try {
    url = new URL(r.edgeUrl);
  } catch (err) {
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `edgeUrl: expected an http URL, got ${JSON.stringify(r.edgeUrl)}`,
      { cause: err },
    );
  }
  if (url.protocol !== 'http:')
    throw new PortalError('PORTAL_INVALID_ARGUMENT', `edgeUrl: expected an http: URL, got ${url.protocol}`);
  if (r.edgeKind !== 'portal' && r.edgeKind !== 'mirror')
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `edgeKind: expected 'portal' or 'mirror', got ${JSON.stringify(r.edgeKind)}`,
    );
  if (!isCid(r.cid))
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `cid: expected 64 lowercase hex characters, got ${JSON.stringify(r.cid)}`,
    );
  if (!Number.isSafeInteger(r.offset) || r.offset < 0)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `offset: expected a non-negative integer, got ${String(r.offset)}`,
    );
  if (!Number.isSafeInteger(r.length) || r.length < 1)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `length: expected a positive integer, got ${String(r.length)}`,
    );
  if (typeof r.timeoutMs !== 'number' || !(r.timeoutMs > 0))
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `timeoutMs: expected a positive number, got ${String(r.timeoutMs)}`,
    );
  if (r.edgeKind === 'portal') {
    url = new URL(`${r.edgeUrl.replace(/\/+$/, '')}/v1/chunks/${r.cid}`);
  }
  return url;
}

/**
 * Fetches one chunk from an edge over the shared keep-alive agent and verifies its length and sha256.
 * Portal edges: GET `<edgeUrl>/v1/chunks/<cid>` (200). Mirrors: GET `edgeUrl` with `Range: bytes=a-b` (206,
 * or 200 only for a whole-file range from offset 0). Throws PORTAL_INVALID_ARGUMENT for bad arguments and
 * ChunkFetchError otherwise, with reason 'timeout', 'http', 'unreachable', 'corrupt', 'short' or 'cancelled'.
 * A keep-alive socket the edge had already closed is retried once on a fresh one.
 */
export async function fetchChunk(req: FetchChunkRequest): Promise<FetchChunkResult> {
  const url = checkRequest(req);
  const t0 = performance.now();
  if (req.signal?.aborted)
    throw new ChunkFetchError('cancelled', 'aborted before the request was sent', {
      edgeUrl: req.edgeUrl,
      elapsedMs: 0,
    });
  try {
    return await fetchOnce(req, url, t0);
  } catch (err) {
    if (!(err instanceof RetryOnFreshSocket)) throw err;
  }
  try {
    return await fetchOnce(req, url, t0);
  } catch (err) {
    if (!(err instanceof RetryOnFreshSocket)) throw err;
    throw new ChunkFetchError(
      'unreachable',
      'connection reset before any response, twice (the edge is closing connections)',
      { edgeUrl: req.edgeUrl, elapsedMs: performance.now() - t0 },
    );
  }
}

function fetchOnce(r: FetchChunkRequest, url: URL, t0: number): Promise<FetchChunkResult> {
  return new Promise<FetchChunkResult>((resolve, reject) => {
    let settled = false;
    let firstByteMs: number | undefined;
    let res: IncomingMessage | undefined;
    let got = 0;
    const now = (): number => performance.now() - t0;

    const cleanup = (): void => {
      clearTimeout(timer);
      r.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (
      reason: FailureReason,
      detail: string,
      extra: { status?: number; cause?: unknown; keepSocket?: boolean } = {},
    ): void => {
      if (settled) return;
      settled = true;
      cleanup();
      if (extra.keepSocket && res) res.resume();
      else creq.destroy();
      reject(
        new ChunkFetchError(reason, detail, {
          edgeUrl: r.edgeUrl,
          status: extra.status,
          firstByteMs,
          elapsedMs: now(),
          cause: extra.cause,
        }),
      );
    };
    const remaining = Math.max(1, r.timeoutMs - now());
    const timer = setTimeout(() => {
      fail(
        'timeout',
        firstByteMs === undefined
          ? `no response within ${r.timeoutMs} ms`
          : `body incomplete after ${r.timeoutMs} ms (${got} of ${r.length} bytes)`,
      );
    }, remaining);
    const onAbort = (): void =>
      fail('cancelled', `aborted after ${Math.round(now())} ms (${got} of ${r.length} bytes)`, {
        cause: r.signal?.reason,
      });
    r.signal?.addEventListener('abort', onAbort, { once: true });

    const headers: Record<string, string> = { 'accept-encoding': 'identity' };
    if (r.edgeKind === 'mirror') headers.range = `bytes=${r.offset}-${r.offset + r.length - 1}`;
    const creq: ClientRequest = request(
      url,
      { agent: r.agent ?? defaultFetchAgent, method: 'GET', headers },
      (response) => {
        res = response;
        firstByteMs = now();
        const status = response.statusCode ?? 0;
        if (r.edgeKind === 'portal') {
          if (status !== 200) {
            fail(httpReason(status), `HTTP ${status} for ${url.pathname}`, { status, keepSocket: true });
            return;
          }
        } else if (status === 206) {
          const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(response.headers['content-range'] ?? ''));
          if (!cr || Number(cr[1]) !== r.offset || Number(cr[2]) !== r.offset + r.length - 1) {
            fail(
              'http',
              `mirror answered Content-Range ${JSON.stringify(response.headers['content-range'] ?? null)} for bytes=${r.offset}-${r.offset + r.length - 1}`,
              { status, keepSocket: true },
            );
            return;
          }
        } else if (!(
          status === 200 &&
          r.offset === 0 &&
          Number(response.headers['content-length']) === r.length
        )) {
          fail(
            status === 200 ? 'http' : httpReason(status),
            status === 200
              ? 'mirror ignored the Range header (HTTP 200 with a different length)'
              : `HTTP ${status} for a Range request`,
            { status, keepSocket: status !== 200 },
          );
          return;
        }
        const cl = response.headers['content-length'];
        if (cl !== undefined && Number(cl) !== r.length) {
          if (Number(cl) < r.length) fail('short', `Content-Length ${cl}, expected ${r.length}`, { status });
          else fail('corrupt', `Content-Length ${cl}, expected ${r.length}`, { status });
          return;
        }
        const buf = Buffer.allocUnsafe(r.length);
        const hash = createHash('sha256');
        response.on('data', (d: Buffer) => {
          if (settled) return;
          if (got + d.length > r.length) {
            fail('corrupt', `body longer than the expected ${r.length} bytes`);
            return;
          }
          d.copy(buf, got);
          got += d.length;
          hash.update(d);
        });
        response.on('end', () => {
          if (settled) return;
          if (got < r.length) {
            fail('short', `body ended after ${got} of ${r.length} bytes`);
            return;
          }
          const actual = hash.digest('hex');
          if (actual !== r.cid) {
            fail('corrupt', `sha256 ${actual} does not match cid ${r.cid}`, { keepSocket: true });
            return;
          }
          settled = true;
          cleanup();
          resolve({ bytes: buf, firstByteMs: firstByteMs ?? now(), transferMs: now() });
        });
        response.on('error', (err: NodeJS.ErrnoException) =>
          fail(
            'unreachable',
            `connection lost after ${got} of ${r.length} bytes: ${err.code ?? err.message}`,
            { cause: err },
          ),
        );
        response.on('close', () => {
          if (!settled) fail('short', `connection closed after ${got} of ${r.length} bytes`);
        });
      },
    );
    creq.on('error', (err: NodeJS.ErrnoException) => {
      if (settled) return;
      if (res === undefined && creq.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
        settled = true;
        cleanup();
        reject(new RetryOnFreshSocket());
        return;
      }
      fail('unreachable', `${err.code ?? 'error'}: ${err.message}`, { cause: err });
    });
    creq.end();
  });
}
