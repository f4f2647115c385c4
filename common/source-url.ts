import { PortalError } from './errors.js';
import { redactUrl } from './redact.js';

/**
 * `url` with its scheme in lower case when new URL() reads it as an http: or https: URL (RFC 3986 §3.1: schemes
 * are case-insensitive, `HTTP://host/f` is `http://host/f`, as curl and WHATWG parsing take it); undefined when it
 * is no such URL. The rest is kept as written (a trailing slash, `./` segments), so messages show what was given.
 */
export function httpUrl(url: unknown): string | undefined {
  if (typeof url !== 'string') return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return undefined;
  return url.replace(/^\s*[A-Za-z][A-Za-z0-9+.-]*:/, parsed.protocol);
}

/**
 * httpUrl of a source URL entering at `name` (an argument's path: `edges[0].config.url`); PORTAL_INVALID_ARGUMENT
 * naming the field and the URL (redacted: no `user:pass@`, no token) when it is no http(s) URL.
 */
export function checkHttpUrl(url: unknown, name: string): string {
  const normal = httpUrl(url);
  if (normal === undefined)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `${name}: expected an http(s) URL, got ${typeof url === 'string' ? JSON.stringify(redactUrl(url)) : typeof url}`,
    );
  return normal;
}
