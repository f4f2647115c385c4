import { PortalError } from '../common/errors.js';

/** Separator of the Dapr key layout `${actorType}||${actorId}||${key}`. */
export const KEY_SEPARATOR = '||';

/** State key (per actor) under which the host keeps that actor's durable reminders. */
export const REMINDERS_KEY = '__reminders';

/** The actor's key prefix in the store, `${actorType}||${actorId}||`; every key of that actor starts with it. */
export function actorKeyPrefix(actorType: string, actorId: string): string {
  return actorType + KEY_SEPARATOR + actorId + KEY_SEPARATOR;
}

/** A store key split into its actor part and the actor-local part. */
export interface ParsedStateKey {
  readonly actorType: string;
  readonly actorId: string;
  /** `${actorType}||${actorId}||` */
  readonly prefix: string;
  readonly key: string;
}

/**
 * Splits `${actorType}||${actorId}||${key}` at its first two separators; returns undefined when the key does
 * not follow the layout (fewer than two separators, empty type or id).
 */
export function parseStateKey(fullKey: string): ParsedStateKey | undefined {
  const a = fullKey.indexOf(KEY_SEPARATOR);
  if (a <= 0) return undefined;
  const b = fullKey.indexOf(KEY_SEPARATOR, a + KEY_SEPARATOR.length);
  if (b < 0 || b === a + KEY_SEPARATOR.length) return undefined;
  const end = b + KEY_SEPARATOR.length;
  return {
    actorType: fullKey.slice(0, a),
    actorId: fullKey.slice(a + KEY_SEPARATOR.length, b),
    prefix: fullKey.slice(0, end),
    key: fullKey.slice(end),
  };
}

/** Throws PORTAL_INVALID_ARGUMENT unless `value` is a non-empty string without the `||` separator. */
export function checkKeyPart(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string' || value.length === 0 || value.includes(KEY_SEPARATOR)) {
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `${name}: expected a non-empty string without "${KEY_SEPARATOR}", got ${JSON.stringify(value)}`,
    );
  }
}
