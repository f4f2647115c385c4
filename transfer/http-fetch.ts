import { createHash, type Hash } from 'node:crypto';
import { PortalError } from '../common/errors.js';
import type { EdgeKind, FailureReason } from '../common/index.js';
import {
  ChunkFetchError,
  NO_SUCH_HOST_DETAIL,
  REFUSED_DETAIL,
  sizeChangedDetail,
  versionChangedDetail,
  versionUnknownDetail,
  TRANSIENT_FAULTS,
  type SourceFault,
} from './chunk-fetch-error.js';
import { isCid, NO_CID } from './cid.js';
import type { BodyMode, ResponseHeaders } from './body-handler.js';
import { LowestSpeedMonitor, tooSlowDetail, watch } from './lowest-speed.js';
import { isRedactedUrl } from '../common/redact.js';
import { defaultHttpClient, redactUrl, type HttpClient, type ResponseHead } from './http-client.js';
import { ProxyError } from './http-proxy.js';
import { oneLine, tlsFaultPhrase } from './tls-fault.js';

/** Retries of one chunk fetch after a transient fault (reset, short body, stall), within its deadline. */
export const FETCH_TRANSIENT_RETRIES = 2;
/** Exponential backoff base and cap for those retries, ms ("full jitter": uniform in [0, min(cap, base·2^n)], AWS Architecture Blog, 2015). */
export const FETCH_BACKOFF_BASE_MS = 200;
export const FETCH_BACKOFF_CAP_MS = 5_000;

/** One chunk fetch: where from, which bytes, how long to wait. */
export interface FetchChunkRequest {
  edgeUrl: string;
  edgeKind: EdgeKind;
  /** Expected sha256 hex of the bytes. */
  cid: string;
  /** Byte offset of the chunk in the file (used for mirror Range requests). */
  offset: number;
  length: number;
  /** Budget for the whole fetch, request to last byte, retries included. */
  timeoutMs: number;
  /** Size of the whole file, when known: lets a mirror that ignores Range be read as one stream. */
  fileSize?: number;
  signal?: AbortSignal;
  /** The HTTP client (default: the process-wide one). */
  client?: HttpClient;
  /**
   * The first `length` bytes of the chunk are already in place (kept from an interrupted fetch) and `hash`
   * is the sha256 state after them (copied, never changed): only the rest is requested (a Range of the
   * chunk), and the sink sees pieces from `at` = length on. A source that cannot send the rest alone (a 200
   * with the whole body, a mirror read as one stream) ends the fetch as `http` / `range-ignored`; bytes of
   * the prefix that are wrong end it as `corrupt`, like any bad byte.
   */
  prefix?: { length: number; hash: Hash };
}

/** The verified bytes of a chunk and how long they took (ms, performance.now()). */
export interface FetchChunkResult {
  bytes: Buffer;
  /** Request sent → response headers received. */
  firstByteMs: number;
  /** Request sent → last byte received. */
  transferMs: number;
}

/**
 * Where the bytes of a chunk go as its body streams in: `write(piece, at)` is called in order with each piece
 * and its offset in the chunk (`at` = bytes before it), synchronously; a retry starts again at 0. A throw
 * ends the fetch as an `io` failure naming the error (a full disk, a closed file).
 */
export interface ChunkSink {
  write(piece: Buffer, at: number): void;
}

/** The timing and length of a chunk streamed into a ChunkSink and verified (ms, performance.now()). */
export interface ChunkTiming {
  /** Request sent → response headers received. */
  firstByteMs: number;
  /** Request sent → last byte received. */
  transferMs: number;
  /** Bytes of the chunk (its length, once verified). */
  length: number;
}

/** The shape of fetchChunk, so executors can be given a stand-in. */
export type FetchChunkFn = (req: FetchChunkRequest) => Promise<FetchChunkResult>;

/**
 * Parses a Retry-After header (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) into milliseconds from
 * `nowMs`; undefined when absent or unreadable. A date in the past gives 0.
 */
export function parseRetryAfter(
  value: string | string[] | undefined,
  nowMs = Date.now(),
): number | undefined {
  const v = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, t - nowMs) : undefined;
}

