import { readFileSync } from 'node:fs';
import {
  AuthorizationError,
  connect,
  nkeyAuthenticator,
  type ConnectionOptions,
  type NatsConnection,
} from '@nats-io/transport-node';
import { PortalError } from '../common/errors.js';

/**
 * Where NATS is and how to log in: what the bus and the pausable pull client share (natsOptionsFromEnv fills it
 * from NATS_URL, NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_NKEY_SEED_FILE and NATS_TLS_CA/CERT/KEY).
 */
export interface NatsConnectOptions {
  /** `nats://host:port`, several comma-separated or as an array. */
  servers: string | string[];
  user?: string;
  pass?: string;
  token?: string;
  /** File holding an NKey user seed (`SU…`). */
  nkeySeedFile?: string;
  /** TLS files; any of them turns TLS on (a server that requires TLS gets it anyway, checked against the system CAs). */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Initial connect timeout, ms (default 5000). */
  connectTimeoutMs?: number;
}

/** The server URLs of `servers`; PORTAL_CONFIG_INVALID when there are none. */
export function natsServerList(servers: string | string[] | undefined): string[] {
  const list = (Array.isArray(servers) ? servers : String(servers ?? '').split(','))
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0)
    throw new PortalError('PORTAL_CONFIG_INVALID', 'servers: expected at least one nats:// URL');
  return list;
}

/** `scheme://userinfo@rest` of a server URL. */
const USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)([^/@]*)@(.*)$/i;

/**
 * The server URLs without their userinfo, and the credentials the first one that had some carried (as nats.go and
 * the nats CLI read `nats://user:pass@host`: user and password; a user part alone is a token). The URLs without
 * userinfo are what is connected to and what messages name, so a password never reaches a log.
 */
export function natsUrlCredentials(servers: string[]): {
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
} {
  let creds: { user?: string; pass?: string; token?: string } | undefined;
  const bare = servers.map((s) => {
    const m = USERINFO.exec(s);
    if (!m) return s;
    if (!creds && m[2] !== '') {
      const colon = m[2].indexOf(':');
      const dec = (v: string): string => {
        try {
          return decodeURIComponent(v);
        } catch {
          return v;
        }
      };
      creds =
        colon < 0
          ? { token: dec(m[2]) }
          : { user: dec(m[2].slice(0, colon)), pass: dec(m[2].slice(colon + 1)) };
    }
    return m[1] + m[3];
  });
  return { servers: bare, ...creds };
}

function describe(cause: unknown): string {
  const msg = (cause as Error)?.message ?? String(cause);
  const code = (cause as { code?: string })?.code ?? '';
  if (cause instanceof AuthorizationError || /authoriz|authenticat/i.test(msg)) {
    return `the server refused the credentials (${msg}): check NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_NKEY_SEED_FILE or the user:password@ of NATS_URL`;
  }
  if (/CERT|SELF_SIGNED|TLS|SSL|ERR_OSSL/i.test(code) || /certificate|tls|ssl/i.test(msg)) {
    return `TLS failed (${msg}): check NATS_TLS_CA (the CA that signed the server's certificate) and NATS_TLS_CERT/NATS_TLS_KEY`;
  }
  return msg;
}

/**
 * Connects with the credentials and TLS of `opts` (reconnecting forever once connected). Rejects with
 * PORTAL_CONFIG_INVALID for bad options (no server, unreadable seed file) and PORTAL_BUS_UNAVAILABLE when the
 * server cannot be reached, refuses the credentials or fails the TLS handshake, the message naming which.
 */
export async function connectNats(
  opts: NatsConnectOptions,
  name: string,
): Promise<{ nc: NatsConnection; servers: string[] }> {
  const fromUrl = natsUrlCredentials(natsServerList(opts.servers));
  const servers = fromUrl.servers;
  const co: ConnectionOptions = {
    servers,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    timeout: opts.connectTimeoutMs ?? 5000,
    pingInterval: 5000,
    maxPingOut: 3,
  };
  if (opts.user !== undefined) {
    co.user = opts.user;
    co.pass = opts.pass ?? '';
  }
  if (opts.token !== undefined) co.token = opts.token;
  // credentials in the URL count when no option gives any (NATS_USER/NATS_PASSWORD, NATS_TOKEN, an NKey win)
  if (opts.user === undefined && opts.token === undefined && !opts.nkeySeedFile) {
    if (fromUrl.user !== undefined) {
      co.user = fromUrl.user;
      co.pass = fromUrl.pass ?? '';
    }
    if (fromUrl.token !== undefined) co.token = fromUrl.token;
  }
  if (opts.nkeySeedFile) {
    let seed: Uint8Array;
    try {
      seed = new TextEncoder().encode(readFileSync(opts.nkeySeedFile, 'utf8').trim());
    } catch (cause) {
      throw new PortalError('PORTAL_CONFIG_INVALID', `nkeySeedFile: cannot read ${opts.nkeySeedFile}`, {
        cause,
      });
    }
    co.authenticator = [nkeyAuthenticator(seed)];
  }
  if (opts.tls && (opts.tls.caFile || opts.tls.certFile || opts.tls.keyFile)) co.tls = { ...opts.tls };
  try {
    return { nc: await connect(co), servers };
  } catch (cause) {
    throw new PortalError(
      'PORTAL_BUS_UNAVAILABLE',
      `cannot connect to NATS at ${servers.join(',')}: ${describe(cause)}`,
      { cause },
    );
  }
}
