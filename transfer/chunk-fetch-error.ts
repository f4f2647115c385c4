import { PortalError, type PortalErrorCode } from '../common/errors.js';
import type { FailureReason } from '../common/index.js';

const CODE_BY_REASON: Record<FailureReason, PortalErrorCode> = {
  timeout: 'PORTAL_EDGE_TIMEOUT',
  http: 'PORTAL_EDGE_HTTP',
  busy: 'PORTAL_EDGE_HTTP',
  unreachable: 'PORTAL_EDGE_UNREACHABLE',
  corrupt: 'PORTAL_CHUNK_CORRUPT',
  short: 'PORTAL_CHUNK_SIZE',
  cancelled: 'PORTAL_CANCELLED',
  io: 'PORTAL_TRANSFER_FAILED',
};

/**
 * What went wrong with a source, finer than the scheduler's FailureReason, for messages and retries:
 * `reset` (connection closed mid-request), `stalled` (no byte for the stall timeout), `too-slow` (bytes arrive,
 * but under the lowest-speed limit for its window: not retried on the same source), `short-body`,
 * `refused`, `dns`, `connect-timeout`, `proxy` (the HTTP proxy the request went through failed it: refused,
 * 407, a CONNECT answered with another status than 200), `tls` (certificate or handshake), `http-status` (4xx), `busy`
 * (5xx/429), `redirect` (loop, too many, no Location), `range-ignored`, `html` (an HTML page instead of
 * the file), `content-encoding` (a compressed body though identity was asked), `content-range`, `size-changed`
 * (the mirror's file is no longer the size the transfer started with: see sizeChangedDetail), `version-changed` (it
 * answered 200 to a Range with If-Range, or a 206 with another validator: another version of the file, see
 * versionChangedDetail), `version-unknown` (a 206 without the validator it gave at the probe: see
 * versionUnknownDetail), `corrupt`,
 * `deadline`, `cancelled`, `io`, `other`.
 */
export type SourceFault =
  | 'reset'
  | 'stalled'
  | 'too-slow'
  | 'short-body'
  | 'refused'
  | 'dns'
  | 'connect-timeout'
  | 'proxy'
  | 'tls'
  | 'http-status'
  | 'busy'
  | 'redirect'
  | 'range-ignored'
  | 'html'
  | 'content-encoding'
  | 'content-range'
  | 'size-changed'
  | 'version-changed'
  | 'version-unknown'
  | 'corrupt'
  | 'deadline'
  | 'cancelled'
  | 'io'
  | 'other';

const SIZE_CHANGED = 'the file changed size: ';

/**
 * The detail of a `size-changed` fault: `the file changed size: the mirror now serves 1200000 bytes (Content-Range
 * bytes 0-65535/1200000), the transfer started with 1000000`. The scheduler gives such a source up at once
 * (isSizeChanged): every byte it serves now belongs to another file. Only the detail travels in a chunk report,
 * so this prefix is the contract between the two.
 */
export function sizeChangedDetail(served: number, expected: number, header: string): string {
  return `${SIZE_CHANGED}the mirror now serves ${served} bytes (${header}), the transfer started with ${expected}`;
}

/** True when a chunk report's detail is a sizeChangedDetail. */
export function isSizeChanged(detail: string | undefined): boolean {
  return detail?.startsWith(SIZE_CHANGED) === true;
}

const VERSION_CHANGED = 'the file changed version: ';

/**
 * The detail of a `version-changed` fault: the mirror was sent a Range request with `If-Range: <validator>` (RFC 9110
 * §13.1.5), the version of the file the transfer started with, and answered either HTTP 200 (the whole file: If-Range
 * did not match) or, with `served`, HTTP 206 whose ETag (or Last-Modified, for a date validator) is another one (it
 * ignores If-Range, as many servers, caches and proxies do, and its file changed): no byte it serves now may be mixed
 * with the chunks already kept. versionChangedAnswer reads the `answered …` phrase back.
 */
export function versionChangedDetail(
  validator: string,
  served?: { field: 'ETag' | 'Last-Modified'; value: string },
): string {
  return served === undefined
    ? `${VERSION_CHANGED}the mirror answered HTTP 200 to If-Range: ${validator} (it no longer serves the version the transfer started with)`
    : `${VERSION_CHANGED}the mirror answered HTTP 206 with ${served.field} ${served.value} to If-Range: ${validator} (it ignores If-Range and no longer serves the version the transfer started with)`;
}

/** True when `text` (a source's last error, a failure message) holds a versionChangedDetail. */
export function mentionsVersionChanged(text: string | undefined): boolean {
  return text?.includes(VERSION_CHANGED) === true;
}

/**
 * The `answered HTTP 200 to If-Range: "v1"` (or `answered HTTP 206 with ETag "v2" to If-Range: "v1"`) phrase of a
 * versionChangedDetail inside `text`; undefined when `text` holds none.
 */
export function versionChangedAnswer(text: string | undefined): string | undefined {
  const at = text?.indexOf(`${VERSION_CHANGED}the mirror `) ?? -1;
  if (at < 0) return undefined;
  const rest = text!.slice(at + VERSION_CHANGED.length + 'the mirror '.length);
  const end = rest.lastIndexOf(' (it ');
  return end < 0 ? rest : rest.slice(0, end);
}

