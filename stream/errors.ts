/** Codes of the failures the stream processor raises (narrow on `err.code`). */
export type StreamErrorCode =
  /** The kernel rejected or crashed on a batch (WGSL validation, device lost, a CPU reference that threw). */
  | 'PORTAL_STREAM_KERNEL_FAILED'
  /** The batch's buffers could not be allocated on the device (out of memory, over a limit). */
  | 'PORTAL_STREAM_ALLOCATION_FAILED'
  /** Bytes that are not a whole number of records of the declared layout. */
  | 'PORTAL_STREAM_BAD_RECORDS'
  /** A record layout or kernel declaration that cannot be used. */
  | 'PORTAL_STREAM_BAD_LAYOUT'
  /** The kernel cannot run here (a WGSL-only kernel without an adapter and without a CPU reference). */
  | 'PORTAL_STREAM_KERNEL_UNAVAILABLE'
  /** A batch's output (or its failure report) could not be published; its records are not acknowledged. */
  | 'PORTAL_STREAM_PUBLISH_FAILED'
  /** The processor was stopped while the call waited. */
  | 'PORTAL_STREAM_STOPPED';

/** A failure of the stream layer, with a literal `code` and the underlying `cause`. */
export class StreamError extends Error {
  readonly code: StreamErrorCode;
  constructor(code: StreamErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StreamError';
    this.code = code;
  }
}

/** True when `err` is a StreamError, optionally with the given code. */
export function isStreamError(err: unknown, code?: StreamErrorCode): err is StreamError {
  return err instanceof StreamError && (code === undefined || err.code === code);
}
