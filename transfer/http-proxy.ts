import { STATUS_CODES } from 'node:http';
import type { SecureContext } from 'node:tls';
import type { Agent as UndiciAgent, Dispatcher, Pool as UndiciPool } from 'undici';
import { Agent, Pool, ProxyAgent } from './undici-lite.js';
import { PortalError } from '../common/errors.js';

/**
 * A failure of the HTTP proxy a request went through, not of the origin it was for: the proxy refused the
 * connection, was not found, did not answer in time, or answered a CONNECT (or, for an http: origin, the
 * request itself) with 407 or another status than 200. `proxy` is the proxy's origin (`http://host:port`),
 * never its userinfo; `status` the status it answered, when it answered. Code PORTAL_EDGE_UNREACHABLE.
 */
export class ProxyError extends PortalError {
  readonly proxy: string;
  readonly status?: number;
  constructor(proxy: string, what: string, status?: number, cause?: unknown) {
    super('PORTAL_EDGE_UNREACHABLE', `proxy ${proxy} ${what}`, cause === undefined ? undefined : { cause });
    this.name = 'ProxyError';
    this.proxy = proxy;
    this.status = status;
  }
}

/** Errors of opening a connection (to the proxy, when a request goes through one), by code. */
const CONNECT_FAULTS: Record<string, string> = {
  ECONNREFUSED: 'refused the connection',
  ENOTFOUND: 'was not found (ENOTFOUND)',
  EAI_AGAIN: 'was not found (EAI_AGAIN)',
  EHOSTUNREACH: 'is unreachable (EHOSTUNREACH)',
  ENETUNREACH: 'is unreachable (ENETUNREACH)',
  UND_ERR_CONNECT_TIMEOUT: 'did not accept the connection within the connect timeout',
};

/**
 * `err` as a ProxyError of `proxy` when it is the proxy's failure: a connection to it that could not be
 * opened, or undici's "Proxy Authentication Required (407)" of an http: request sent to it in absolute form;
 * otherwise `err` unchanged. Call it only for errors raised before a response began.
 */
export function proxyFault(err: unknown, proxy: string): unknown {
  if (err instanceof ProxyError) return err;
  const e = err as { code?: string; message?: string } | undefined;
  const what = CONNECT_FAULTS[e?.code ?? ''];
  if (what) return new ProxyError(proxy, what, undefined, err);
  if (e?.code === 'UND_ERR_INVALID_ARG' && /\(407\)/.test(e.message ?? ''))
    return new ProxyError(proxy, 'answered 407 Proxy Authentication Required', 407, err);
  return err;
}

/** `HTTP_PROXY`-style value as a URL: a bare `host:port` is an http proxy, as curl reads it. */
function proxyUrl(value: string, name: string): URL {
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`);
  } catch {
    // the value is not quoted: it may hold a password
    throw new PortalError('PORTAL_CONFIG_INVALID', `${name}: not a proxy URL`);
  }
  // undici's ProxyAgent speaks HTTP to its proxy; a socks5: URL reached its experimental SOCKS path, which printed
  // Node's ExperimentalWarning and failed as "proxy null refused the connection"
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `${name}: a ${url.protocol} proxy is not supported; Portal uses HTTP and HTTPS proxies (http://host:port, https://host:port)`,
    );
  return url;
}

/** One NO_PROXY entry: a host name (leading `*.` or `.` dropped), and a port (0: any). */
interface NoProxyEntry {
  host: string;
  port: number;
}

/** NO_PROXY entries, read as undici's EnvHttpProxyAgent reads them (comma- or space-separated, `host[:port]`). */
function parseNoProxy(value: string): NoProxyEntry[] {
  return value
    .split(/[,\s]/)
    .filter(Boolean)
    .map((entry) => {
      const m = /^(.+):(\d+)$/.exec(entry);
      return {
        host: (m ? m[1] : entry).replace(/^\*?\./, '').toLowerCase(),
        port: m ? Number.parseInt(m[2], 10) : 0,
      };
    });
}

/**
 * True when NO_PROXY sends `url` straight to its origin: `*`, or an entry that is its host or a parent domain
 * of it, on any port or on its port (undici's EnvHttpProxyAgent rules, kept so that the proxy a request is
 * said to go through is the one it goes through).
 */
function bypassesProxy(url: URL, noProxy: string, entries: readonly NoProxyEntry[]): boolean {
  if (entries.length === 0) return false;
  if (noProxy === '*') return true;
  const host = url.host.replace(/:\d*$/, '').toLowerCase();
  const port = Number.parseInt(url.port, 10) || (url.protocol === 'https:' ? 443 : 80);
  return entries.some(
    (e) => (!e.port || e.port === port) && (host === e.host || host.endsWith(`.${e.host}`)),
  );
}

/**
 * A Pool to the proxy whose CONNECT (the tunnel of an https: request) fails with a ProxyError naming the proxy
 * and what it answered. undici's own error there names neither ("Proxy response (502) !== 200 when HTTP
 * Tunneling", or the connect error of the proxy's socket, which callers took for the origin's).
 */
