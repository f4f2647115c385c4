import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import tls from 'node:tls';
import type { Agent as UndiciAgent, Dispatcher, buildConnector as BuildConnector } from 'undici';
import { createProxyRoutes, proxyFault, type TlsTrust } from './http-proxy.js';
import { buildConnector } from './undici-lite.js';
import { PortalError } from '../common/errors.js';
import { escapeControl, redactText, redactUrl } from '../common/redact.js';
import { DEFAULT_LOWEST_SPEED_BYTES_PER_SEC, DEFAULT_SPEED_TIME_MS } from './lowest-speed.js';
import { dispatchBody, type BodyMode, type ResponseHeaders } from './body-handler.js';

/** The one URL redaction rule (common/redact.ts), re-exported where HTTP callers look for it. */
export { redactUrl };

/** Connections kept per origin (one undici Pool per origin inside the Agent). */
export const HTTP_CONNECTIONS_PER_ORIGIN = 16;
/** Default stall timeout: no response headers, or no body byte, for this long ends a request (ms). */
export const DEFAULT_STALL_TIMEOUT_MS = 15_000;
/** Default connect timeout (TCP + TLS handshake), ms. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Redirect hops followed before a request fails (curl's and browsers' limits are 20–50; mirrors need 1–3). */
export const DEFAULT_MAX_REDIRECTS = 10;
/** HTTP statuses that redirect (RFC 9110 §15.4); 300 and 304 are not followed. */
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Where the system's CA bundle lives on Debian/Ubuntu, Fedora/RHEL and Alpine/macOS (OpenSSL's usual paths). */
const SYSTEM_CA_FILES = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/cert.pem',
];

/** Options of createHttpClient. Times in milliseconds. */
export interface HttpClientOptions {
  /** PEM file of extra CA certificates trusted besides the system store (`--ca FILE`). */
  caFile?: string;
  /** PEM text of extra CA certificates (tests; same meaning as caFile). */
  ca?: string;
  /** Skip TLS certificate verification (`--insecure`); never the default. */
  insecure?: boolean;
  /** Headers sent with every request (`--header 'Name: value'`). */
  headers?: Record<string, string>;
  /**
   * The origins (`scheme://host:port`) that the CREDENTIAL_HEADERS among `headers` are for: the URLs the user
   * named. A request to any other origin (a mirror a `Link: rel=duplicate` header or a Metalink named, a
   * redirect target) goes without them. Unset: every origin a request starts at (redirects still drop them).
   */
  credentialOrigins?: string[];
  connectionsPerOrigin?: number;
  connectTimeoutMs?: number;
  /** No response headers, or no body byte, for this long fails the request as stalled (default 15 000). */
  stallTimeoutMs?: number;
  /**
   * A chunk fetch whose body arrives slower than this over the last `speedTimeMs` fails as `too-slow` (bytes/s;
   * 0 = off; default DEFAULT_LOWEST_SPEED_BYTES_PER_SEC, 1024). Plain data, so data-plane threads get it too.
   */
  lowestSpeedBytesPerSec?: number;
  /** The window of the lowest-speed limit, ms (default DEFAULT_SPEED_TIME_MS, 10 000). */
  speedTimeMs?: number;
  maxRedirects?: number;
  /**
   * Follow a redirect from an https: URL to an http: one (`--allow-downgrade`). Default false: such a redirect
   * fails the request with PORTAL_EDGE_HTTP naming both URLs, since the bytes (and the request's own headers) would
   * then travel unprotected and could be changed on the way.
   */
  allowDowngrade?: boolean;
  /**
   * A validator (a strong ETag, else a Last-Modified date) per mirror URL, as the chunk fetches name the mirror:
   * its Range requests carry `If-Range: <validator>` (RFC 9110 §13.1.5), so a mirror whose file changed answers
   * 200 with the whole file, which the fetch fails as `version-changed`, instead of a range of the new version.
   * Plain data, set before the data plane starts (`portal fetch` learns the validators from its probes).
   */
  ifRange?: Record<string, string>;
  /**
   * Environment read for HTTP_PROXY/HTTPS_PROXY/NO_PROXY (default process.env); `proxy: false` ignores it. An
   * http: origin is asked through its proxy in absolute form, an https: one through a CONNECT tunnel; a failure
   * of the proxy is a ProxyError naming the proxy (see transfer/http-proxy.ts).
   */
  env?: NodeJS.ProcessEnv;
  proxy?: boolean;
}

