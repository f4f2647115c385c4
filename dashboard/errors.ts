/** Codes of the failures the dashboard raises itself (argument errors are PortalError PORTAL_INVALID_ARGUMENT). */
export type DashboardErrorCode = 'PORTAL_DASHBOARD_LISTEN_FAILED' | 'PORTAL_DASHBOARD_STATUS_TIMEOUT';

/** A dashboard failure with a literal `code` and the underlying error as `cause`. */
export class DashboardError extends Error {
  readonly code: DashboardErrorCode;
  constructor(code: DashboardErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DashboardError';
    this.code = code;
  }
}

/** True when `err` is a DashboardError, optionally with the given code. */
export function isDashboardError(err: unknown, code?: DashboardErrorCode): err is DashboardError {
  return err instanceof DashboardError && (code === undefined || err.code === code);
}
