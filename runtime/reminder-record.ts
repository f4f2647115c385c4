import { PortalError } from '../common/errors.js';

/** One durable reminder as stored: next due time (wall clock, ms since the epoch), period (0: one-shot), data. */
export interface ReminderRecord {
  readonly dueAt: number;
  readonly periodMs: number;
  readonly data: unknown;
}

/** Serializes an actor's reminders (name → record) to the JSON kept under its `__reminders` key. */
export function encodeReminders(reminders: ReadonlyMap<string, ReminderRecord>): string {
  const doc: Record<string, ReminderRecord> = {};
  for (const [name, r] of reminders) doc[name] = { dueAt: r.dueAt, periodMs: r.periodMs, data: r.data };
  return JSON.stringify(doc);
}

/** Parses what encodeReminders wrote; anything else throws PORTAL_STATE_CORRUPT naming `key`. */
export function decodeReminders(key: string, json: string): Map<string, ReminderRecord> {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (err) {
    throw new PortalError('PORTAL_STATE_CORRUPT', `reminders at ${key} are not JSON`, { cause: err });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new PortalError('PORTAL_STATE_CORRUPT', `reminders at ${key}: expected an object of reminders`);
  }
  const out = new Map<string, ReminderRecord>();
  for (const [name, value] of Object.entries(doc)) {
    const r = value as Partial<ReminderRecord> | null;
    if (
      typeof r !== 'object' ||
      r === null ||
      !Number.isFinite(r.dueAt) ||
      !Number.isFinite(r.periodMs) ||
      (r.periodMs as number) < 0
    ) {
      throw new PortalError(
        'PORTAL_STATE_CORRUPT',
        `reminders at ${key}: reminder ${JSON.stringify(name)} is malformed`,
      );
    }
    out.set(name, { dueAt: r.dueAt as number, periodMs: r.periodMs as number, data: r.data });
  }
  return out;
}
