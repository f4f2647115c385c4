/**
 * One reversible escape for names that must travel where only some characters may (URL path segments, store
 * keys, NATS subject tokens): a name that matches the place's `plain` pattern stays as it is; any other is
 * WIRE_ESCAPE followed by the base64url (unpadded) of its UTF-8 bytes. `plain` must not admit WIRE_ESCAPE, so the
 * two forms never meet and the map is injective. runtime/state-keys.ts (actor ids, keys) and bus/types.ts
 * (subject tokens) use it with their own `plain`.
 */

/** Marks an escaped name: `~` is unreserved in URLs and allowed in NATS tokens, but never part of a plain name. */
export const WIRE_ESCAPE = '~';

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** `name` itself when `plain` matches it, else `~` + base64url(UTF-8 of name). */
export function escapeName(name: string, plain: RegExp): string {
  return plain.test(name) ? name : WIRE_ESCAPE + Buffer.from(name, 'utf8').toString('base64url');
}

/**
 * The name whose escaped form is `wire` (inverse of escapeName with the same `plain`); undefined when `wire` is
 * not such a form (only the canonical encoding of a non-empty name that needed one: no padding variants, no
 * plain names in disguise).
 */
export function unescapeName(wire: string, plain: RegExp): string | undefined {
  if (plain.test(wire)) return wire;
  if (!wire.startsWith(WIRE_ESCAPE) || !BASE64URL.test(wire.slice(1))) return undefined;
  const name = Buffer.from(wire.slice(1), 'base64url').toString('utf8');
  return name.length > 0 && escapeName(name, plain) === wire ? name : undefined;
}
