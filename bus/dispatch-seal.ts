import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { PortalError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { readSecretFile } from '../common/secret-file.js';
import { isRedactedUrl, redactUrl } from '../common/redact.js';
import type { DispatchBatch, DispatchItem } from '../common/vocabulary.js';
import { subjectTokenId, type Bus } from './types.js';

/**
 * Credentials never travel on NATS in clear. A dispatch batch (`portal.transfer.<id>.dispatch`, kept in JetStream)
 * names each chunk's source URL; when that URL holds credentials (userinfo, a token or signature in the query: what
 * redactUrl masks), the bus carries its redacted form instead, and the executor resolves the real one:
 * - in the process that published it (the `serve` / `fetch` whose scheduler dispatched): from this guard's memory
 *   of what it redacted, so no key is needed there;
 * - in another process (`portal executor`): from `sealedUrl`, the real URL sealed with AES-256-GCM under the key
 *   PORTAL_DISPATCH_KEY that the publisher and the executor are both given; without it the executor gets only the
 *   redacted URL and fails the chunk with a message naming the variable (it never sends `***` as a password).
 */

/** Environment variables that give the dispatch key: the key itself, or a file holding it. */
export const DISPATCH_KEY_ENV = {
  key: 'PORTAL_DISPATCH_KEY',
  file: 'PORTAL_DISPATCH_KEY_FILE',
} as const;

const AAD_PREFIX = 'portal-dispatch-v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Real URLs this process redacted, remembered per transfer and edge index (the oldest forgotten beyond this). */
const REMEMBERED = 65_536;
const DISPATCH_SUBJECT = /^portal\.transfer\.([^.]+)\.dispatch$/;

/** The 32-byte key in `text`: 64 hex digits or base64/base64url of 32 bytes; PORTAL_CONFIG_INVALID naming `from` otherwise. */
export function parseDispatchKey(text: string, from: string): Buffer {
  const t = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(t)
    ? Buffer.from(t, 'hex')
    : /^[A-Za-z0-9+/_-]{43}=?$/.test(t)
      ? Buffer.from(t, 'base64')
      : undefined;
  if (key?.length !== 32)
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `${from}: expected a 256-bit key, as 64 hex digits or 44 base64 characters (make one with \`openssl rand -hex 32\`)`,
    );
  return key;
}

/**
 * The dispatch key from PORTAL_DISPATCH_KEY or the file named by PORTAL_DISPATCH_KEY_FILE, or undefined when neither
 * is set; PORTAL_CONFIG_INVALID when both are, the file cannot be read or the key is malformed.
 */
export function dispatchKeyFromEnv(env: NodeJS.ProcessEnv = process.env): Buffer | undefined {
  const inline = env[DISPATCH_KEY_ENV.key]?.trim();
  const file = env[DISPATCH_KEY_ENV.file]?.trim();
  if (inline && file)
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `${DISPATCH_KEY_ENV.key} and ${DISPATCH_KEY_ENV.file} are both set: give one`,
    );
  if (inline) return parseDispatchKey(inline, DISPATCH_KEY_ENV.key);
  if (!file) return undefined;
  const text = readSecretFile(file, DISPATCH_KEY_ENV.file);
  return parseDispatchKey(text, `${DISPATCH_KEY_ENV.file} ${file}`);
}

const aad = (transferId: string, redacted: string): Buffer =>
  Buffer.from(`${AAD_PREFIX}\n${transferId}\n${redacted}`, 'utf8');

/** `secret` sealed with AES-256-GCM under `key`, bound to the transfer and the redacted URL it stands for. */
export function sealSecret(key: Buffer, secret: string, transferId: string, redacted: string): Uint8Array {
  const iv = randomBytes(IV_BYTES);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad(transferId, redacted));
  const body = Buffer.concat([c.update(secret, 'utf8'), c.final()]);
  return Buffer.concat([iv, body, c.getAuthTag()]);
}

/**
 * The secret sealSecret sealed, or undefined when `sealed` was not made under `key` for this transfer and redacted
 * URL (another key, another transfer, altered bytes).
 */
export function openSealed(
  key: Buffer,
  sealed: Uint8Array,
  transferId: string,
  redacted: string,
): string | undefined {
  if (sealed.length <= IV_BYTES + TAG_BYTES) return undefined;
  const b = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length);
  try {
    const d = createDecipheriv('aes-256-gcm', key, b.subarray(0, IV_BYTES));
    d.setAAD(aad(transferId, redacted));
    d.setAuthTag(b.subarray(b.length - TAG_BYTES));
    const text = Buffer.concat([d.update(b.subarray(IV_BYTES, b.length - TAG_BYTES)), d.final()]).toString(
      'utf8',
    );
    // the real URL must be the one the redacted URL stands for
    return redactUrl(text) === redacted ? text : undefined;
  } catch {
    return undefined; // wrong key or altered bytes: the executor reports the redacted URL it could not use
  }
}

