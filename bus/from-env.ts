import { PortalError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { logHandlerError } from './handler-errors.js';
import { dispatchKeyFromEnv, guardDispatchSecrets } from './dispatch-seal.js';
import { createMemoryBus } from './memory-bus.js';
import type { NatsBusOptions } from './nats-bus.js';
import type { NatsConnectOptions } from './nats-connect.js';
import type { Bus } from './types.js';

/** Environment variables that select and configure the NATS bus. */
export const NATS_ENV = {
  url: 'NATS_URL',
  user: 'NATS_USER',
  pass: 'NATS_PASSWORD',
  token: 'NATS_TOKEN',
  nkeySeedFile: 'NATS_NKEY_SEED_FILE',
  tlsCa: 'NATS_TLS_CA',
  tlsCert: 'NATS_TLS_CERT',
  tlsKey: 'NATS_TLS_KEY',
  /** Bounds on JetStream publishes waiting for NATS (NatsBusOptions.maxPendingPublishes / maxPendingPublishBytes). */
  maxPendingPublishes: 'PORTAL_NATS_MAX_PENDING_PUBLISHES',
  maxPendingPublishBytes: 'PORTAL_NATS_MAX_PENDING_PUBLISH_BYTES',
} as const;

/** The integer ≥ 1 in env var `name`, or undefined when it is unset or empty; PORTAL_CONFIG_INVALID otherwise. */
function positiveIntFromEnv(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = env[name]?.trim();
  if (!text) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1)
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `${name}: expected an integer ≥ 1, got ${JSON.stringify(text)}`,
    );
  return n;
}

/**
 * NATS connection options (server, credentials, TLS) from the environment, or undefined when NATS_URL is not
 * set; both the bus (createNatsBus) and the pausable pull client (createJetStreamPullClient) take them.
 */
export function natsOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): NatsConnectOptions | undefined {
  const url = env[NATS_ENV.url]?.trim();
  if (!url) return undefined;
  const o: NatsConnectOptions = { servers: url };
  if (env[NATS_ENV.user] !== undefined) {
    o.user = env[NATS_ENV.user];
    o.pass = env[NATS_ENV.pass] ?? '';
  }
  if (env[NATS_ENV.token]) o.token = env[NATS_ENV.token];
  if (env[NATS_ENV.nkeySeedFile]) o.nkeySeedFile = env[NATS_ENV.nkeySeedFile];
  const tls = {
    caFile: env[NATS_ENV.tlsCa] || undefined,
    certFile: env[NATS_ENV.tlsCert] || undefined,
    keyFile: env[NATS_ENV.tlsKey] || undefined,
  };
  if (tls.caFile || tls.certFile || tls.keyFile) {
    if (!tls.certFile !== !tls.keyFile)
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `${NATS_ENV.tlsCert} and ${NATS_ENV.tlsKey} go together`,
      );
    o.tls = tls;
  }
  return o;
}

/**
 * The bus the environment asks for: the NATS bus when NATS_URL is set (credentials from NATS_USER/NATS_PASSWORD,
 * NATS_TOKEN, NATS_NKEY_SEED_FILE, TLS from NATS_TLS_CA/CERT/KEY, the bound on publishes waiting for it from
 * PORTAL_NATS_MAX_PENDING_PUBLISHES / PORTAL_NATS_MAX_PENDING_PUBLISH_BYTES), its dispatches guarded by
 * guardDispatchSecrets (the key from PORTAL_DISPATCH_KEY / PORTAL_DISPATCH_KEY_FILE), else the in-process bus. Rejects as
 * createNatsBus does (PORTAL_BUS_UNAVAILABLE, PORTAL_CONFIG_INVALID).
 */
export async function createBusFromEnv(
  o: {
    env?: NodeJS.ProcessEnv;
    logger?: Logger;
    name?: string;
    /** NATS only: initial connect timeout, ms (default: createNatsBus's). */
    connectTimeoutMs?: number;
    /** NATS only: called with the code of every message the bus dead-letters (the in-process bus has none). */
    onDeadLetter?: (code: string) => void;
  } = {},
): Promise<Bus> {
  const env = o.env ?? process.env;
  const nats = natsOptionsFromEnv(env);
  if (!nats)
    return createMemoryBus({
      onError: o.logger ? (err, subject) => logHandlerError(o.logger!, err, subject) : undefined,
    });
  // read before connecting: a malformed key is a configuration error, not a late surprise
  const key = dispatchKeyFromEnv(env);
  // Loaded only when asked for, so the embedded default never loads the NATS client.
  const { createNatsBus } = await import('./nats-bus.js');
  const onDead = o.onDeadLetter;
  const bus = await createNatsBus({
    ...nats,
    logger: o.logger,
    name: o.name,
    ...(o.connectTimeoutMs !== undefined ? { connectTimeoutMs: o.connectTimeoutMs } : {}),
    ...(onDead ? { onDeadLetter: (d: { code: string }) => onDead(d.code) } : {}),
    maxPendingPublishes: positiveIntFromEnv(env, NATS_ENV.maxPendingPublishes),
    maxPendingPublishBytes: positiveIntFromEnv(env, NATS_ENV.maxPendingPublishBytes),
  });
  // credentials in source URLs never go on NATS in clear (dispatch-seal.ts)
  return guardDispatchSecrets(bus, { key, logger: o.logger });
}

/** Connects the NATS bus (see nats-bus.ts createNatsBus), loading the NATS client on first use. */
export async function createNatsBus(opts: NatsBusOptions): Promise<import('./nats-bus.js').NatsBus> {
  const m = await import('./nats-bus.js');
  return m.createNatsBus(opts);
}
