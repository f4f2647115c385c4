import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import path from 'node:path';

/**
 * The transfer id of a local fetch of manifest `manifestId` into `output` on this host:
 * `<manifestId>-<12 hex digits>`, the digits being the start of the sha256 of the host name and the absolute
 * output path. Transfer ids name the bus subjects of a transfer (dispatch, reports, cancels), so two fetches
 * of one manifest on one NATS (two outputs, or two hosts) must not share one: each would take the
 * other's chunk reports for its own and finish with chunks it never wrote. The id is the same on every run
 * for one output on one host, so a rerun finds its journal. Contains no '.', as subject tokens must not.
 */
export function localTransferId(manifestId: string, output: string, host: string = hostname()): string {
  const tag = createHash('sha256')
    .update(`${host}\u0000${path.resolve(output)}`)
    .digest('hex')
    .slice(0, 12);
  return `${manifestId}-${tag}`;
}