/**
 * What an executor reports for a chunk whose source URL reached it redacted: it was not given the key to open the
 * sealed URL, or the publisher had none.
 */
export function unresolvedCredentialsDetail(url: string): string {
  return `source ${redactUrl(url)} holds credentials, which Portal never sends over NATS in clear, and this executor cannot resolve them: give the scheduling process (portal serve / fetch) and every portal executor the same ${DISPATCH_KEY_ENV.key} (or ${DISPATCH_KEY_ENV.file}), 32 random bytes, e.g. \`openssl rand -hex 32\``;
}

/** Options for guardDispatchSecrets. */
export interface DispatchGuardOptions {
  /** PORTAL_DISPATCH_KEY: seals credentials for executors in other processes; without it only this process resolves them. */
  key?: Buffer;
  logger?: Logger;
}

/**
 * `bus` (the NATS bus) with dispatch batches guarded: on publish, every source URL (and an edge-URL output) that
 * holds credentials is replaced by its redacted form, remembered in this process and, with `key`, sealed into
 * `sealedUrl` / `sealedOutput`; on delivery to a subscriber, redacted URLs are resolved back from that memory or by
 * opening the sealed form (left redacted when neither works: the executor then fails the chunk naming the key).
 * Other subjects pass unchanged. Never throws on a message it cannot resolve.
 */
export function guardDispatchSecrets<B extends Bus>(bus: B, opts: DispatchGuardOptions = {}): B {
  const { key } = opts;
  /** `transferId \0 edgeIndex` (or `\0output`) → the real URL this process redacted. */
  const real = new Map<string, string>();
  const remember = (k: string, url: string): void => {
    real.delete(k);
    real.set(k, url);
    if (real.size > REMEMBERED) real.delete(real.keys().next().value!);
  };
  let warned = false;

  const hide = (transferId: string, slot: string, url: string): { url: string; sealed?: Uint8Array } => {
    const redacted = redactUrl(url);
    if (redacted === url) return { url };
    remember(`${transferId}\u0000${slot}`, url);
    if (!key && !warned) {
      warned = true;
      opts.logger?.warn(
        { source: redacted },
        `a source holds credentials: dispatches over NATS carry it redacted, so only this process can fetch it (set ${DISPATCH_KEY_ENV.key} here and on every portal executor to let them share the work)`,
      );
    }
    return key ? { url: redacted, sealed: sealSecret(key, url, transferId, redacted) } : { url: redacted };
  };

  const reveal = (transferId: string, slot: string, url: string, sealed: Uint8Array | undefined): string => {
    if (!isRedactedUrl(url)) return url;
    const mine = real.get(`${transferId}\u0000${slot}`);
    if (mine !== undefined && redactUrl(mine) === url) return mine;
    if (key && sealed) return openSealed(key, sealed, transferId, url) ?? url;
    return url;
  };

  const guarded: Bus = {
    async publish<T>(subject: string, msg: T): Promise<void> {
      if (!DISPATCH_SUBJECT.test(subject)) return bus.publish(subject, msg);
      const b = msg as unknown as DispatchBatch;
      const out = hide(b.transferId, 'output', b.output);
      const items = b.items.map((it): DispatchItem => {
        const h = hide(b.transferId, String(it.edgeIndex), it.edgeUrl);
        if (h.url === it.edgeUrl) return it;
        return h.sealed ? { ...it, edgeUrl: h.url, sealedUrl: h.sealed } : { ...it, edgeUrl: h.url };
      });
      const sent: DispatchBatch = { ...b, output: out.url, items };
      if (out.sealed) sent.sealedOutput = out.sealed;
      return bus.publish(subject, sent as unknown as T);
    },
    subscribe(subject, handler, o) {
      const wrapped: typeof handler = (msg, s) => {
        const m = DISPATCH_SUBJECT.exec(s);
        const transferId = m ? subjectTokenId(m[1]) : undefined;
        if (transferId === undefined) return handler(msg, s);
        const b = msg as unknown as DispatchBatch;
        const items = b.items.map((it) => {
          const url = reveal(transferId, String(it.edgeIndex), it.edgeUrl, it.sealedUrl);
          const { sealedUrl: _drop, ...rest } = it;
          return url === it.edgeUrl && _drop === undefined ? it : { ...rest, edgeUrl: url };
        });
        const { sealedOutput, ...batch } = b;
        const output = reveal(transferId, 'output', b.output, sealedOutput);
        return handler({ ...batch, output, items } as unknown as typeof msg, s);
      };
      return bus.subscribe(subject, wrapped, o);
    },
    close: () => bus.close(),
  };
  // the rest of the bus's face (health, the NATS bus's stats…) is the bus's own
  return new Proxy(bus, {
    get(target, prop) {
      if (prop === 'publish' || prop === 'subscribe' || prop === 'close')
        return (guarded[prop] as (...a: unknown[]) => unknown).bind(guarded);
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
