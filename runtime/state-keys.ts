import { PortalError } from '../common/errors.js';
import { WIRE_ESCAPE, escapeName, unescapeName } from '../common/wire-escape.js';

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

/**
 * Characters an actor id (or Dapr timer/reminder name) keeps as it is on the wire and in store keys. Everything
 * else is carried base64url-encoded behind WIRE_ESCAPE (see encodeActorId). These are RFC 3986 "unreserved"
 * characters minus `~`, so a plain id means the same thing in a URL path segment, after any number of percent
 * decodings, in a Redis key and in a file name.
 */
const PLAIN_ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/** Longest actor id accepted, in UTF-16 code units (its wire form is at most 4/3 of its UTF-8 bytes, plus 1). */
export const MAX_ACTOR_ID_LENGTH = 1024;

/** A UTF-16 surrogate without its pair: such a string has no UTF-8 form, so it cannot travel or be stored. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Actor type names: plain identifiers (class names), so that they need no encoding anywhere. */
const TYPE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The one rule for actor ids on every host: any well-formed string of 1 to MAX_ACTOR_ID_LENGTH characters is its
 * own actor. Throws PORTAL_INVALID_ARGUMENT for anything else (not a string, empty, too long, a lone surrogate,
 * which has no UTF-8 form).
 */
export function checkActorId(value: unknown, name = 'actorId'): asserts value is string {
  if (
    typeof value !== 'string' ||
    value.length === 0 ||
    value.length > MAX_ACTOR_ID_LENGTH ||
    LONE_SURROGATE.test(value)
  ) {
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `${name}: expected a well-formed string of 1 to ${MAX_ACTOR_ID_LENGTH} characters, got ${
        typeof value === 'string'
          ? `${JSON.stringify(value.slice(0, 80))} (${value.length} characters)`
          : typeof value
      }`,
    );
  }
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
 * The wire form of a name (actor id, Dapr timer/reminder name or state key): the name itself when it is plain
 * (letters, digits, `_`, `-`, and `.` after the first character), else `~` followed by the base64url of its
 * UTF-8 bytes. The map is injective (two names never share a wire form) and its output needs no escaping in a
 * URL path segment, a Redis key or the `||` key layout.
 */
export function encodeWireName(name: string): string {
  return escapeName(name, PLAIN_ID);
}

/** The name whose wire form is `wire` (inverse of encodeWireName); undefined when `wire` is not a wire form. */
export function decodeWireName(wire: string): string | undefined {
  return unescapeName(wire, PLAIN_ID);
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

/** The actor id whose wire form is `wire` (inverse of encodeActorId); undefined when `wire` is not one. */
export function decodeActorId(wire: string): string | undefined {
  const id = decodeWireName(wire);
  return id !== undefined && id.length <= MAX_ACTOR_ID_LENGTH ? id : undefined;
}

/**
 * The transfer id one segment of a `/v1/transfers/<id>/…` path names (`decoded`: the segment, percent-decoded): the
 * id whose wire form it is (decodeActorId: a plain id as it is, any other as `~` and the base64url of its UTF-8, the
 * form the actor API takes), else the segment itself (an id percent-encoded, as encodeURIComponent writes it). So
 * both forms reach the same transfer. The one id the second form cannot reach is one that is itself the wire form of
 * another (`~YS9i` is `a/b`); it is sent in its own wire form (`~flM5aQ`), as on the actor API.
 */
export function transferIdOfPathSegment(decoded: string): string {
  return decodeActorId(decoded) ?? decoded;
}

/**
 * For a request path no route matched: when it is an actor method call (`[/v1.0]/actors/<type>/<id>/method/<m>`) or
 * a transfer's content (`/v1/transfers/<id>/content`) whose id spans several segments (an id with "/" sent as it is,
 * or %-encoded: daprd and many proxies decode the path before they route it), a sentence that says how to send
 * that id (its wire form, encodeActorId); else ''.
 */
export function splitIdHint(path: string): string {
  const m =
    /^(?:\/v1\.0)?\/actors\/[^/]+\/(.+)\/method\/[^/]+$/.exec(path) ??
    /^\/v1\/transfers\/(.+)\/content$/.exec(path);
  if (!m || !m[1].includes('/')) return '';
  let id: string;
  try {
    id = m[1]
      .split('/')
      .map((s) => decodeURIComponent(s))
      .join('/');
    return `; if ${JSON.stringify(id)} is one id, send it as ${JSON.stringify(encodeActorId(id))} ("~" and the base64url of its UTF-8: encodeActorId in runtime/state-keys.ts; createDaprActorClient does it): a "/" in an id, even %-encoded, becomes a path separator before the route is chosen`;
  } catch {
    return '';
  }
}

/**
 * The PORTAL_INVALID_ARGUMENT error for an actor id `wire` (a path segment, percent-decoded; `sent` the segment as
 * it came, when it differs) that is not in the wire form (decodeActorId gave undefined), saying what is wrong in
 * the user's terms: which characters an id may have as it is, which ones it has besides, and the form to send
 * instead (`~` and the base64url of the id's UTF-8, which encodeActorId and createDaprActorClient produce).
 * Percent-encoding does not carry such an id: daprd decodes the path before routing, so `a%2Fb` reaches it as
 * two segments (it answers "actor method not found"), and both Portal hosts refuse it the same way.
 */
export function notWireIdError(wire: string, sent?: string): PortalError {
  const quoted = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
  const as = sent !== undefined && sent !== wire ? ` (sent as ${quoted(sent)})` : '';
  const rule =
    'an actor id goes into the URL as it is only when it has nothing but letters, digits, "_", "-" and "." (not first)';
  let what: string;
  if (PLAIN_ID.test(wire))
    what = `it is longer than ${MAX_ACTOR_ID_LENGTH} characters, the most an id may have`;
  else if (wire.startsWith(WIRE_ESCAPE) && /^[A-Za-z0-9_-]+$/.test(wire.slice(1)))
    what = `"${WIRE_ESCAPE}" begins an encoded id, and ${quoted(wire.slice(1))} is not the base64url (unpadded) of the UTF-8 of an id that needs encoding (an id longer than ${MAX_ACTOR_ID_LENGTH} characters, or a plain one in disguise, is not)`;
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

/** Throws PORTAL_INVALID_ARGUMENT unless `value` is a non-empty string without the `||` separator. */
export function checkKeyPart(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string' || value.length === 0 || value.includes(KEY_SEPARATOR)) {
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `${name}: expected a non-empty string without "${KEY_SEPARATOR}", got ${JSON.stringify(value)}`,
    );
  }
}
