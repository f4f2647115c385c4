import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { hostname as machineName } from 'node:os';

/**
 * Guards a loopback HTTP listener against web pages in the user's browser, the two ways a page reaches a
 * server on 127.0.0.1 without being that server's client:
 *
 * - **DNS rebinding**: a page on evil.example re-resolves its own name to 127.0.0.1 and then reads the answers,
 *   since the browser sees one origin. Its requests carry `Host: evil.example`, so a listener bound to loopback
 *   or to every interface (`0.0.0.0`, `::`, which loopback reaches too; see reachableOnLoopback) answers only a
 *   Host that is an IP literal, `localhost` (or a `*.localhost` name, RFC 6761), this machine's name
 *   (os.hostname()), or a name the operator allowed (`PORTAL_ALLOWED_HOSTS`, comma-separated; `*` allows any) —
 *   the rule of webpack-dev-server's and Vite's `allowedHosts` — each also in its absolute form, with one trailing
 *   dot (`localhost.`).
 * - **Cross-site requests (CSRF)**: a page may POST a "simple request" (text/plain, form types) to any address
 *   without a CORS preflight; it cannot read the answer but the call runs. A state-changing request (any method
 *   but GET, HEAD and OPTIONS) is refused when it carries an `Origin` other than the listener's own `Host`
 *   (browsers send one on every cross-origin POST; curl, SDKs and sidecars send none), or
 *   `Sec-Fetch-Site: cross-site`.
 *
 * Returns why the request is refused (for a 403 answer), or undefined to serve it.
 */
export function browserRefusal(
  req: IncomingMessage,
  o: { loopback: boolean; allowedHosts?: readonly string[] },
): string | undefined {
  const host = req.headers.host;
  if (o.loopback && host !== undefined) {
    const name = hostnameOf(host);
    // the operator's list is read (process.env, on every request) only for a name the rule does not allow itself
    if (!hostAllowed(name, () => o.allowedHosts ?? allowedHostsFromEnv()))
      return `Host ${JSON.stringify(host)} does not name this loopback server (a guard against DNS rebinding; allow a name with PORTAL_ALLOWED_HOSTS)`;
  }
  const method = req.method ?? 'GET';
  if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return undefined;
  const origin = req.headers.origin;
  if (origin !== undefined) {
    let own: boolean;
    try {
      own = host !== undefined && new URL(origin).host.toLowerCase() === host.toLowerCase();
    } catch {
      own = false; // not a URL: "null" (a sandboxed page, a file:// page) or garbage
    }
    if (!own)
      return `a ${method} sent by a web page of ${JSON.stringify(origin)} (cross-site requests are refused)`;
  }
  if (req.headers['sec-fetch-site'] === 'cross-site')
    return `a ${method} sent by a web page of another site (Sec-Fetch-Site: cross-site; refused)`;
  return undefined;
}

/** The names in `PORTAL_ALLOWED_HOSTS` (comma-separated, lower case). */
export function allowedHostsFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.PORTAL_ALLOWED_HOSTS ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h !== '');
}

/** The host name of a Host header: `[::1]:80` → `::1`, `a.b:8080` → `a.b`, lower case. */
function hostnameOf(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') < 0 ? undefined : h.indexOf(']'));
  const colon = h.lastIndexOf(':');
  return colon >= 0 && h.indexOf(':') === colon ? h.slice(0, colon) : h;
}

function hostAllowed(host: string, allowedHosts: () => readonly string[]): boolean {
  // an absolute name (one trailing dot, RFC 1034 §3.1) names the same host as the name without it: `localhost.`
  // is `localhost`, `127.0.0.1.` is 127.0.0.1 (as URL parsers take it); a doubled dot is no name
  const name = host.endsWith('.') && !host.endsWith('..') ? host.slice(0, -1) : host;
  if (isIP(name) !== 0) return true;
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  if (name === machineName().toLowerCase()) return true;
  const allowed = allowedHosts();
  return allowed.includes('*') || allowed.includes(name);
}

/**
 * Whether a listener bound to `hostname` answers on loopback, where a DNS-rebinding page reaches it: a loopback
 * address, or every interface (`0.0.0.0`, `::`, or an empty host, as Node's `listen` takes them). Such a
 * listener checks the Host of every request (browserRefusal's `loopback`).
 */
export function reachableOnLoopback(hostname: string): boolean {
  return isLoopbackHost(hostname) || ['0.0.0.0', '::', '[::]', ''].includes(hostname);
}

/** Whether `hostname` (a listener's bind address) is loopback: 127/8, ::1 or localhost. */
export function isLoopbackHost(hostname: string): boolean {
  if (hostname === 'localhost') return true;
  if (isIP(hostname) === 4) return hostname.startsWith('127.');
  return hostname === '::1' || hostname === '[::1]';
}