/**
 * Parses a Content-Range leniently: `bytes a-b/N`, `bytes=a-b/N` (seen from some servers), `bytes a-b/*`, any
 * case. Returns undefined when unreadable. The chunk hash, not this header, decides whether bytes are right.
 */
export function parseContentRange(
  value: string | string[] | undefined,
): { start: number; end: number; total?: number } | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  const m = /^\s*bytes[ =]\s*(\d+)\s*-\s*(\d+)\s*(?:\/\s*(\d+|\*))?\s*$/i.exec(v ?? '');
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] && m[3] !== '*' ? Number(m[3]) : undefined };
}

/** Full-jitter exponential backoff for retry `n` (1-based), ms. */
export function backoffMs(n: number, base = FETCH_BACKOFF_BASE_MS, cap = FETCH_BACKOFF_CAP_MS): number {
  return Math.random() * Math.min(cap, base * 2 ** n);
}

/**
 * Waits `ms` before a retry, or less: an abort of `signal` (the caller's cancel, the deadline, the lowest-speed
 * limit) ends the wait at once, and the fetch then ends as that abort says. A plain timer here kept a cancelled
 * fetch alive for the rest of its backoff (up to FETCH_BACKOFF_BASE_MS · 2 · … per retry: 1–275 ms seen on the
 * throttled-mirrors bench, where the dying mirror's fetches were cancelled by the failover in their backoff): the
 * data thread recorded the bytes the fetch had written only then, and a failover of the chunk dispatched
 * meanwhile fetched the whole chunk again (0.85 MB per such chunk, in 2 of ~6 runs).
 */
function backoffUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
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
      `edgeUrl: expected an http(s) URL, got ${JSON.stringify(redactUrl(String(r.edgeUrl)))}`,
      { cause: err },
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `edgeUrl: expected an http: or https: URL, got ${url.protocol}`,
    );
  // a journal keeps URLs redacted: sending one would send `***` as a password or a signature
  if (isRedactedUrl(r.edgeUrl))
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `edgeUrl: ${redactUrl(r.edgeUrl)} lost its credentials (redacted); a redacted URL is never used for a request`,
    );
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
  if (
    r.prefix !== undefined &&
    (!Number.isSafeInteger(r.prefix.length) ||
      r.prefix.length < 0 ||
      r.prefix.length > r.length ||
      typeof r.prefix.hash?.copy !== 'function')
  )
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `prefix: expected { length: 0..${r.length}, hash: a sha256 Hash }, got length ${String(r.prefix.length)}`,
    );
  if (r.edgeKind === 'portal') url = new URL(`${r.edgeUrl.replace(/\/+$/, '')}/v1/chunks/${r.cid}`);
  return url;
}

/**
 * Undici and Node error codes → the scheduler's reason, the finer fault and a phrase naming the cause
 * (`TLS: UNABLE_TO_VERIFY_LEAF_SIGNATURE: the certificate of host:port is signed by a CA …: give --ca FILE …`,
 * `connection refused`, …), on one line; `got` bytes of the body had arrived, `headers` whether a response had
 * begun, `url` the source (its host is named in a TLS phrase; an http: one that resets suggests https://). Never
 * throws.
 */
export function transportFault(
  err: unknown,
  got: number,
  headers: boolean,
  url?: string | URL,
): { reason: FailureReason; fault: SourceFault; what: string } {
  let plainHttp = false;
  try {
    plainHttp = url !== undefined && new URL(url).protocol === 'http:';
  } catch {
    // not a URL: no hint
  }
  const e = err as NodeJS.ErrnoException & { code?: string };
  const code = e?.code ?? '';
  const msg = e?.message ?? String(err);
  if (code === 'UND_ERR_HEADERS_TIMEOUT')
    return { reason: 'timeout', fault: 'stalled', what: 'no response headers within the stall timeout' };
  if (code === 'UND_ERR_BODY_TIMEOUT')
    return {
      reason: 'timeout',
      fault: 'stalled',
      what: `stalled: no byte within the stall timeout after ${got} bytes`,
    };
  if (code === 'UND_ERR_CONNECT_TIMEOUT')
    return { reason: 'unreachable', fault: 'connect-timeout', what: 'connect timed out' };
  if (code === 'ECONNREFUSED') return { reason: 'unreachable', fault: 'refused', what: REFUSED_DETAIL };
  if (code === 'ENOTFOUND') return { reason: 'unreachable', fault: 'dns', what: NO_SUCH_HOST_DETAIL };
  if (code === 'EAI_AGAIN')
    return { reason: 'unreachable', fault: 'dns', what: `host name not found (${code})` };
  const tls = tlsFaultPhrase(err, url);
  if (tls !== undefined) return { reason: 'http', fault: 'tls', what: tls };
  if (
    code === 'UND_ERR_SOCKET' ||
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' ||
    code === 'UND_ERR_CLOSED'
  )
    return headers
      ? { reason: 'short', fault: 'reset', what: `connection reset after ${got} bytes of the body` }
      : {
          reason: 'unreachable',
          fault: 'reset',
          // a TLS server closes a plain-HTTP request so (nginx answers 400 instead)
          what: `connection reset before a response${plainHttp ? ' (if this port serves https, use https://)' : ''}`,
        };
  return { reason: 'unreachable', fault: 'other', what: oneLine(code ? `${code}: ${msg}` : msg) };
}

