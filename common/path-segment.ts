import { PortalError } from './errors.js';

/**
 * Decodes one %-encoded segment of a request path (`decodeURIComponent`). A malformed escape (`%E0%A4%A`, `%zz`)
 * is the caller's mistake, not the server's: it throws PortalError `PORTAL_INVALID_ARGUMENT` (HTTP 400) naming
 * `what` (e.g. "actor id") and the segment as sent (JSON-quoted, cut to 200 characters).
 */
export function decodePathSegment(what: string, raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch (cause) {
    const shown = raw.length > 200 ? `${raw.slice(0, 200)}…` : raw;
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `${what} ${JSON.stringify(shown)}: malformed %-escape in the path`,
      { cause },
    );
  }
}
