import { PortalError } from './errors.js';
import { WIRE_ESCAPE, escapeName, unescapeName } from './wire-escape.js';

/**
 * The wire form of actor ids (and of the other names the hosts carry), and the two path helpers of the HTTP routes
 * that take a transfer id: in common/ because the actor hosts (runtime/) and the content server (transfer/) both
 * read ids off paths. runtime/state-keys.ts builds encodeActorId / decodeActorId on these and re-exports them.
 */

/**
 * Longest actor id accepted, in bytes of its UTF-8: 256 ASCII characters, 85 of three bytes (such as `€`), 64 of
 * four. The ids go onto the bus: the wire format (bus/codec.ts) refuses a transfer, edge or task id over 256
 * characters, and a NATS server drops a connection whose protocol line (subject included) exceeds max_control_line
 * (4096 bytes by default). The old bound, 1024 characters, let ids through that ran on the in-process bus but whose
 * every dispatch over NATS was dead-lettered (PORTAL_WIRE_MALFORMED) and whose cancel failed (PORTAL_WIRE_TOO_LARGE);
 * 1024 three-byte characters made a 4097-character subject token. In bytes, so that the bound holds for the wire
 * form too: at most 1 + 4/3 of them, 343 characters, well inside a subject.
 */
export const MAX_ACTOR_ID_BYTES = 256;

/** The longest wire form of an id of MAX_ACTOR_ID_BYTES: `~` and the unpadded base64url of that many bytes. */
const MAX_WIRE_LENGTH = 1 + Math.ceil((MAX_ACTOR_ID_BYTES * 4) / 3);

/** Bytes of the UTF-8 of `id` (a lone surrogate counts as the 3 of U+FFFD; checkActorId refuses it anyway). */
export function actorIdBytes(id: string): number {
  return Buffer.byteLength(id, 'utf8');
}

/**
 * Characters an actor id (or Dapr timer/reminder name) keeps as it is on the wire and in store keys. Everything
 * else is carried base64url-encoded behind WIRE_ESCAPE (see encodeActorId). These are RFC 3986 "unreserved"
 * characters minus `~`, so a plain id means the same thing in a URL path segment, after any number of percent
 * decodings, in a Redis key and in a file name.
 */
export const PLAIN_ACTOR_ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/**
 * The wire form of a name (actor id, Dapr timer/reminder name or state key): the name itself when it is plain
 * (letters, digits, `_`, `-`, and `.` after the first character), else `~` followed by the base64url of its
 * UTF-8 bytes. The map is injective (two names never share a wire form) and its output needs no escaping in a
 * URL path segment, a Redis key or the `||` key layout.
 */
export function encodeWireName(name: string): string {
  return escapeName(name, PLAIN_ACTOR_ID);
}

/** The name whose wire form is `wire` (inverse of encodeWireName); undefined when `wire` is not a wire form. */
export function decodeWireName(wire: string): string | undefined {
  return unescapeName(wire, PLAIN_ACTOR_ID);
}

/** The actor id whose wire form is `wire` (inverse of encodeActorId); undefined when `wire` is not one. */
export function decodeActorId(wire: string): string | undefined {
  if (wire.length > MAX_WIRE_LENGTH) return undefined;
  const id = decodeWireName(wire);
  return id !== undefined && actorIdBytes(id) <= MAX_ACTOR_ID_BYTES ? id : undefined;
}

/**
 * The transfer id one segment of a `/v1/transfers/<id>/…` path names (`decoded`: the segment, percent-decoded): the
 * id whose wire form it is (decodeActorId: a plain id as it is, any other as `~` and the base64url of its UTF-8, the
 * form the actor API takes), else the segment itself (an id percent-encoded, as encodeURIComponent writes it). So
 * both forms reach the same transfer. A segment that begins with `~` is always read as a wire form, as the actor
 * API reads it: one that is not the canonical wire form of an id (`~dDk` is `t9`, which is sent as it is; `~abc`
 * decodes to no id that needs encoding) throws PORTAL_INVALID_ARGUMENT saying which form to send, not a 404 for
 * an "unknown" id; an id that itself begins with `~` is sent in its own wire form (`~fmFiYw` for `~abc`).
 */
export function transferIdOfPathSegment(decoded: string): string {
  const id = decodeActorId(decoded);
  if (id !== undefined) return id;
  if (decoded.startsWith(WIRE_ESCAPE)) {
    const body = decoded.slice(1);
    const quoted = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
    const inner = /^[A-Za-z0-9_-]+$/.test(body) ? Buffer.from(body, 'base64url').toString('utf8') : '';
    // the exact base64url of real UTF-8 (not a padding variant, not bytes that are no UTF-8)
    const isUtf8 = inner !== '' && Buffer.from(inner, 'utf8').toString('base64url') === body;
    const why = !isUtf8
      ? `${quoted(body)} is not the base64url (unpadded) of the UTF-8 of an id`
      : encodeWireName(inner) !== decoded
        ? `it encodes ${quoted(inner)}, a plain id, which is sent as it is: ${quoted(encodeWireName(inner))}`
        : `it is the wire form of an id of ${actorIdBytes(inner)} bytes of UTF-8, and ${MAX_ACTOR_ID_BYTES} bytes are the most an id may have`;
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `transfer id ${quoted(decoded)} is refused: "${WIRE_ESCAPE}" begins an encoded id (the actor API's wire form: "${WIRE_ESCAPE}" and the base64url of the id's UTF-8, only for an id that is not plain letters, digits, "_", "-" and "."), and ${why}. An id that itself begins with "${WIRE_ESCAPE}" is sent as ${quoted(encodeWireName(decoded))}`,
    );
  }
  return decoded;
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
    return `; if ${JSON.stringify(id)} is one id, send it as ${JSON.stringify(encodeWireName(id))} ("~" and the base64url of its UTF-8: encodeActorId in runtime/state-keys.ts; createDaprActorClient does it): a "/" in an id, even %-encoded, becomes a path separator before the route is chosen`;
  } catch {
    return '';
  }
}
