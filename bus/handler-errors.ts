import { isPortalError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';

/**
 * Logs a bus handler that failed on `subject`: at debug when the actor host behind it has stopped
 * (PORTAL_HOST_STOPPED: a fetch that ended or a serve shutting down while messages still arrive — left
 * unacknowledged for the bus to deliver again by design, nothing lost), at error otherwise.
 */
export function logHandlerError(log: Logger, err: unknown, subject: string): void {
  if (isPortalError(err, 'PORTAL_HOST_STOPPED'))
    log.debug({ err, subject }, 'bus handler failed: the host has stopped');
  else log.error({ err, subject }, 'bus handler failed');
}