/** State of one fetch: its deadline signal and timing. */
interface Ctx {
  req: FetchChunkRequest;
  client: HttpClient;
  url: URL;
  t0: number;
  signal: AbortSignal;
  /** Set when our own deadline (not the caller) aborted. */
  deadline: { hit: boolean };
  firstByteMs?: number;
  got: number;
  /** Bytes of the chunk already in place before this request (FetchChunkRequest.prefix), 0 for a whole chunk. */
  skip: number;
  /** Where the bytes go, and the sha256 that follows them (none for NO_CID chunks, checked by length only). */
  sink: ChunkSink;
  hash: Hash | undefined;
  /** The lowest-speed limit of this fetch (undefined when off): armed when a response begins, fed by put(). */
  speed: LowestSpeedMonitor | undefined;
}

const fail = (
  c: Ctx,
  reason: FailureReason,
  fault: SourceFault,
  detail: string,
  extra: { status?: number; cause?: unknown; retryAfterMs?: number } = {},
): ChunkFetchError =>
  new ChunkFetchError(reason, detail, {
    edgeUrl: redactUrl(c.req.edgeUrl),
    status: extra.status,
    firstByteMs: c.firstByteMs,
    elapsedMs: performance.now() - c.t0,
    fault,
    retryAfterMs: extra.retryAfterMs,
    cause: extra.cause,
  });

/** Turns a thrown error into a ChunkFetchError of this fetch (abort → cancelled or deadline). */
function asFetchError(c: Ctx, err: unknown, headers: boolean): ChunkFetchError {
  if (err instanceof ChunkFetchError) return err;
  // the lowest-speed limit aborted the fetch with its fault (the transport's error is only its echo)
  if (c.signal.aborted && c.signal.reason instanceof ChunkFetchError) return c.signal.reason;
  if (c.deadline.hit)
    return fail(
      c,
      'timeout',
      'deadline',
      c.firstByteMs === undefined
        ? `no response within ${Math.round(c.req.timeoutMs)} ms`
        : `body incomplete after ${Math.round(c.req.timeoutMs)} ms (${c.got} of ${c.req.length} bytes)`,
      { cause: err },
    );
  if (c.req.signal?.aborted)
    return fail(
      c,
      'cancelled',
      'cancelled',
      `aborted after ${Math.round(performance.now() - c.t0)} ms (${c.got} of ${c.req.length} bytes)`,
      {
        cause: c.req.signal.reason,
      },
    );
  // the proxy failed the request (refused, 407, a CONNECT answered 502…): named as the proxy's, not the source's
  if (err instanceof ProxyError)
    return fail(c, 'unreachable', 'proxy', err.message, { status: err.status, cause: err });
  if (err instanceof PortalError && err.code === 'PORTAL_EDGE_HTTP')
    return fail(c, 'http', 'redirect', err.message, { cause: err });
  const t = transportFault(err, c.got, headers, c.url);
  return fail(c, t.reason, t.fault, t.what, { cause: err });
}

/** Destroys a response body we will not read; its late errors are expected and dropped. */
function discard(body: { on(ev: 'error', f: () => void): unknown; destroy(): void }): void {
  body.on('error', () => undefined);
  body.destroy();
}