/** What `send` asks for. */
export interface SendOptions {
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Close the connection after this request (a retry on a connection nobody else shares). */
  reset?: boolean;
  /** Overrides the client's stall timeout for this request. */
  stallTimeoutMs?: number;
  /**
   * The origin the caller's credentials (URL userinfo, CREDENTIAL_HEADERS) are for: requests to any other origin
   * go without them. Default: the origin of the URL sent to. A mirror's remembered redirect target is sent to
   * with the mirror's own origin here, so it gets no more credentials than the redirect that named it.
   */
  credentialOrigin?: string;
}

/** A response after redirects: status, headers, the body stream and the URL that answered. */
export interface SendResult {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
  /** The URL that finally answered (after redirects); may carry credentials — redact before logging. */
  url: string;
  /** Redirect hops followed. */
  redirects: number;
  /** The proxy the answer came through (its origin, no userinfo), when one was used. */
  proxy?: string;
}

/** The head of the final response (after redirects), as `receive` hands it to its receiver. */
export interface ResponseHead {
  statusCode: number;
  headers: ResponseHeaders;
  /** The URL that finally answered (after redirects); may carry credentials — redact before logging. */
  url: string;
  /** Redirect hops followed. */
  redirects: number;
  /** The proxy the answer came through (its origin, no userinfo), when one was used. */
  proxy?: string;
}

/**
 * Where `receive` delivers the final response: both callbacks run synchronously inside undici's socket read.
 * `onHead` decides what becomes of the body (see BodyMode) and may throw to abort the request with that
 * error; `onData` gets each piece in order (mode `data`) and may throw likewise. Redirect responses never
 * reach it.
 */
export interface BodyReceiver {
  onHead(head: ResponseHead): BodyMode;
  onData(piece: Buffer): void;
}

/** How `receive` ended: the final head, the mode its receiver chose, and the body stream for mode `stream`. */
export interface ReceiveResult extends ResponseHead {
  mode: BodyMode;
  /** The rest of the body, for mode `stream` only. */
  body?: Readable;
}

/** The one HTTP client of a Portal process: undici dispatchers (a Pool per origin), TLS trust, proxy, headers. */
export interface HttpClient {
  /** The options it was built with (plain data: data-plane worker threads build their own client from them). */
  readonly options: HttpClientOptions;
  readonly stallTimeoutMs: number;
  /** The lowest-speed limit of chunk fetches, bytes/s (0 = off), and its window, ms (see HttpClientOptions). */
  readonly lowestSpeedBytesPerSec: number;
  readonly speedTimeMs: number;
  readonly maxRedirects: number;
  /**
   * Sends a request, following 301/302/303/307/308 up to `maxRedirects` hops across origins (credentials
   * and Authorization are dropped when the origin changes). `user:pass@` in the URL becomes Basic auth.
   * Rejects with the undici/Node error of the transport, a ProxyError when the proxy failed it, or PortalError
   * PORTAL_EDGE_HTTP for a redirect loop, too many hops, a redirect without Location, or one from https: to http:
   * (unless HttpClientOptions.allowDowngrade).
   */
  send(url: string, opts?: SendOptions): Promise<SendResult>;
  /**
   * Like send for a mirror: starts from the URL the mirror last redirected to (signed CDN URLs) and, when
   * that one fails or answers an error status, forgets it and resolves the mirror's own URL again.
   */
  sendMirror(mirrorUrl: string, opts?: SendOptions): Promise<SendResult>;
  /**
   * Like send, with the body handed to `receiver` piece by piece through undici's dispatch handler API instead
   * of a stream (no Readable nor promise per piece: the chunk path). Resolves once the body has ended (modes
   * `data`, `skip`) or at the head (`stream`); rejects like send, with what a receiver callback threw, or
   * with the signal's reason.
   */
  receive(url: string, opts: SendOptions, receiver: BodyReceiver): Promise<ReceiveResult>;
  /**
   * receive for a mirror, with sendMirror's memory of where it redirects: an error or an error status from
   * the remembered URL before `receiver.onHead` is called resolves the mirror's own URL again.
   */
  receiveMirror(mirrorUrl: string, opts: SendOptions, receiver: BodyReceiver): Promise<ReceiveResult>;
  /** The URL a mirror last redirected to, if any. */
  resolvedUrl(mirrorUrl: string): string | undefined;
  /** Closes every connection; idempotent. */
  close(): Promise<void>;
}

