/**
 * Every failure Portal raises is a PortalError with a literal `code`, so callers can narrow on it
 * (`err.code === 'PORTAL_MANIFEST_INVALID'`) instead of matching message text.
 */
export type PortalErrorCode =
  | 'PORTAL_INVALID_ARGUMENT'
  | 'PORTAL_MANIFEST_INVALID'
  | 'PORTAL_MANIFEST_TOO_LARGE'
  | 'PORTAL_MANIFEST_MISMATCH'
  | 'PORTAL_CHUNK_CORRUPT'
  | 'PORTAL_CHUNK_SIZE'
  | 'PORTAL_EDGE_HTTP'
  | 'PORTAL_EDGE_UNREACHABLE'
  | 'PORTAL_EDGE_TIMEOUT'
  | 'PORTAL_UNKNOWN_EDGE'
  | 'PORTAL_UNKNOWN_CHUNK'
  | 'PORTAL_UNKNOWN_ACTOR_TYPE'
  | 'PORTAL_UNKNOWN_ACTOR_METHOD'
  | 'PORTAL_ACTOR_DEACTIVATED'
  | 'PORTAL_HOST_STOPPED'
  | 'PORTAL_HOST_UNAVAILABLE'
  | 'PORTAL_STATE_CORRUPT'
  | 'PORTAL_TRANSFER_FAILED'
  | 'PORTAL_VERIFY_FAILED'
  | 'PORTAL_CANCELLED'
  | 'PORTAL_CONFIG_INVALID'
  | 'PORTAL_ACTOR_TIMEOUT'
  | 'PORTAL_STORE_CLOSED'
  | 'PORTAL_WIRE_MALFORMED'
  | 'PORTAL_WIRE_VERSION'
  | 'PORTAL_WIRE_TOO_LARGE'
  | 'PORTAL_WIRE_UNKNOWN_SUBJECT'
  | 'PORTAL_BUS_UNAVAILABLE'
  | 'PORTAL_DELIVERY_EXHAUSTED'
  | 'PORTAL_PEER_LOST'
  /** An output path a fetch refuses: an unrelated file, a link, a missing or non-folder parent. */
  | 'PORTAL_OUTPUT_REFUSED'
  /** Another process holds the output's lock (`<output>.portal/lock`). */
  | 'PORTAL_OUTPUT_LOCKED'
  /** Another `portal serve` holds the lock of this `--state-dir` (`<dir>/serve.lock`). */
  | 'PORTAL_STATE_LOCKED'
  /** An output that resolves outside the configured output root (links resolved first). */
  | 'PORTAL_OUTPUT_OUTSIDE_ROOT'
  /** The output's file system is full (ENOSPC / EDQUOT). */
  | 'PORTAL_NO_SPACE'
  /** A call to an HTTP API without the right token. */
  | 'PORTAL_UNAUTHORIZED'
  /** A request a web page made to a loopback server (DNS rebinding or a cross-site POST; common/browser-guard.ts). */
  | 'PORTAL_CROSS_SITE_REFUSED'
  /** An actor method that exists but is not callable from outside the host (finish, persist, …). */
  | 'PORTAL_ACTOR_METHOD_FORBIDDEN'
  /** A request body over the API's limit. */
  | 'PORTAL_BODY_TOO_LARGE'
  /** SchedulerActor: no transfer with this id (never started, its start failed, or forgotten). */
  | 'PORTAL_UNKNOWN_TRANSFER'
  /** SchedulerActor: the transfer's state does not allow the call (restart of a running or done transfer). */
  | 'PORTAL_TRANSFER_CONFLICT'
  /**
   * A done transfer's output was removed (410) or modified (409) after it was verified: a content read refuses to
   * serve it (a start of the same request fetches it again).
   */
  | 'PORTAL_OUTPUT_CHANGED'
  /** SchedulerActor.start/restart: every running slot and every queue place of this host is taken (`serve --max-queued`). */
  | 'PORTAL_OVERLOADED'
  | GpuErrorCode
  | StreamErrorCode
  | DashboardErrorCode
  /** Not a PortalError: what the CLI and the HTTP surfaces report for any other failure (a bug). */
  | 'PORTAL_INTERNAL';

/** One problem of a request body, found by schema validation: where (a JSON Pointer into the body) and what. */
export interface FieldProblem {
  /** JSON Pointer (RFC 6901) of the offending value, '' for the body itself, e.g. `/edges/0/config/url`. */
  readonly path: string;
  /** What was expected there, for people. */
  readonly message: string;
}

/** Codes of the GPU layer (gpu/, engine/). */
export type GpuErrorCode =
  /** No WebGPU adapter (no Vulkan driver, Dawn missing, or the adapter refused a device). */
  | 'PORTAL_GPU_UNAVAILABLE'
  /** The device was lost (driver reset, `destroy()`, out of memory) before or during the work. */
  | 'PORTAL_GPU_DEVICE_LOST'
  /** Dawn rejected a shader, pipeline, bind group or command (a bug in this layer, not in the data). */
  | 'PORTAL_GPU_VALIDATION'
  /** A transfer does not fit the device even after partitioning. */
  | 'PORTAL_GPU_TOO_LARGE';

/** Codes of the stream processor (stream/). */
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

/** Codes the dashboard raises itself (argument errors are PORTAL_INVALID_ARGUMENT). */
export type DashboardErrorCode = 'PORTAL_DASHBOARD_LISTEN_FAILED' | 'PORTAL_DASHBOARD_STATUS_TIMEOUT';

/**
 * The one base of every error Portal raises, in every area: a stable literal `code`, a message that
 * names what was wrong, an optional cause. Subclass it only to add fields. common/error-table.ts maps
 * each code to a CLI exit code and an HTTP status.
 */
export class PortalError extends Error {
  readonly code: PortalErrorCode;
  /** Every problem of a rejected request body, when schema validation found them (all at once, not the first). */
  readonly fields?: readonly FieldProblem[];
  constructor(
    code: PortalErrorCode,
    message: string,
    options?: { cause?: unknown; fields?: readonly FieldProblem[] },
  ) {
    super(message, options);
    this.name = 'PortalError';
    this.code = code;
    if (options?.fields) this.fields = options.fields;
  }
}

/** True when `err` is a PortalError (of any area), optionally with the given code. */
export function isPortalError(err: unknown, code?: PortalErrorCode): err is PortalError {
  return err instanceof PortalError && (code === undefined || err.code === code);
}

/** Throws PORTAL_INVALID_ARGUMENT naming `name` unless `ok` holds. */
export function checkArg(ok: boolean, name: string, expectation: string): asserts ok {
  if (!ok) throw new PortalError('PORTAL_INVALID_ARGUMENT', `${name}: expected ${expectation}`);
}

/** The code to report for `err`: its own when it is a PortalError, else PORTAL_INTERNAL. */
export function codeOf(err: unknown): PortalErrorCode {
  return isPortalError(err) ? err.code : 'PORTAL_INTERNAL';
}