const VERSION_UNKNOWN = 'the file version cannot be told: ';

/**
 * The detail of a `version-unknown` fault: the mirror gave the validator `validator` at the probe (its `field`, ETag
 * or Last-Modified) and sent `If-Range: <validator>`, but answered a Range with a 206 without that field (RFC 9110
 * §15.3.7 requires a 206 to carry the ETag a 200 would). Nothing then tells whether its bytes are the version the
 * transfer started with, so they are not written and the source is given up (isFileChanged); unlike a
 * version-changed fault the chunks kept so far stay (they were checked against the validator), so the run does not
 * restart from zero: it goes on from the other sources, or fails naming this one.
 */
export function versionUnknownDetail(validator: string, field: 'ETag' | 'Last-Modified'): string {
  return `${VERSION_UNKNOWN}the mirror answered HTTP 206 without ${field === 'ETag' ? 'an ETag' : 'a Last-Modified'} to If-Range: ${validator} (it gave ${validator} when the transfer started; its bytes may belong to another version)`;
}

/**
 * The details transportFault gives a source that is not there at all: nothing listens on its port (ECONNREFUSED), or
 * its host name does not exist (ENOTFOUND; EAI_AGAIN, a resolver that failed for now, is not one). Only the detail
 * travels in a chunk report, so these strings are the contract between the fetch and the scheduler, which fails a
 * transfer at once when every source answered only so from its start (isDeadSourceDetail).
 */
export const REFUSED_DETAIL = 'connection refused';
export const NO_SUCH_HOST_DETAIL = 'host name not found (ENOTFOUND)';

/** True when a chunk report's detail says its source is not there at all (REFUSED_DETAIL, NO_SUCH_HOST_DETAIL). */
export function isDeadSourceDetail(detail: string | undefined): boolean {
  return detail === REFUSED_DETAIL || detail === NO_SUCH_HOST_DETAIL;
}

/**
 * True when a chunk report's detail says the source now serves another file, or bytes of an unknown version:
 * sizeChangedDetail, versionChangedDetail or versionUnknownDetail. The scheduler gives such a source up at once.
 */
export function isFileChanged(detail: string | undefined): boolean {
  return (
    isSizeChanged(detail) ||
    detail?.startsWith(VERSION_CHANGED) === true ||
    detail?.startsWith(VERSION_UNKNOWN) === true
  );
}

/** Faults worth an immediate retry on a new connection (the same request may well succeed). */
export const TRANSIENT_FAULTS: ReadonlySet<SourceFault> = new Set(['reset', 'stalled', 'short-body']);

/** Details a ChunkFetchError carries besides its reason. */
export interface ChunkFetchErrorInfo {
  edgeUrl: string;
  /** HTTP status when the edge answered with an unexpected one. */
  status?: number;
  /** Milliseconds from request sent to first byte, when a response arrived. */
  firstByteMs?: number;
  /** Milliseconds from request sent to the failure. */
  elapsedMs: number;
  /** The finer cause (default: derived from the reason). */
  fault?: SourceFault;
  /** The source asked not to be asked again for this long (Retry-After, ms). */
  retryAfterMs?: number;
  cause?: unknown;
}

const FAULT_BY_REASON: Record<FailureReason, SourceFault> = {
  timeout: 'deadline',
  http: 'http-status',
  busy: 'busy',
  unreachable: 'refused',
  corrupt: 'corrupt',
  short: 'short-body',
  cancelled: 'cancelled',
  io: 'io',
};

/**
 * A failed chunk fetch: `reason` is the bus FailureReason (what the scheduler acts on), `fault` the finer
 * cause, `detail` a human sentence; the code follows the reason (timeout → PORTAL_EDGE_TIMEOUT, …). The
 * edge URL in the message is the caller's; callers redact it before it reaches a log.
 */
export class ChunkFetchError extends PortalError {
  readonly reason: FailureReason;
  readonly fault: SourceFault;
  readonly detail: string;
  readonly edgeUrl: string;
  readonly status?: number;
  readonly firstByteMs?: number;
  readonly elapsedMs: number;
  readonly retryAfterMs?: number;
  constructor(reason: FailureReason, detail: string, info: ChunkFetchErrorInfo) {
    super(
      CODE_BY_REASON[reason],
      `chunk fetch from ${info.edgeUrl} failed (${reason}): ${detail}`,
      info.cause === undefined ? undefined : { cause: info.cause },
    );
    this.name = 'ChunkFetchError';
    this.reason = reason;
    this.fault = info.fault ?? FAULT_BY_REASON[reason];
    this.detail = detail;
    this.edgeUrl = info.edgeUrl;
    this.status = info.status;
    this.firstByteMs = info.firstByteMs;
    this.elapsedMs = info.elapsedMs;
    this.retryAfterMs = info.retryAfterMs;
  }
}

/** True when `err` is a ChunkFetchError, optionally with the given reason; never throws. */
export function isChunkFetchError(err: unknown, reason?: FailureReason): err is ChunkFetchError {
  return err instanceof ChunkFetchError && (reason === undefined || err.reason === reason);
}