/**
 * Reads PEM bundles: the system store (first file found of SYSTEM_CA_FILES, or SSL_CERT_FILE), Node's own and
 * the file NODE_EXTRA_CA_CERTS names (Node adds it to its default store, but not to `tls.rootCertificates`,
 * and Node 20 has no `tls.getCACertificates`: a `ca` option built from rootCertificates alone would drop it).
 */
function trustedCas(extra: string[], env: NodeJS.ProcessEnv): string[] {
  const out = [...tls.rootCertificates];
  if (env.NODE_EXTRA_CA_CERTS) {
    try {
      out.push(readFileSync(env.NODE_EXTRA_CA_CERTS, 'utf8'));
    } catch {
      /* unreadable: Node itself warned at startup ("Ignoring extra certs from …"), as it ignores the file */
    }
  }
  const files = env.SSL_CERT_FILE ? [env.SSL_CERT_FILE] : SYSTEM_CA_FILES;
  for (const f of files) {
    try {
      out.push(readFileSync(f, 'utf8'));
      break;
    } catch {
      /* not on this system: try the next usual path */
    }
  }
  return out.concat(extra);
}

/** Request headers that carry credentials: sent only to the origin of the first request (see requestOptions). */
export const CREDENTIAL_HEADERS: ReadonlySet<string> = new Set([
  'authorization',
  'cookie',
  'proxy-authorization',
]);

/**
 * Builds the HTTP client: an undici Agent (and ProxyAgents when HTTP_PROXY/HTTPS_PROXY is set: see
 * createProxyRoutes) trusting the system CA store plus `caFile`. Throws PORTAL_CONFIG_INVALID when `caFile`
 * cannot be read or holds no certificate, or a proxy variable is not a URL; PORTAL_INVALID_ARGUMENT for bad
 * numbers.
 */