const header = (h: ResponseHeaders, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

/**
 * Hands one piece of the body to the sink and the hash as it arrives (called inside undici's socket read, so
 * a throw aborts the request); bytes past `length` are `corrupt`.
 */
function put(c: Ctx, d: Buffer): void {
  if (c.got + d.length > c.req.length)
    throw fail(c, 'corrupt', 'corrupt', `body longer than the expected ${c.req.length} bytes`);
  c.hash?.update(d);
  try {
    c.sink.write(d, c.got);
  } catch (err) {
    throw fail(c, 'io', 'io', (err as Error)?.message ?? String(err), { cause: err });
  }
  c.got += d.length;
  c.speed?.add(d.length);
}

/** Throws `short` when the body ended before the chunk's `length` bytes were in. */
function complete(c: Ctx, length: number): void {
  if (c.got < length) throw fail(c, 'short', 'short-body', `body ended after ${c.got} of ${length} bytes`);
}

function verify(c: Ctx): ChunkTiming {
  const actual = c.hash ? c.hash.digest('hex') : NO_CID;
  if (actual !== c.req.cid)
    throw fail(c, 'corrupt', 'corrupt', `sha256 ${actual} does not match cid ${c.req.cid}`);
  const now = performance.now() - c.t0;
  return { firstByteMs: c.firstByteMs ?? now, transferMs: now, length: c.got };
}

/** The status of an answer that is not the expected one, as a ChunkFetchError (busy with Retry-After for 5xx/429). */
function statusError(c: Ctx, r: ResponseHead, what: string): ChunkFetchError {
  const s = r.statusCode;
  const busy = s >= 500 || s === 429;
  const retryAfterMs = busy ? parseRetryAfter(r.headers['retry-after']) : undefined;
  const where = r.redirects > 0 ? ` (from ${redactUrl(r.url)} after ${r.redirects} redirect(s))` : '';
  // through a proxy (an http: origin asked in absolute form), the status may be the proxy's own (502: it could
  // not reach the origin)
  const via = r.proxy ? ` through proxy ${r.proxy}` : '';
  return fail(
    c,
    busy ? 'busy' : 'http',
    busy ? 'busy' : 'http-status',
    `HTTP ${s} for ${what}${where}${via}${retryAfterMs !== undefined ? `; Retry-After ${Math.round(retryAfterMs / 1000)} s` : ''}`,
    { status: s, retryAfterMs },
  );
}

/** One request of a chunk to a Portal edge (GET /v1/chunks/<cid>, 200), its body read into the sink. */
async function fromPortal(c: Ctx, reset: boolean): Promise<ChunkTiming> {
  const rest = c.req.length - c.skip;
  const expected = c.skip > 0 ? 206 : 200;
  let refused: ResponseHead | undefined;
  c.got = c.skip;
  try {
    await c.client.receive(
      c.url.href,
      {
        signal: c.signal,
        reset,
        headers: {
          'accept-encoding': 'identity',
          ...(c.skip > 0 ? { range: `bytes=${c.skip}-${c.req.length - 1}` } : {}),
        },
      },
      {
        onHead(h) {
          c.firstByteMs = performance.now() - c.t0;
          c.speed?.arm(performance.now());
          if (h.statusCode !== expected) {
            if (c.skip > 0 && h.statusCode === 200)
              throw fail(
                c,
                'http',
                'range-ignored',
                `answered the whole chunk to a Range of its last ${rest} bytes`,
                { status: 200 },
              );
            refused = h;
            return 'skip';
          }
          const cl = header(h.headers, 'content-length');
          if (cl !== undefined && Number(cl) !== rest)
            throw fail(
              c,
              Number(cl) < rest ? 'short' : 'corrupt',
              'content-range',
              `Content-Length ${cl}, expected ${rest}`,
              { status: h.statusCode },
            );
          return 'data';
        },
        onData: (d) => put(c, d),
      },
    );
    if (refused) throw statusError(c, refused, c.url.pathname);
    complete(c, c.req.length);
    return verify(c);
  } catch (err) {
    throw asFetchError(c, err, c.firstByteMs !== undefined);
  }
}

/** The `size-changed` ChunkFetchError: the mirror's file has `served` bytes, not the transfer's fileSize. */
function sizeChanged(c: Ctx, served: number, what: string, status: number): ChunkFetchError {
  return fail(c, 'http', 'size-changed', sizeChangedDetail(served, c.req.fileSize!, what), { status });
}

/** True when `validator` (HttpClientOptions.ifRange) is a Last-Modified date rather than an ETag. */
const isDateValidator = (validator: string): boolean =>
  !/^(W\/)?"/.test(validator) && Number.isFinite(Date.parse(validator)) && /[a-z]{3}/i.test(validator);

/**
 * Checks a 206 answer to a Range sent with `If-Range: validator` (the version the transfer started with, a strong
 * ETag or a Last-Modified date) against that validator before any byte of it is written: many servers, caches and
 * proxies ignore If-Range and answer 206 from whatever version they have now, and only its validator tells. A
 * different ETag (strong comparison, RFC 9110 §8.8.3.2) or Last-Modified date throws the `version-changed`
 * ChunkFetchError (as a 200 to If-Range does); a 206 without that header throws `version-unknown` (RFC 9110 §15.3.7
 * requires it where a 200 would carry it, and the probe's did): either way the scheduler gives the source up
 * (isFileChanged), and no byte of another version is mixed in.
 */
function checkVersion(c: Ctx, h: ResponseHead, validator: string): void {
  const field = isDateValidator(validator) ? 'Last-Modified' : 'ETag';
  const served = header(h.headers, field.toLowerCase())?.trim();
  if (served === undefined || served === '')
    throw fail(c, 'http', 'version-unknown', versionUnknownDetail(validator, field), { status: 206 });
  const same =
    field === 'ETag'
      ? served === validator
      : served === validator || Date.parse(served) === Date.parse(validator);
  if (!same)
    throw fail(c, 'http', 'version-changed', versionChangedDetail(validator, { field, value: served }), {
      status: 206,
    });
}

/**
 * What becomes of a mirror's answer to `Range: bytes=a-b`: a 206 (Content-Range parsed leniently; a missing
 * one is accepted when the length matches) or a 200 of exactly the chunk is read (`data`); a 200 with the
 * whole file from a mirror that ignores Range becomes a stream for SequentialReader (`stream`); another
 * status is skipped (the caller reports it). Throws the ChunkFetchError of an answer that cannot be used.
 */
function mirrorBodyMode(c: Ctx, h: ResponseHead, a: number, b: number): BodyMode {
  const { req } = c;
  const s = h.statusCode;
  if (s !== 200 && s !== 206) return 'skip';
  const enc = header(h.headers, 'content-encoding');
  if (enc && enc.toLowerCase() !== 'identity')
    throw fail(
      c,
      'http',
      'content-encoding',
      `sent a ${enc}-encoded body (Content-Encoding: ${enc}) though asked for identity`,
      { status: s },
    );
  const cl = header(h.headers, 'content-length');
  const type = header(h.headers, 'content-type') ?? '';
  if (c.skip > 0 && s !== 206)
    throw fail(c, 'http', 'range-ignored', `answered HTTP ${s} to a Range of the rest of the chunk`, {
      status: s,
    });
  if (s === 206) {
    const cr = header(h.headers, 'content-range');
    const range = parseContentRange(cr);
    if (range?.total !== undefined && req.fileSize !== undefined && range.total !== req.fileSize)
      throw sizeChanged(c, range.total, `Content-Range ${cr}`, s);
    if (cr !== undefined && (!range || range.start !== a || range.end !== b))
      throw fail(
        c,
        'http',
        'content-range',
        `answered Content-Range ${JSON.stringify(cr)} for bytes=${a}-${b}`,
        { status: s },
      );
    // RFC 9110 §15.3.7: a single-part 206 must say which bytes it holds. Without a Content-Range only a chunk hash
    // can tell bytes a-b from the bytes of offset 0 a broken cache sends for every Range: with none (NO_CID) such an
    // answer is refused past offset 0 (aria2c likewise: "Invalid range header"), never placed at a.
    if (cr === undefined && a > 0 && c.hash === undefined)
      throw fail(
        c,
        'http',
        'content-range',
        `answered 206 without Content-Range for bytes=${a}-${b} (RFC 9110 §15.3.7 requires one; nothing else can tell where its bytes belong)`,
        { status: s },
      );
    if (cr === undefined && cl !== undefined && Number(cl) !== b - a + 1)
      throw fail(
        c,
        'http',
        'content-range',
        `206 without Content-Range and with Content-Length ${cl}, expected ${b - a + 1}`,
        { status: s },
      );
    return 'data';
  }
  // 200: the whole file, or an error page dressed as one.
  if (a === 0 && cl !== undefined && Number(cl) === req.length) return 'data';
  if (/^text\/html/i.test(type) && (req.fileSize === undefined || Number(cl) !== req.fileSize))
    throw fail(
      c,
      'http',
      'html',
      `served an HTML page (HTTP 200, ${type}${cl ? `, ${cl} bytes` : ''}) instead of the file`,
      { status: s },
    );
  if (req.fileSize !== undefined && (cl === undefined || Number(cl) === req.fileSize)) return 'stream';
  if (req.fileSize !== undefined && /^\d+$/.test(cl!))
    throw sizeChanged(c, Number(cl), `HTTP 200 with Content-Length ${cl}`, s);
  throw fail(
    c,
    'http',
    'range-ignored',
    `ignored the Range header (HTTP 200 with ${cl ?? 'an unknown number of'} bytes${req.fileSize !== undefined ? `; the file has ${req.fileSize}` : ''})`,
    { status: s },
  );
}

/**
 * One request of a chunk to a mirror: `Range: bytes=a-b`, its body read into the sink (see mirrorBodyMode),
 * or, from a mirror that ignores Range, the mirror read as one sequential stream (see SequentialReader).
 */
async function fromMirror(c: Ctx, reset: boolean): Promise<ChunkTiming> {
  const { req } = c;
  const seq = sequentialReaders.get(c.client)?.get(req.edgeUrl);
  if (seq && c.skip > 0)
    throw fail(
      c,
      'http',
      'range-ignored',
      'the mirror ignores Range: the rest of a chunk cannot be asked alone',
    );
  if (seq) {
    await seq.read(c);
    return verify(c);
  }
  const a = req.offset + c.skip;
  const b = req.offset + req.length - 1;
  let refused: ResponseHead | undefined;
  c.got = c.skip;
  // the version of the file the transfer started with (HttpClientOptions.ifRange): a 200 means another one
  const ifRange = c.client.options.ifRange?.[req.edgeUrl];
  try {
    const r = await c.client.receiveMirror(
      req.edgeUrl,
      {
        signal: c.signal,
        reset,
        headers: {
          range: `bytes=${a}-${b}`,
          'accept-encoding': 'identity',
          ...(ifRange !== undefined ? { 'if-range': ifRange } : {}),
        },
      },
      {
        onHead(h) {
          c.firstByteMs = performance.now() - c.t0;
          c.speed?.arm(performance.now());
          if (ifRange !== undefined && h.statusCode === 200)
            throw fail(c, 'http', 'version-changed', versionChangedDetail(ifRange), { status: 200 });
          // a mirror that ignores If-Range answers 206 whatever version it has now: its validator tells
          if (ifRange !== undefined && h.statusCode === 206) checkVersion(c, h, ifRange);
          const mode = mirrorBodyMode(c, h, a, b);
          if (mode === 'skip') refused = h;
          return mode;
        },
        onData: (d) => put(c, d),
      },
    );
    if (refused) {
      // a 416 names the size it has now (RFC 9110 §15.5.17: Content-Range: bytes */N)
      const unsatisfied = /^\s*bytes\s+\*\s*\/\s*(\d+)\s*$/i.exec(
        header(refused.headers, 'content-range') ?? '',
      );
      if (
        refused.statusCode === 416 &&
        unsatisfied &&
        req.fileSize !== undefined &&
        Number(unsatisfied[1]) !== req.fileSize
      )
        throw sizeChanged(
          c,
          Number(unsatisfied[1]),
          `HTTP 416 with Content-Range bytes */${unsatisfied[1]}`,
          416,
        );
      throw statusError(c, refused, `bytes=${a}-${b}`);
    }
    if (r.mode === 'stream' && r.body) {
      // The mirror ignores Range: from now on it is read as one stream from byte 0 (a concurrent request
      // may have found that out first; then its stream is used and this one dropped).
      let map = sequentialReaders.get(c.client);
      if (!map) sequentialReaders.set(c.client, (map = new Map<string, SequentialReader>()));
      let reader = map.get(req.edgeUrl);
      if (reader) discard(r.body);
      else {
        reader = new SequentialReader(req.edgeUrl, req.fileSize!, c.client);
        map.set(req.edgeUrl, reader);
        reader.adopt(r.body);
      }
      await reader.read(c);
      return verify(c);
    }
    complete(c, req.length);
    return verify(c);
  } catch (err) {
    throw asFetchError(c, err, c.firstByteMs !== undefined);
  }
}

/** Range-ignoring mirrors read as one stream, per client, by mirror URL. */
const sequentialReaders = new WeakMap<HttpClient, Map<string, SequentialReader>>();

/**
 * One mirror that ignores Range, read as a single sequential stream (as aria2c falls back to): requests are
 * served in offset order; bytes before a requested chunk are skipped, each chunk is cut out as it passes and
 * verified by the caller. A request behind the stream's position, or a stream that breaks, starts a new
 * GET from byte 0. Kept as our own code because no HTTP library does chunk-wise sequential fallback.
 */
class SequentialReader {
  private iter: AsyncIterator<Buffer> | undefined;
  private body: Parameters<typeof discard>[0] | undefined;
  private pos = 0;
  private leftover: Buffer | undefined;
  private queue: { c: Ctx; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private pumping = false;

  constructor(
    private readonly url: string,
    private readonly fileSize: number,
    private readonly client: HttpClient,
  ) {}

  adopt(body: AsyncIterable<Buffer> & Parameters<typeof discard>[0]): void {
    this.body = body;
    this.iter = body[Symbol.asyncIterator]();
    this.pos = 0;
    this.leftover = undefined;
  }

  /** Reads the chunk of `c` once the stream reaches it; queued requests are served lowest offset first. */
  read(c: Ctx): Promise<void> {
    c.speed?.disarm();
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ c, resolve, reject });
      if (!this.pumping) void this.pump();
    });
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    while (this.queue.length > 0) {
      let best = 0;
      for (let i = 1; i < this.queue.length; i++)
        if (this.queue[i].c.req.offset < this.queue[best].c.req.offset) best = i;
      const [job] = this.queue.splice(best, 1);
      try {
        await this.take(job.c);
        job.resolve();
      } catch (err) {
        job.reject(err);
      }
    }
    this.pumping = false;
  }

  private async restart(c: Ctx): Promise<void> {
    if (this.body) discard(this.body);
    const r = await this.client.sendMirror(this.url, {
      signal: c.signal,
      headers: { 'accept-encoding': 'identity' },
    });
    if (r.statusCode !== 200) {
      await r.body.dump().catch(() => undefined);
      throw statusError(c, r, 'the whole file (the mirror ignores Range)');
    }
    this.adopt(r.body);
  }

  private async take(c: Ctx): Promise<void> {
    const { offset, length } = c.req;
    if (c.signal.aborted) throw new Error('aborted');
    try {
      if (!this.iter || offset < this.pos) await this.restart(c);
      c.firstByteMs ??= performance.now() - c.t0;
      // the window starts when the stream is this chunk's, not while it waited in the queue
      c.speed?.arm(performance.now());
      c.got = 0;
      const onAbort = (): void => {
        if (this.body) discard(this.body);
      };
      c.signal.addEventListener('abort', onAbort, { once: true });
      try {
        while (c.got < length) {
          let d = this.leftover;
          this.leftover = undefined;
          if (!d) {
            const n = await this.iter!.next();
            if (n.done)
              throw fail(c, 'short', 'short-body', `stream ended at byte ${this.pos} of ${this.fileSize}`);
            d = n.value;
          }
          const start = this.pos;
          const end = start + d.length;
          if (end <= offset) {
            this.pos = end;
            c.speed?.add(d.length);
            continue;
          }
          const from = Math.max(0, offset - start);
          c.speed?.add(from);
          const take = Math.min(d.length - from, length - c.got);
          this.pos = start + from + take;
          put(c, from === 0 && take === d.length ? d : d.subarray(from, from + take));
          if (from + take < d.length) this.leftover = d.subarray(from + take);
        }
      } finally {
        c.signal.removeEventListener('abort', onAbort);
      }
    } catch (err) {
      this.iter = undefined;
      if (this.body) discard(this.body);
      throw err;
    }
  }
}

