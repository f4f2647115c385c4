import { PortalError } from '../common/errors.js';
import { WIRE_ESCAPE } from '../common/wire-escape.js';
import {
  MAX_ACTOR_ID_BYTES,
  actorIdBytes,
  decodeActorId,
  decodeWireName,
  encodeWireName,
} from '../common/actor-id-wire.js';

export {
  MAX_ACTOR_ID_BYTES,
  actorIdBytes,
  decodeActorId,
  decodeWireName,
  encodeWireName,
  splitIdHint,
  transferIdOfPathSegment,
} from '../common/actor-id-wire.js';

/** Separator of the Dapr key layout `${actorType}||${actorId}||${key}`. */
export const KEY_SEPARATOR = '||';

/** State key (per actor) under which the host keeps that actor's durable reminders. */
export const REMINDERS_KEY = '__reminders';

/**
 * The actor's key prefix in the store, `${actorType}||${wireId}||` with the id in its wire form (encodeActorId);
 * every key of that actor starts with it, and no other actor's key does.
 */
export function actorKeyPrefix(actorType: string, actorId: string): string {
  return actorType + KEY_SEPARATOR + encodeActorId(actorId) + KEY_SEPARATOR;
}

/** A store key split into its actor part and the actor-local part. */
export interface ParsedStateKey {
  readonly actorType: string;
  /** The id part as stored: the wire form of the actor id for keys the hosts wrote (decodeActorId reverses it). */
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

/** A UTF-16 surrogate without its pair: such a string has no UTF-8 form, so it cannot travel or be stored. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Actor type names: plain identifiers (class names), so that they need no encoding anywhere. */
const TYPE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** What MAX_ACTOR_ID_BYTES means and why, for the messages that name it. */
const ID_LIMIT_WHY = `(${MAX_ACTOR_ID_BYTES} ASCII characters, ${Math.floor(MAX_ACTOR_ID_BYTES / 3)} of three bytes such as "€": ids travel on the bus, whose messages and subjects carry no longer one)`;

/**
 * The one rule for actor ids on every host: any well-formed string of 1 to MAX_ACTOR_ID_BYTES bytes of UTF-8 is its
 * own actor. Throws PORTAL_INVALID_ARGUMENT for anything else (not a string, empty, too long — the message names the
 * limit and the id's size —, a lone surrogate, which has no UTF-8 form).
 */
export function checkActorId(value: unknown, name = 'actorId'): asserts value is string {
  const problem = actorIdProblem(value);
  if (problem !== undefined) throw new PortalError('PORTAL_INVALID_ARGUMENT', `${name}: ${problem}`);
}

/**
 * What is wrong with `value` as an actor id, in a phrase (`expected …, got …`) the caller prefixes with where it
 * came from (a field, a CLI flag); undefined when it is one. checkActorId's rule, for callers with their own error
 * code (the CLI's PORTAL_CONFIG_INVALID).
 */
export function actorIdProblem(value: unknown): string | undefined {
  // (a string longer than the limit in UTF-16 units is longer in UTF-8 bytes too: not measured)
  if (
    typeof value === 'string' &&
    value.length > 0 &&
    value.length <= MAX_ACTOR_ID_BYTES &&
    !LONE_SURROGATE.test(value) &&
    actorIdBytes(value) <= MAX_ACTOR_ID_BYTES
  )
    return undefined;
  const got =
    typeof value !== 'string'
      ? typeof value
      : `${JSON.stringify(value.slice(0, 80))}${value.length > 80 ? '…' : ''} (${value.length} characters, ${actorIdBytes(value)} bytes of UTF-8)`;
  return `expected a well-formed string of 1 to ${MAX_ACTOR_ID_BYTES} bytes of UTF-8 ${ID_LIMIT_WHY}, got ${got}`;
}

/** Throws PORTAL_INVALID_ARGUMENT unless `value` is an actor type name: a letter or `_`, then letters, digits, `_`. */
export function checkActorType(value: unknown, name = 'actorType'): asserts value is string {
  if (typeof value !== 'string' || !TYPE_NAME.test(value) || value.length > 256) {
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `${name}: expected an identifier ([A-Za-z_][A-Za-z0-9_]*), got ${JSON.stringify(value)}`,
    );
  }
}

