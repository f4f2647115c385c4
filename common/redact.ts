/**
 * The one redaction rule for secrets that ride in URLs: userinfo (`user:password@`) and the query
 * parameters that carry credentials or signatures (AWS SigV4 / S3 presigned URLs, GCS signed URLs,
 * Azure SAS `sig`, OAuth `access_token`, plain `token=`, `key=`, `password=`…). Everything that shows
 * an edge URL or a message that may hold one — status, the dashboard's /api/state and /events, logs,
 * metric labels, CLI errors — passes it through here, so the list lives in one place.
 */

/** What a redacted secret is replaced with. */
export const REDACTED = '***';

/**
 * Query parameters whose values stay in a redacted URL; every other value is replaced, since any
 * parameter of a signed URL may be part of its signature or a token (an allow-list: a new signing
 * scheme is redacted without being known here).
 */
const SAFE_QUERY = new Set(['file', 'name', 'path', 'version', 'v', 'part']);

/**
 * Query parameter names (lower-cased) whose values are secrets. Sources: AWS SigV4 query auth
 * (X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token), S3 SigV2 (Signature, AWSAccessKeyId),
 * GCS V4 signed URLs (X-Goog-Signature, X-Goog-Credential), Azure SAS (sig), CloudFront (Signature,
 * Key-Pair-Id, Policy), OAuth 2 bearer in a query (access_token, RFC 6750 §2.3), and common ad-hoc
 * names (token, sig, key, password, secret, auth).
 */
const SECRET_PARAMS = new Set([
  'x-amz-signature',
  'x-amz-credential',
  'x-amz-security-token',
  'x-goog-signature',
  'x-goog-credential',
  'signature',
  'awsaccesskeyid',
  'key-pair-id',
  'policy',
  'sig',
  'token',
  'access_token',
  'refresh_token',
  'id_token',
  'api_key',
  'apikey',
  'api-key',
  'key',
  'password',
  'passwd',
  'pass',
  'secret',
  'client_secret',
  'auth',
  'authorization',
  'credential',
  'credentials',
]);

/** True when a query parameter of this name carries a secret (case-insensitive). */
export function isSecretParam(name: string): boolean {
  return SECRET_PARAMS.has(name.toLowerCase());
}

/** A URL anywhere in free text: a scheme, `://`, then everything up to whitespace, a quote or an angle bracket. */
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]+/gi;
/** Punctuation at the end of a URL found in text, taken as the prose's (see redactText). */
const TRAILING_PUNCTUATION = /[.,;:!?)\]]+$/;
/** Quick pre-check: only text that could hold a URL or a secret parameter is scanned in full. */
const MAYBE_SECRET = /:\/\/|[?&;]|=/;

/**
 * `url` for logs, journals, pages and messages: userinfo (`user:pass@`) becomes `***@` and the value
 * of every query parameter but a few harmless ones (SAFE_QUERY) becomes `***`; the rest of the text is
 * kept as written. A string that is not a `scheme://` URL is returned unchanged. Never throws.
 */
export function redactUrl(url: string): string {
  if (typeof url !== 'string' || !MAYBE_SECRET.test(url)) return url;
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/is.exec(url);
  if (!m) return url;
  let authority = m[2];
  const at = authority.lastIndexOf('@');
  if (at >= 0) authority = `${REDACTED}@${authority.slice(at + 1)}`;
  return `${m[1]}${authority}${m[3]}${m[4] ? redactQuery(m[4]) : ''}${m[5] ?? ''}`;
}

/**
 * True when `url` is a redacted one (redactUrl's output with something masked): its userinfo is `***` or a query
 * value is `***`. Such a URL lost its credentials (a journal, a snapshot keeps URLs redacted) and is never used for
 * a request: it would send `***` as a password or a signature.
 */
export function isRedactedUrl(url: string): boolean {
  if (typeof url !== 'string') return false;
  const m = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)[^?#]*(\?[^#]*)?/is.exec(url);
  if (!m) return false;
  const at = m[1].lastIndexOf('@');
  if (at >= 0 && m[1].slice(0, at).startsWith(REDACTED)) return true;
  return m[2] !== undefined && m[2].split(/[?&;]/).some((p) => p.endsWith(`=${REDACTED}`));
}

