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
  | 'PORTAL_PEER_LOST';

/** Base class of all Portal errors: a stable `code`, a message that names what was wrong, an optional cause. */
export class PortalError extends Error {
  readonly code: PortalErrorCode;
  constructor(code: PortalErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PortalError';
    this.code = code;
  }
}

/** True when `err` is a PortalError, optionally with the given code. */
export function isPortalError(err: unknown, code?: PortalErrorCode): err is PortalError {
  return err instanceof PortalError && (code === undefined || err.code === code);
}

/** Throws PORTAL_INVALID_ARGUMENT naming `name` unless `ok` holds. */
export function checkArg(ok: boolean, name: string, expectation: string): asserts ok {
  if (!ok) throw new PortalError('PORTAL_INVALID_ARGUMENT', `${name}: expected ${expectation}`);
}
