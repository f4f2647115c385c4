import type { PortalErrorCode } from './errors.js';

/**
 * The `portal` command's exit codes (README "The CLI"): 0 ok, 1 the job ran but its result is wrong,
 * 2 bad usage or configuration (including a missing prerequisite such as a GPU adapter), 3 the
 * transfer failed or could not be verified, 4 any other error.
 */
export type ExitCode = 0 | 1 | 2 | 3 | 4;

/** What one error code means outside the process: the CLI's exit code and an HTTP surface's status. */
export interface ErrorDisposition {
  exit: ExitCode;
  /** HTTP status (RFC 9110 §15) an HTTP surface answers with when a call fails with this code. */
  http: number;
}

/**
 * The one table from error code to CLI exit code and HTTP status, used by cli/main.ts and by every HTTP
 * surface (the embedded actor API, the Dapr host, the dashboard) instead of mappings of their own.
 * 4xx: the caller's request was wrong or names something that does not exist; 502/504: an upstream (an
 * edge) failed or timed out; 503: a dependency (bus, GPU, store, host) is unavailable now; 500: the rest.
 */
export const errorTable: Readonly<Record<PortalErrorCode, ErrorDisposition>> = {
  PORTAL_INVALID_ARGUMENT: { exit: 2, http: 400 },
  PORTAL_CONFIG_INVALID: { exit: 2, http: 500 },
  PORTAL_MANIFEST_INVALID: { exit: 2, http: 400 },
  PORTAL_MANIFEST_TOO_LARGE: { exit: 2, http: 413 },
  PORTAL_MANIFEST_MISMATCH: { exit: 4, http: 409 },
  PORTAL_CHUNK_CORRUPT: { exit: 4, http: 502 },
  PORTAL_CHUNK_SIZE: { exit: 4, http: 502 },
  PORTAL_EDGE_HTTP: { exit: 4, http: 502 },
  PORTAL_EDGE_UNREACHABLE: { exit: 4, http: 502 },
  PORTAL_EDGE_TIMEOUT: { exit: 4, http: 504 },
  PORTAL_UNKNOWN_EDGE: { exit: 4, http: 404 },
  PORTAL_UNKNOWN_CHUNK: { exit: 4, http: 404 },
  PORTAL_UNKNOWN_ACTOR_TYPE: { exit: 4, http: 404 },
  PORTAL_UNKNOWN_ACTOR_METHOD: { exit: 4, http: 404 },
  PORTAL_ACTOR_DEACTIVATED: { exit: 4, http: 503 },
  PORTAL_ACTOR_TIMEOUT: { exit: 4, http: 504 },
  PORTAL_HOST_STOPPED: { exit: 4, http: 503 },
  PORTAL_HOST_UNAVAILABLE: { exit: 4, http: 503 },
  PORTAL_STATE_CORRUPT: { exit: 4, http: 500 },
  PORTAL_STORE_CLOSED: { exit: 4, http: 503 },
  PORTAL_TRANSFER_FAILED: { exit: 3, http: 500 },
  PORTAL_VERIFY_FAILED: { exit: 3, http: 500 },
  PORTAL_CANCELLED: { exit: 4, http: 409 },
  PORTAL_WIRE_MALFORMED: { exit: 4, http: 400 },
  PORTAL_WIRE_VERSION: { exit: 4, http: 400 },
  PORTAL_WIRE_TOO_LARGE: { exit: 4, http: 413 },
  PORTAL_WIRE_UNKNOWN_SUBJECT: { exit: 4, http: 400 },
  PORTAL_BUS_UNAVAILABLE: { exit: 4, http: 503 },
  PORTAL_DELIVERY_EXHAUSTED: { exit: 4, http: 500 },
  PORTAL_PEER_LOST: { exit: 4, http: 503 },
  PORTAL_OUTPUT_REFUSED: { exit: 2, http: 409 },
  PORTAL_OUTPUT_LOCKED: { exit: 2, http: 409 },
  PORTAL_STATE_LOCKED: { exit: 2, http: 409 },
  PORTAL_OUTPUT_OUTSIDE_ROOT: { exit: 2, http: 403 },
  PORTAL_NO_SPACE: { exit: 3, http: 507 },
  PORTAL_UNAUTHORIZED: { exit: 2, http: 401 },
  PORTAL_CROSS_SITE_REFUSED: { exit: 2, http: 403 },
  PORTAL_ACTOR_METHOD_FORBIDDEN: { exit: 4, http: 403 },
  PORTAL_BODY_TOO_LARGE: { exit: 4, http: 413 },
  PORTAL_UNKNOWN_TRANSFER: { exit: 4, http: 404 },
  PORTAL_TRANSFER_CONFLICT: { exit: 4, http: 409 },
  PORTAL_OUTPUT_CHANGED: { exit: 3, http: 409 },
  PORTAL_OVERLOADED: { exit: 4, http: 503 },
  PORTAL_GPU_UNAVAILABLE: { exit: 2, http: 503 },
  PORTAL_GPU_DEVICE_LOST: { exit: 4, http: 503 },
  PORTAL_GPU_VALIDATION: { exit: 4, http: 500 },
  PORTAL_GPU_TOO_LARGE: { exit: 4, http: 413 },
  PORTAL_STREAM_KERNEL_FAILED: { exit: 4, http: 500 },
  PORTAL_STREAM_ALLOCATION_FAILED: { exit: 4, http: 503 },
  PORTAL_STREAM_BAD_RECORDS: { exit: 4, http: 400 },
  PORTAL_STREAM_BAD_LAYOUT: { exit: 2, http: 400 },
  PORTAL_STREAM_KERNEL_UNAVAILABLE: { exit: 4, http: 503 },
  PORTAL_STREAM_PUBLISH_FAILED: { exit: 4, http: 503 },
  PORTAL_STREAM_STOPPED: { exit: 4, http: 503 },
  PORTAL_DASHBOARD_LISTEN_FAILED: { exit: 4, http: 500 },
  PORTAL_DASHBOARD_STATUS_TIMEOUT: { exit: 4, http: 504 },
  PORTAL_INTERNAL: { exit: 4, http: 500 },
};

/** The CLI exit code for a failure with `code` (errorTable). */
export function exitCodeFor(code: PortalErrorCode): ExitCode {
  return errorTable[code].exit;
}

/** The HTTP status an HTTP surface answers with for a failure with `code` (errorTable). */
export function httpStatusFor(code: PortalErrorCode): number {
  return errorTable[code].http;
}

/** True when `code` is one of PortalErrorCode's literals (e.g. a code that arrived over the wire). */
export function isPortalErrorCode(code: unknown): code is PortalErrorCode {
  return typeof code === 'string' && Object.hasOwn(errorTable, code);
}