/** `?a=1&b=2` with every value but those of SAFE_QUERY names replaced by REDACTED. */
function redactQuery(q: string): string {
  return q.replace(/([?&;])([^=&;#]*)(=[^&;#]*)?/g, (all, sep: string, name: string, value?: string) => {
    if (value === undefined || value === '=') return all;
    let decoded = name;
    try {
      decoded = decodeURIComponent(name);
    } catch {
      /* a malformed escape: judged as written */
    }
    return SAFE_QUERY.has(decoded.toLowerCase()) ? all : `${sep}${name}=${REDACTED}`;
  });
}

/** `text` with every URL in it redacted (redactUrl), plus `token=…`-style secrets outside URLs. */
export function redactText(text: string): string {
  if (typeof text !== 'string' || !MAYBE_SECRET.test(text)) return text;
  // punctuation that ends a URL in prose (`<url>: cause`, `(<url>).`) is the sentence's, not the URL's: left out of
  // it, as linkifiers do, or a masked last query value swallowed it (`…?u=*** redirect…`, trial L8)
  const urls = text.replace(URL_IN_TEXT, (u) => {
    const tail = TRAILING_PUNCTUATION.exec(u)?.[0] ?? '';
    return redactUrl(u.slice(0, u.length - tail.length)) + tail;
  });
  // secrets written as `token=abc` in prose (not inside a URL): a separator before the name
  return urls.replace(
    /(^|[\s?&;,(])([A-Za-z_][A-Za-z0-9_.-]*)=([^\s&;,)"']+)/g,
    (all, sep: string, name: string, v: string) => {
      const tail = TRAILING_PUNCTUATION.exec(v)?.[0] ?? '';
      const value = v.slice(0, v.length - tail.length);
      return isSecretParam(name) && value !== REDACTED && value !== ''
        ? `${sep}${name}=${REDACTED}${tail}`
        : all;
    },
  );
}

/**
 * A deep copy of `value` whose strings are redacted (redactText); Errors become Errors with a
 * redacted message and stack (other own fields and `cause` redacted too). Cycles and depth beyond
 * 8 are cut. Plain values that need no change are returned as they are (no copy).
 */
export function redactDeep<T>(value: T, depth = 0, seen = new WeakSet<object>()): T {
  if (typeof value === 'string') return redactText(value) as T;
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value) || depth > 8) return value;
  seen.add(value);
  if (ArrayBuffer.isView(value)) return value;
  if (value instanceof Error) {
    const e = new Error(redactText(value.message), {
      cause: value.cause === undefined ? undefined : redactDeep(value.cause, depth + 1, seen),
    });
    e.name = value.name;
    e.stack = value.stack === undefined ? undefined : redactText(value.stack);
    for (const [k, v] of Object.entries(value))
      (e as unknown as Record<string, unknown>)[k] = redactDeep(v, depth + 1, seen);
    return e as T;
  }
  if (Array.isArray(value)) {
    let changed = false;
    const out = value.map((v: unknown) => {
      const r = redactDeep(v, depth + 1, seen);
      if (r !== v) changed = true;
      return r;
    });
    return (changed ? out : value) as T;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null)
    return value;
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const r = redactDeep(v, depth + 1, seen);
    if (r !== v) (out ??= { ...(value as Record<string, unknown>) })[k] = r;
  }
  return (out ?? value) as T;
}

/**
 * The Unicode bidirectional formatting characters (property Bidi_Control: U+061C, U+200E, U+200F, U+202A–U+202E,
 * U+2066–U+2069). In a file name they reorder what a terminal or file manager shows: `a<U+202E>nib.exe` is shown
 * as `aexe.bin`. File names from sources are refused when they hold one, as control characters are.
 */
export const BIDI_CONTROL = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
const BIDI_CONTROL_ALL = new RegExp(BIDI_CONTROL.source, 'g');

/**
 * `s` with C0/C1 control characters (ESC, NUL, CR, BEL… but not as data in general) shown as
 * `\xNN` escapes and bidi controls (BIDI_CONTROL) as `\uNNNN`, so a name or message printed to a terminal cannot
 * move the cursor, recolour it, hide text or reorder it. Use on anything from outside (manifest names, edge answers)
 * before printing.
 */
export function escapeControl(s: string): string {
  return s
    .replace(
      // eslint-disable-next-line no-control-regex -- matching control characters is the point
      /[\u0000-\u001f\u007f-\u009f]/g,
      (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
    )
    .replace(BIDI_CONTROL_ALL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