/**
 * Fetches one chunk over the HTTP client (undici) and verifies its length and sha256. Portal edges: GET
 * `<edgeUrl>/v1/chunks/<cid>` (200). Mirrors: GET `edgeUrl` (redirects followed) with `Range: bytes=a-b`
 * (206, or 200 — see fromMirror). Transient faults (reset, short body, stall) are retried up to
 * FETCH_TRANSIENT_RETRIES times with full-jitter exponential backoff on a connection closed after use,
 * within `timeoutMs`. Throws PORTAL_INVALID_ARGUMENT for bad arguments and ChunkFetchError otherwise
 * (reason for the scheduler; fault, detail and retryAfterMs for people and edge actors).
 */
export async function fetchChunk(req: FetchChunkRequest): Promise<FetchChunkResult> {
  checkRequest(req);
  const bytes = Buffer.allocUnsafe(req.length);
  const t = await fetchChunkTo(req, { write: (piece, at) => void piece.copy(bytes, at) });
  return { bytes, firstByteMs: t.firstByteMs, transferMs: t.transferMs };
}

/**
 * fetchChunk without a chunk buffer: each piece of the body goes to `sink` as it arrives (the data plane
 * writes it at its file offset) while the sha256 follows it; the chunk is verified when its last byte is in.
 * The sink sees the bytes before they are verified: a failed fetch (corrupt, short) leaves what it wrote,
 * which the caller must not count. Same checks, retries and errors as fetchChunk; a sink that throws ends it
 * as `io`.
 */