export function createHttpClient(opts: HttpClientOptions = {}): HttpClient {
  const env = opts.env ?? process.env;
  const num = (v: number | undefined, d: number, name: string, min: number): number => {
    const n = v ?? d;
    if (!Number.isFinite(n) || n < min)
      throw new PortalError(
        'PORTAL_INVALID_ARGUMENT',
        `${name}: expected a number ≥ ${min}, got ${String(n)}`,
      );
    return n;
  };
  const connections = num(opts.connectionsPerOrigin, HTTP_CONNECTIONS_PER_ORIGIN, 'connectionsPerOrigin', 1);
  const connectTimeout = num(opts.connectTimeoutMs, DEFAULT_CONNECT_TIMEOUT_MS, 'connectTimeoutMs', 1);
  const stallTimeoutMs = num(opts.stallTimeoutMs, DEFAULT_STALL_TIMEOUT_MS, 'stallTimeoutMs', 1);
  const maxRedirects = num(opts.maxRedirects, DEFAULT_MAX_REDIRECTS, 'maxRedirects', 0);
  const lowestSpeedBytesPerSec = num(
    opts.lowestSpeedBytesPerSec,
    DEFAULT_LOWEST_SPEED_BYTES_PER_SEC,
    'lowestSpeedBytesPerSec',
    0,
  );
  const speedTimeMs = num(opts.speedTimeMs, DEFAULT_SPEED_TIME_MS, 'speedTimeMs', 1);
  const extra: string[] = [];
  if (opts.caFile) {
    let pem: string;
    try {
      pem = readFileSync(opts.caFile, 'utf8');
    } catch (cause) {
      throw new PortalError('PORTAL_CONFIG_INVALID', `--ca ${opts.caFile}: cannot read the file`, { cause });
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----'))
      throw new PortalError('PORTAL_CONFIG_INVALID', `--ca ${opts.caFile}: no PEM certificate in the file`);
    extra.push(pem);
  }
  if (opts.ca) extra.push(opts.ca);
  // One SecureContext for every HTTPS connection of this client, made at the first one: a `ca` list in the
  // connect options makes Node build a context per connection (tls.connect → createSecureContext), which parses
  // every trusted certificate again (~110 ms of CPU for the system store here), and a client of http: mirrors only
  // never reads a CA file at all
  let secure: { secureContext: tls.SecureContext } | undefined;
  const tlsOpts = (): TlsTrust =>
    opts.insecure
      ? { rejectUnauthorized: false }
      : (secure ??= { secureContext: tls.createSecureContext({ ca: trustedCas(extra, env) }) });
  const plainConnect = buildConnector({ timeout: connectTimeout });
  let tlsConnect: BuildConnector.connector | undefined;
  const agentOpts: UndiciAgent.Options = {
    connections,
    pipelining: 1,
    keepAliveTimeout: 4_000,
    headersTimeout: stallTimeoutMs,
    bodyTimeout: stallTimeoutMs,
    connect: (o, callback) =>
      o.protocol === 'https:'
        ? (tlsConnect ??= buildConnector({ ...tlsOpts(), timeout: connectTimeout }))(o, callback)
        : plainConnect(o, callback),
  };
  const routes = createProxyRoutes(
    opts.proxy === false ? undefined : env,
    agentOpts,
    tlsOpts,
    connectTimeout,
  );
  const baseHeaders = { ...(opts.headers ?? {}) };
  const credentialOrigins = opts.credentialOrigins ? new Set(opts.credentialOrigins) : undefined;
  const resolved = new Map<string, string>();
  let closed: Promise<void> | undefined;

  /**
   * undici's request options of one hop (credentials as Basic auth unless the caller sent Authorization). A hop
   * to another origin than the first request's (`crossOrigin`, after a redirect) goes without the caller's
   * CREDENTIAL_HEADERS, as curl does since 7.58 (CVE-2018-1000007): a mirror's token or cookie never reaches the
   * host a redirect names. Nor does a request to an origin outside `credentialOrigins` (when set) get the
   * client's own CREDENTIAL_HEADERS: those are for the origins the user named, not for mirrors found on the way.
   */
  const requestOptions = (
    url: URL,
    o: SendOptions,
    auth: string | undefined,
    crossOrigin = false,
  ): Dispatcher.RequestOptions => {
    const headers: Record<string, string> = { ...baseHeaders, ...(o.headers ?? {}) };
    if (crossOrigin) {
      for (const h of Object.keys(headers)) if (CREDENTIAL_HEADERS.has(h.toLowerCase())) delete headers[h];
    } else if (credentialOrigins && !credentialOrigins.has(url.origin)) {
      for (const h of Object.keys(baseHeaders))
        if (CREDENTIAL_HEADERS.has(h.toLowerCase()) && !(o.headers && h in o.headers)) delete headers[h];
    }
    if (auth && !Object.keys(headers).some((h) => h.toLowerCase() === 'authorization'))
      headers.authorization = auth;
    const stall = o.stallTimeoutMs ?? stallTimeoutMs;
    return {
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: o.method ?? 'GET',
      headers,
      reset: o.reset,
      headersTimeout: stall,
      bodyTimeout: stall,
    };
  };

  /**
   * Follows redirects from `start`: `hop(url, auth, hops)` sends one request and resolves with its status and
   * headers, having dropped the body itself when the status is a redirect (REDIRECTS).
   */
  const follow = async <R extends { statusCode: number; headers: ResponseHeaders }>(
    start: string,
    hop: (url: URL, auth: string | undefined, hops: number, crossOrigin: boolean) => Promise<R>,
    credentialOrigin?: string,
  ): Promise<{ r: R; url: URL; hops: number }> => {
    let url = new URL(start);
    const userAuth = (u: URL): string | undefined =>
      u.username || u.password
        ? `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`
        : undefined;
    const origin0 = credentialOrigin ?? url.origin;
    // a URL's own userinfo is for its own origin
    let auth = userAuth(url);
    const seen = new Set<string>();
    for (let hops = 0; ; hops++) {
      const r = await hop(url, auth, hops, url.origin !== origin0);
      if (!REDIRECTS.has(r.statusCode)) return { r, url, hops };
      const loc = r.headers.location;
      const where = Array.isArray(loc) ? loc[0] : loc;
      if (!where)
        throw new PortalError('PORTAL_EDGE_HTTP', `HTTP ${r.statusCode} redirect without a Location header`);
      const next = redirectTarget(where, url, r.statusCode);
      if (hops >= maxRedirects)
        throw new PortalError(
          'PORTAL_EDGE_HTTP',
          `more than ${maxRedirects} redirects (the last to ${redactUrl(next.href)})`,
        );
      if (next.protocol !== 'http:' && next.protocol !== 'https:')
        throw new PortalError(
          'PORTAL_EDGE_HTTP',
          `redirect to a ${next.protocol} URL, which Portal cannot fetch`,
        );
      if (url.protocol === 'https:' && next.protocol === 'http:' && opts.allowDowngrade !== true)
        throw new PortalError(
          'PORTAL_EDGE_HTTP',
          `HTTP ${r.statusCode} redirect from ${redactUrl(url.href)} to ${redactUrl(next.href)} refused: it downgrades https to http, where the bytes travel unprotected (give --allow-downgrade to follow it)`,
        );
      if (seen.has(next.href))
        throw new PortalError('PORTAL_EDGE_HTTP', `redirect loop through ${redactUrl(next.href)}`);
      seen.add(url.href);
      // Credentials go only to the origin they were given for (as curl and browsers do).
      auth = next.origin === origin0 ? (userAuth(next) ?? auth) : userAuth(next);
      url = next;
    }
  };

  const send = async (start: string, o: SendOptions = {}): Promise<SendResult> => {
    const { r, url, hops } = await follow(
      start,
      async (u, auth, _n, crossOrigin) => {
        const { dispatcher, proxy } = routes.route(u);
        let res: Dispatcher.ResponseData;
        try {
          res = await dispatcher.request({ ...requestOptions(u, o, auth, crossOrigin), signal: o.signal });
        } catch (err) {
          // request() rejects only before the response's head: a connection the proxy refused is the proxy's
          throw proxy ? proxyFault(err, proxy) : err;
        }
        if (REDIRECTS.has(res.statusCode)) await res.body.dump().catch(() => undefined);
        return Object.assign(res, { proxy });
      },
      o.credentialOrigin,
    );
    return {
      statusCode: r.statusCode,
      headers: r.headers,
      body: r.body,
      url: url.href,
      redirects: hops,
      ...(r.proxy ? { proxy: r.proxy } : {}),
    };
  };

  const receive = async (start: string, o: SendOptions, rx: BodyReceiver): Promise<ReceiveResult> => {
    const { r, url, hops } = await follow(
      start,
      async (u, auth, n, crossOrigin) => {
        const { dispatcher, proxy } = routes.route(u);
        let headed = false;
        try {
          const r = await dispatchBody(
            dispatcher,
            requestOptions(u, o, auth, crossOrigin),
            {
              onHead: (statusCode, headers) => {
                headed = true;
                return REDIRECTS.has(statusCode)
                  ? 'skip'
                  : rx.onHead({
                      statusCode,
                      headers,
                      url: u.href,
                      redirects: n,
                      ...(proxy ? { proxy } : {}),
                    });
              },
              onData: (piece) => rx.onData(piece),
            },
            o.signal,
          );
          return Object.assign(r, { proxy });
        } catch (err) {
          // before a head, a connection the proxy refused is the proxy's failure, not the origin's
          throw proxy && !headed ? proxyFault(err, proxy) : err;
        }
      },
      o.credentialOrigin,
    );
    return {
      statusCode: r.statusCode,
      headers: r.headers,
      url: url.href,
      redirects: hops,
      ...(r.proxy ? { proxy: r.proxy } : {}),
      mode: r.mode,
      body: r.body,
    };
  };

  /**
   * A request to a mirror through `go`, first to the URL it last redirected to: when that one answers ≥ 400
   * (`drop` discards the response) or fails in a way `retryable` accepts, the mirror's own URL is resolved again.
   * `go` gets `o` with the mirror's origin as `credentialOrigin`, so a remembered target gets no credentials.
   */
  const viaMirror = async <R extends { statusCode: number; url: string; redirects: number }>(
    mirrorUrl: string,
    opts: SendOptions,
    go: (url: string, o: SendOptions, remembered: boolean) => Promise<R>,
    retryable: (err: unknown) => boolean,
    drop: (r: R) => Promise<unknown>,
  ): Promise<R> => {
    const o = { ...opts, credentialOrigin: new URL(mirrorUrl).origin };
    const remembered = resolved.get(mirrorUrl);
    if (remembered) {
      let r: R | undefined;
      try {
        r = await go(remembered, o, true);
      } catch (err) {
        if (o.signal?.aborted || !retryable(err)) throw err;
      }
      if (r && r.statusCode < 400) return r;
      // The resolved URL stopped answering (an expired signed URL): resolve the mirror again.
      if (r) await drop(r);
      resolved.delete(mirrorUrl);
    }
    const r = await go(mirrorUrl, o, false);
    if (r.redirects > 0) resolved.set(mirrorUrl, r.url);
    return r;
  };

  return {
    options: { ...opts },
    stallTimeoutMs,
    lowestSpeedBytesPerSec,
    speedTimeMs,
    maxRedirects,
    send,
    sendMirror: (mirrorUrl, o = {}) =>
      viaMirror(
        mirrorUrl,
        o,
        send,
        () => true,
        (r) => r.body.dump().catch(() => undefined),
      ),
    receive,
    receiveMirror(mirrorUrl, o, rx) {
      // The remembered URL's error status is skipped before the receiver sees it. An error after the receiver
      // saw a head (a reset mid-body) is not retried here: its data had begun.
      let began = false;
      const watched: BodyReceiver = {
        onHead(head) {
          if (head.statusCode >= 400) return 'skip';
          began = true;
          return rx.onHead(head);
        },
        onData: (piece) => rx.onData(piece),
      };
      return viaMirror(
        mirrorUrl,
        o,
        (u, mo, remembered) => receive(u, mo, remembered ? watched : rx),
        () => !began,
        async () => undefined,
      );
    },
    resolvedUrl: (u) => resolved.get(u),
    close() {
      closed ??= routes.close();
      return closed;
    },
  };
}

/** The process-wide client used when none is given (system CA store, proxy from the environment). */
let shared: HttpClient | undefined;

/** The process-wide HTTP client, created on first use with default options (or the one `setDefaultHttpClient` gave). */
export function defaultHttpClient(): HttpClient {
  shared ??= createHttpClient();
  return shared;
}

/**
 * Makes `client` the process-wide HTTP client (the CLI does, from `--ca`, `--insecure`, `--header` and the
 * timeout flags) and returns the previous one, which the caller closes if it no longer needs it; undefined
 * goes back to a default client made on next use.
 */
export function setDefaultHttpClient(client: HttpClient | undefined): HttpClient | undefined {
  const old = shared;
  shared = client;
  return old;
}

/**
 * The URL a redirect's `Location` (`where`) names, resolved against the URL that answered `status` (RFC 9110
 * §10.2.2: it may be relative); a Location that is no URL is PORTAL_EDGE_HTTP naming it, redacted and escaped, as the
 * redirect's target (it surfaced as `ERR_INVALID_URL: Invalid URL`, naming nothing: trial L8).
 */
function redirectTarget(where: string, from: URL, status: number): URL {
  try {
    return new URL(where, from);
  } catch {
    throw new PortalError(
      'PORTAL_EDGE_HTTP',
      `HTTP ${status} redirect to ${JSON.stringify(escapeControl(redactText(where)))}, which is not a URL`,
    );
  }
}