/**
 * The wire form of an actor id (encodeWireName after checkActorId). Every host keys activations, state and
 * reminders by it, and the Dapr path routes by it: `x|` and `x` cannot read each other's keys, `%41` is not `A`,
 * `a%2Fb` is not `a/b`, and `.`/`..` are not path steps.
 */
export function encodeActorId(id: string): string {
  checkActorId(id);
  return encodeWireName(id);
}

/**
 * The PORTAL_INVALID_ARGUMENT error for an actor id `wire` (a path segment, percent-decoded; `sent` the segment as
 * it came, when it differs) that is not in the wire form (decodeActorId gave undefined), saying what is wrong in
 * the user's terms: its size against MAX_ACTOR_ID_BYTES when it is an id's wire form but too long; else which
 * characters an id may have as it is, which ones it has besides, and the form to send instead (`~` and the base64url of the id's UTF-8, which encodeActorId and createDaprActorClient produce).
 * Percent-encoding does not carry such an id: daprd decodes the path before routing, so `a%2Fb` reaches it as
 * two segments (it answers "actor method not found"), and both Portal hosts refuse it the same way.
 */
export function notWireIdError(wire: string, sent?: string): PortalError {
  const quoted = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
  const as = sent !== undefined && sent !== wire ? ` (sent as ${quoted(sent)})` : '';
  const rule =
    'an actor id goes into the URL as it is only when it has nothing but letters, digits, "_", "-" and "." (not first)';
  const decoded = decodeWireName(wire);
  if (decoded !== undefined)
    // in the wire form, and too long
    return new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `actor id ${quoted(wire)}${as} is refused: ${decoded === wire ? 'it has' : 'it is the wire form of an id of'} ${actorIdBytes(decoded)} bytes of UTF-8, and ${MAX_ACTOR_ID_BYTES} bytes are the most an id may have ${ID_LIMIT_WHY}`,
    );
  let what: string;
  if (wire.startsWith(WIRE_ESCAPE) && /^[A-Za-z0-9_-]+$/.test(wire.slice(1)))
    what = `"${WIRE_ESCAPE}" begins an encoded id, and ${quoted(wire.slice(1))} is not the base64url (unpadded) of the UTF-8 of an id that needs encoding (a plain id in disguise is not)`;
  else {
    const others = [...new Set([...wire].filter((c) => !/[A-Za-z0-9._-]/.test(c)))];
    const named = others.slice(0, 6).map((c) => JSON.stringify(c));
    what =
      others.length > 0
        ? `it has ${named.join(', ')}${others.length > 6 ? ` and ${others.length - 6} more` : ''}, which ${others.length === 1 ? 'is' : 'are'} not among them`
        : `it begins with "."`;
  }
  let send = '';
  try {
    send = `; send this id as ${quoted(encodeActorId(wire))}`;
  } catch {
    /* not an id at all (too long, a lone surrogate): nothing to suggest */
  }
  return new PortalError(
    'PORTAL_INVALID_ARGUMENT',
    `actor id ${quoted(wire)}${as} is refused: ${rule}; ${what}. Any other id is sent as "${WIRE_ESCAPE}" followed by the base64url of its UTF-8 bytes (encodeActorId in runtime/state-keys.ts; createDaprActorClient does it)${send}. Percent-encoding is not enough: daprd decodes the path before it routes it (an encoded "/" becomes a separator)`,
  );
}

/**
 * The actor id of a call daprd forwards to the app, from the id's path segment as it arrived (`raw`: not
 * percent-decoded). daprd has already decoded the segment the client sent once and forwards it as it is, so the
 * segment is the wire form itself (encodeActorId: a wire form has no character a URL escapes). Decoding it again,
 * as Express's route parameter does, made `%2541` (sent) reach actor `A` and `%2554-9` reach `T-9`, ids the
 * embedded actor API refuses. Throws notWireIdError (PORTAL_INVALID_ARGUMENT) for anything that is not a wire form,
 * as the embedded actor API does for the same segment once decoded.
 */
export function actorIdOfDaprSegment(raw: string): string {
  const id = decodeActorId(raw);
  if (id === undefined) throw notWireIdError(raw);
  return id;
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