export async function fetchChunkTo(req: FetchChunkRequest, sink: ChunkSink): Promise<ChunkTiming> {
  const url = checkRequest(req);
  if (!sink || typeof sink.write !== 'function')
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'sink: expected an object with write(piece, at)');
  const client = req.client ?? defaultHttpClient();
  const t0 = performance.now();
  const ac = new AbortController();
  const deadline = { hit: false };
  const timer = setTimeout(() => {
    deadline.hit = true;
    ac.abort(new PortalError('PORTAL_EDGE_TIMEOUT', `deadline of ${req.timeoutMs} ms`));
  }, req.timeoutMs);
  const onAbort = (): void => ac.abort(req.signal?.reason);
  if (req.signal?.aborted) onAbort();
  else req.signal?.addEventListener('abort', onAbort, { once: true });
  const speed =
    client.lowestSpeedBytesPerSec > 0
      ? new LowestSpeedMonitor(client.lowestSpeedBytesPerSec, client.speedTimeMs)
      : undefined;
  let c: Ctx | undefined;
  const unwatch = speed
    ? watch(speed, (slow) =>
        ac.abort(c ? fail(c, 'timeout', 'too-slow', tooSlowDetail(speed, slow)) : undefined),
      )
    : undefined;
  try {
    for (let n = 0; ; n++) {
      c = {
        req,
        client,
        url,
        t0,
        signal: ac.signal,
        deadline,
        got: 0,
        skip: req.prefix?.length ?? 0,
        sink,
        hash: req.cid === NO_CID ? undefined : (req.prefix?.hash.copy() ?? createHash('sha256')),
        speed,
      };
      // a retry's window starts at its own response
      speed?.disarm();
      if (ac.signal.aborted) throw asFetchError(c, ac.signal.reason, false);
      // every byte is in place already: only the hash of the kept prefix is left to check
      if (c.skip === req.length) {
        c.got = c.skip;
        return verify(c);
      }
      try {
        return req.edgeKind === 'portal' ? await fromPortal(c, n > 0) : await fromMirror(c, n > 0);
      } catch (err) {
        const e = asFetchError(c, err, c.firstByteMs !== undefined);
        if (!TRANSIENT_FAULTS.has(e.fault) || n >= FETCH_TRANSIENT_RETRIES || ac.signal.aborted) throw e;
        const wait = backoffMs(n + 1);
        if (performance.now() - t0 + wait >= req.timeoutMs) throw e;
        await backoffUnlessAborted(wait, ac.signal);
      }
    }
  } finally {
    clearTimeout(timer);
    unwatch?.();
    req.signal?.removeEventListener('abort', onAbort);
  }
}
