import { PortalError, checkArg } from '../common/errors.js';

/**
 * Argument checks both actor hosts (embedded and Dapr) apply the same way, so that an actor sees the
 * same errors whichever host runs it.
 */

/** A state key an actor may use: non-empty, not starting with `__` (reserved for the host). */
export function checkStateKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0 || key.startsWith('__')) {
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `state key: expected a non-empty string not starting with "__", got ${JSON.stringify(key)}`,
    );
  }
}

/** The JSON text of a state value; PORTAL_INVALID_ARGUMENT when it has none (a function, undefined, a cycle). */
export function encodeStateValue(key: string, value: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw new PortalError('PORTAL_INVALID_ARGUMENT', `state value for ${key}: not JSON-serializable`, {
      cause: err,
    });
  }
  if (json === undefined) {
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `state value for ${key}: expected a JSON value (use delete() to remove a key), got ${typeof value}`,
    );
  }
  return json;
}

/** A timer/reminder duration: a finite number of milliseconds ≥ 0. */
export function checkDuration(value: unknown, name: string): asserts value is number {
  checkArg(
    typeof value === 'number' && Number.isFinite(value) && value >= 0,
    name,
    'a finite number of milliseconds >= 0',
  );
}

/** The options of registerReminder: a name, due and period durations, JSON data. */
export function checkReminder(
  name: unknown,
  r: unknown,
): asserts r is { dueMs: number; periodMs: number; data?: unknown } {
  checkArg(typeof name === 'string' && name.length > 0, 'reminder name', 'a non-empty string');
  checkArg(typeof r === 'object' && r !== null, 'reminder options', 'an object');
  const o = r as { dueMs: unknown; periodMs: unknown; data?: unknown };
  checkDuration(o.dueMs, 'reminder dueMs');
  checkDuration(o.periodMs, 'reminder periodMs');
  try {
    JSON.stringify(o.data);
  } catch (err) {
    throw new PortalError('PORTAL_INVALID_ARGUMENT', `reminder ${name}: data is not JSON-serializable`, {
      cause: err,
    });
  }
}
