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

/** Details a ChunkFetchError carries besides its reason. */
export interface ChunkFetchErrorInfo {
  edgeUrl: string;
  /** HTTP status when the edge answered with an unexpected one. */
  status?: number;
  /** Milliseconds from request sent to first byte, when a response arrived. */
  firstByteMs?: number;
  /** Milliseconds from request sent to the failure. */
  elapsedMs: number;
  cause?: unknown;
}

/** A failed chunk fetch: `reason` is the bus FailureReason, `detail` a human sentence; the code follows the reason (timeout → PORTAL_EDGE_TIMEOUT, …). */
export class ChunkFetchError extends PortalError {
  readonly reason: FailureReason;
  readonly detail: string;
  readonly edgeUrl: string;
  readonly status?: number;
  readonly firstByteMs?: number;
  readonly elapsedMs: number;
  constructor(reason: FailureReason, detail: string, info: ChunkFetchErrorInfo) {
    super(
      CODE_BY_REASON[reason],
      `chunk fetch from ${info.edgeUrl} failed (${reason}): ${detail}`,
      info.cause === undefined ? undefined : { cause: info.cause },
    );
    this.name = 'ChunkFetchError';
    this.reason = reason;
    this.detail = detail;
    this.edgeUrl = info.edgeUrl;
    this.status = info.status;
    this.firstByteMs = info.firstByteMs;
    this.elapsedMs = info.elapsedMs;
  }
}

/** True when `err` is a ChunkFetchError, optionally with the given reason; never throws. */
export function isChunkFetchError(err: unknown, reason?: FailureReason): err is ChunkFetchError {
  return err instanceof ChunkFetchError && (reason === undefined || err.reason === reason);
}
