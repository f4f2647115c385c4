import { createHash } from 'node:crypto';

/** Name of the JetStream stream that keeps dispatch batches and chunk reports. */
export const TRANSFERS_STREAM = 'PORTAL_TRANSFERS';
/** Name of the JetStream stream that keeps the learned coordinator's traffic: peer tasks, results, submissions, outcomes. */
export const COORD_STREAM = 'PORTAL_COORD';
/** Name of the JetStream stream that keeps dead letters. */
export const DEAD_LETTER_STREAM = 'PORTAL_DEADLETTER';

/** A consumer name for `prefix` + `subject`: NATS names allow no `.`, `*`, `>` or whitespace. */
export function durableName(prefix: string, subject: string): string {
  const clean = (s: string): string =>
    s
      .replace(/\*/g, 'ANY')
      .replace(/>/g, 'ALL')
      .replace(/[^A-Za-z0-9_-]/g, '_');
  const name = `${clean(prefix)}__${clean(subject)}`;
  return name.length <= 120
    ? name
    : `${name.slice(0, 80)}__${createHash('sha256').update(`${prefix}\u0000${subject}`).digest('hex').slice(0, 32)}`;
}