function reportingProxyPool(origin: URL, opts: object, proxy: string): UndiciPool {
  const pool = new Pool(origin, opts);
  // the Pool's own connect, kept before `reporting` takes its place on the instance
  const connect: (o: Dispatcher.ConnectOptions) => Promise<Dispatcher.ConnectData> = pool.connect.bind(pool);
  const reporting = async (o: Dispatcher.ConnectOptions): Promise<Dispatcher.ConnectData> => {
    let r: Dispatcher.ConnectData;
    try {
      r = await connect(o);
    } catch (err) {
      const e = proxyFault(err, proxy);
      const code = (err as { code?: string } | undefined)?.code;
      throw e === err
        ? new ProxyError(proxy, `failed the CONNECT to ${o.path}${code ? ` (${code})` : ''}`, undefined, err)
        : e;
    }
    if (r.statusCode !== 200) {
      r.socket.on('error', () => undefined).destroy();
      throw new ProxyError(
        proxy,
        `answered ${r.statusCode} ${STATUS_CODES[r.statusCode] ?? ''} to CONNECT ${o.path}`.trimEnd(),
        r.statusCode,
      );
    }
    return r;
  };
  return Object.assign(pool, { connect: reporting });
}

/** Where a request goes: its dispatcher, and the proxy it goes through (origin only), if any. */
export interface ProxyRoute {
  dispatcher: Dispatcher;
  proxy?: string;
}

/** The dispatchers of an HTTP client: straight to origins, or through the proxies HTTP_PROXY/HTTPS_PROXY name. */
export interface ProxyRoutes {
  /** The route of a request to `url`. */
  route(url: URL): ProxyRoute;
  /** True when some origins go through a proxy. */
  readonly proxied: boolean;
  close(): Promise<void>;
}

/** How a client trusts TLS peers: one SecureContext of its trusted CAs, or no verification (`--insecure`). */
export type TlsTrust = { secureContext: SecureContext } | { rejectUnauthorized: false };

/**
 * Builds the routes from `env` (`http_proxy`/`HTTP_PROXY`, `https_proxy`/`HTTPS_PROXY` — HTTP_PROXY serves
 * https: origins too when no HTTPS_PROXY is set —, `no_proxy`/`NO_PROXY`; lower case first, as undici reads
 * them) or none (`env` undefined). An http: origin is requested from its proxy in absolute form (`GET
 * http://origin/path`), as curl, wget and aria2c do; an https: origin through a CONNECT tunnel. `tls` is the
 * trust of origins (and of an https: proxy; asked for once per proxy when its agent is made), `agent` the options of every undici Agent. Throws
 * PORTAL_CONFIG_INVALID naming the variable (never its value) when a proxy is not a URL.
 */
export function createProxyRoutes(
  env: NodeJS.ProcessEnv | undefined,
  agent: UndiciAgent.Options,
  tls: () => TlsTrust,
  connectTimeoutMs: number,
): ProxyRoutes {
  const direct = new Agent(agent);
  const httpValue = env ? (env.http_proxy ?? env.HTTP_PROXY) : undefined;
  const httpsValue = env ? (env.https_proxy ?? env.HTTPS_PROXY) : undefined;
  const via = (value: string, name: string): ProxyRoute => {
    const url = proxyUrl(value, name);
    const proxy = url.origin;
    return {
      proxy,
      dispatcher: new ProxyAgent({
        ...agent,
        uri: url.href,
        // http: origins in absolute form, not through a tunnel (undici's default): what every other client does
        proxyTunnel: false,
        requestTls: tls(),
        proxyTls: { ...tls(), timeout: connectTimeoutMs },
        clientFactory: (origin: URL, opts: object) => reportingProxyPool(origin, opts, proxy),
        // The Pool of each origin, and the one an http: origin's absolute-form requests take to the proxy, which
        // undici builds with no options but `connect`: its connections are capped like an origin's (unlimited
        // otherwise, one per request in flight).
        factory: (origin: string | URL, opts: object) =>
          new Pool(origin, {
            connections: agent.connections,
            pipelining: agent.pipelining,
            keepAliveTimeout: agent.keepAliveTimeout,
            ...opts,
          }),
      }),
    };
  };
  const http = httpValue ? via(httpValue, 'HTTP_PROXY') : undefined;
  const https = httpsValue ? via(httpsValue, 'HTTPS_PROXY') : http;
  const noProxy = env ? (env.no_proxy ?? env.NO_PROXY ?? '') : '';
  const entries = parseNoProxy(noProxy);
  const straight: ProxyRoute = { dispatcher: direct };
  return {
    proxied: Boolean(http || https),
    route(url) {
      const r = url.protocol === 'https:' ? https : http;
      return r && !bypassesProxy(url, noProxy, entries) ? r : straight;
    },
    async close() {
      const all = new Set<Dispatcher>([direct]);
      for (const r of [http, https]) if (r) all.add(r.dispatcher);
      await Promise.all([...all].map((d) => d.close().catch(() => undefined)));
    },
  };
}
