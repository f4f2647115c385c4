import { open, realpath } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Dispatcher } from 'undici';
import { PortalError } from '../common/errors.js';
import { redactUrl } from '../common/redact.js';
import {
  resolveManifestLimits,
  jsonSyntaxError,
  loadManifest,
  packManifest,
  parseManifest,
  refuseUnknownHashes,
  type ManifestLimits,
  type PackedManifest,
} from './manifest.js';
import {
  BINARY_MANIFEST_MAGIC,
  BINARY_MANIFEST_MEDIA_TYPE,
  isBinaryManifest,
  loadBinaryManifest,
  readBinaryManifest,
} from './manifest-binary.js';

/** Follows at most this many redirects when fetching a manifest by URL. */
const MAX_REDIRECTS = 5;
/** A manifest fetch with no answer (or no progress) after this long fails, ms. */
const FETCH_TIMEOUT_MS = 30_000;
/** A manifest's content id: the sha-256 of its binary encoding, 64 lowercase hex characters. */
export const MANIFEST_CID = /^[0-9a-f]{64}$/;

/**
 * PORTAL_MANIFEST_INVALID for a network failure of a manifest fetch (`err`: undici's or the socket's error), naming
 * `shown` and what happened: no answer within the timeout, the body stalled or broke after `received` bytes, or the
 * request failed (refused, reset, DNS, TLS…). A PortalError (a check of the bytes read) is answered as it is.
 */
function networkFailure(shown: string, err: unknown, timeoutMs: number, received?: number): PortalError {
  if (err instanceof PortalError) return err;
  const code = (err as { code?: unknown } | undefined)?.code;
  // not `instanceof Error`: an error of another realm (a vm context) is one too
  const m = (err as { message?: unknown } | undefined)?.message;
  const msg = typeof m === 'string' ? m : String(err);
  const cause = `${msg}${typeof code === 'string' && !msg.includes(code) ? `, ${code}` : ''}`;
  const secs = `${timeoutMs / 1000} s`;
  const what =
    code === 'UND_ERR_HEADERS_TIMEOUT'
      ? `no answer within ${secs}`
      : code === 'UND_ERR_BODY_TIMEOUT'
        ? `the body stalled: no bytes for ${secs} after ${received ?? 0} bytes`
        : received !== undefined
          ? `the body broke after ${received} bytes (${cause})`
          : `the request failed (${cause})`;
  return new PortalError('PORTAL_MANIFEST_INVALID', `manifest ${shown}: ${what}`, { cause: err });
}

/** GETs `url` following redirects; answers the 200 response, or throws PORTAL_MANIFEST_INVALID naming `shown`. */
async function get(url: string, shown: string, timeoutMs: number): Promise<Dispatcher.ResponseData> {
  const seen = new Set<string>([url]);
  for (let hop = 0; ; hop++) {
    let res;
    try {
      // undici's index (fetch, WebSocket, caches: ~110 files, ~0.1 s of CPU) loads only when a manifest is
      // fetched by URL, not in every process that imports this module (`portal fetch` of a local manifest)
      const { request } = await import('undici');
      res = await request(url, {
        method: 'GET',
        headers: { accept: `${BINARY_MANIFEST_MEDIA_TYPE}, application/json;q=0.9` },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
    } catch (err) {
      throw networkFailure(shown, err, timeoutMs);
    }
    // the body of an answer that is not the manifest is not needed: its failure does not matter
    const drop = (): Promise<void> => res.body.dump().catch(() => undefined);
    const location = res.headers.location;
    if (res.statusCode >= 300 && res.statusCode < 400 && typeof location === 'string') {
      await drop();
      const next = new URL(location, url).toString();
      if (seen.has(next))
        throw new PortalError(
          'PORTAL_MANIFEST_INVALID',
          `manifest ${shown}: redirect loop (HTTP ${res.statusCode} back to ${redactUrl(next)})`,
        );
      if (hop >= MAX_REDIRECTS)
        throw new PortalError(
          'PORTAL_MANIFEST_INVALID',
          `manifest ${shown}: too many redirects (more than ${MAX_REDIRECTS})`,
        );
      seen.add(next);
      url = next;
      continue;
    }
    if (res.statusCode !== 200) {
      await drop();
      throw new PortalError('PORTAL_MANIFEST_INVALID', `manifest ${shown}: HTTP ${res.statusCode}`);
    }
    return res;
  }
}

/** The body of `res` with its first part already taken (to sniff the magic) put back in front. */
async function* withFirst(
  first: Uint8Array | undefined,
  rest: AsyncIterator<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  if (first) yield first;
  for (let r = await rest.next(); !r.done; r = await rest.next()) yield r.value;
}

/**
 * Reads a manifest from an HTTP answer: the binary format when its content-type is BINARY_MANIFEST_MEDIA_TYPE or
 * its first bytes are the binary magic (streamed into the CID table), JSON otherwise (at most `maxJsonBytes`).
 */
async function readBody(
  res: Dispatcher.ResponseData,
  shown: string,
  limits: ManifestLimits | undefined,
  timeoutMs: number,
): Promise<{ manifest: PackedManifest; cid?: string }> {
  // every read of the body counts its bytes and turns a network failure (cut short, reset, stalled) into
  // PORTAL_MANIFEST_INVALID naming the URL, wherever the body is read (JSON, or the binary reader)
  const body = (res.body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  let received = 0;
  const it: AsyncIterator<Uint8Array> = {
    next: async () => {
      let r: IteratorResult<Uint8Array>;
      try {
        r = await body.next();
      } catch (err) {
        res.body.destroy();
        throw networkFailure(shown, err, timeoutMs, received);
      }
      if (!r.done) received += r.value.length;
      return r;
    },
  };
  const type = String(res.headers['content-type'] ?? '')
    .split(';')[0]
    .trim()
    .toLowerCase();
  let first: Uint8Array | undefined;
  // sniff at least the 8 magic bytes (a server may split anywhere)
  while (!first || first.length < BINARY_MANIFEST_MAGIC.length) {
    const r = await it.next();
    if (r.done) break;
    first = first ? Buffer.concat([first, r.value]) : r.value;
  }
  if (type === BINARY_MANIFEST_MEDIA_TYPE || (first && isBinaryManifest(first))) {
    try {
      const read = await readBinaryManifest(withFirst(first, it), {
        source: shown,
        ...(limits?.maxChunks !== undefined ? { maxChunks: limits.maxChunks } : {}),
      });
      return read;
    } finally {
      res.body.destroy();
    }
  }
  const maxBytes = resolveManifestLimits(limits).maxJsonBytes;
  const tooLarge = (what: string): PortalError =>
    new PortalError(
      'PORTAL_MANIFEST_TOO_LARGE',
      `manifest ${shown}: ${what} past the cap of ${maxBytes} bytes of JSON (limits.maxJsonBytes, default MAX_JSON_MANIFEST_BYTES: the most its chunk cap allows); a larger file takes the binary manifest`,
    );
  // refused by its declared length before a byte is read, else as soon as its bytes go past the cap
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    res.body.destroy();
    throw tooLarge(`its Content-Length of ${declared} bytes is`);
  }
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of withFirst(first, it)) {
    size += chunk.length;
    if (size > maxBytes) {
      res.body.destroy();
      throw tooLarge(`its body went`);
    }
    parts.push(Buffer.from(chunk));
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch (err) {
    throw new PortalError('PORTAL_MANIFEST_INVALID', `manifest ${shown}: ${jsonSyntaxError(err)}`);
  }
  return { manifest: packManifest(refuseUnknownHashes(parseManifest(json, limits), shown)) };
}

/** True when the file at `path` starts with the binary manifest's magic; false when it is shorter or unreadable. */
async function fileIsBinary(path: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return false; // loadManifest reports the fs error with its cause
  }
  try {
    const buf = Buffer.alloc(BINARY_MANIFEST_MAGIC.length);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return bytesRead === buf.length && isBinaryManifest(buf);
  } finally {
    await fh.close();
  }
}

/**
 * Where a manifest named by a local path may be read from. `root`: only a regular file whose real path (links
 * resolved) is inside this folder; `null`: no local path at all (http(s) only). Absent: any file this process
 * can read (the CLI, whose user names their own files).
 */
export interface ManifestRefOptions {
  localRoot?: string | null;
  /** An http(s) fetch with no answer, or a body with no progress, after this long fails (ms; default 30 000). */
  timeoutMs?: number;
}

/**
 * The real path of the local manifest `file` after the host's rule (ManifestRefOptions.localRoot), checked to be
 * a regular file. Throws PORTAL_INVALID_ARGUMENT when local paths are refused or the file resolves outside the
 * root, PORTAL_MANIFEST_INVALID when it cannot be resolved or is not a regular file (a device, FIFO or folder).
 */
async function localManifestPath(file: string, localRoot: string | null | undefined): Promise<string> {
  if (localRoot === null)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      'manifestUrl: this host reads manifests only from http(s):// URLs (start portal serve with --manifest-root to allow local files)',
    );
  let real = file;
  if (localRoot !== undefined) {
    try {
      real = await realpath(file);
    } catch (err) {
      throw new PortalError(
        'PORTAL_MANIFEST_INVALID',
        `cannot read manifest ${file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
      );
    }
    const root = await realpath(localRoot);
    const rel = path.relative(root, real);
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel))
      throw new PortalError(
        'PORTAL_INVALID_ARGUMENT',
        `manifestUrl: ${file} is outside this host's manifest root ${localRoot} (portal serve --manifest-root)`,
      );
  }
  // O_NONBLOCK: opening a FIFO must not wait for a writer; the fstat below refuses it
  const fh = await open(real, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK).catch(
    (err: NodeJS.ErrnoException) => {
      throw new PortalError(
        'PORTAL_MANIFEST_INVALID',
        `cannot read manifest ${file}: ${err.code ?? err.message}`,
      );
    },
  );
  try {
    if (!(await fh.stat()).isFile())
      throw new PortalError('PORTAL_MANIFEST_INVALID', `manifest ${file}: not a regular file`);
  } finally {
    await fh.close();
  }
  return real;
}

/** The path a `file://` URL names; PORTAL_INVALID_ARGUMENT naming manifestUrl for one with a host or bad escapes. */
function localFileOf(ref: string): string {
  try {
    return fileURLToPath(ref);
  } catch (cause) {
    let host = '';
    try {
      host = new URL(ref).hostname;
    } catch {
      // not a URL at all: said below without a host
    }
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      host
        ? `manifestUrl: a file:// URL must name a file of this host (file:///path), not one on host ${JSON.stringify(host)}`
        : `manifestUrl: ${JSON.stringify(redactUrl(ref))} is not a valid file:// URL`,
      { cause },
    );
  }
}

/**
 * Loads a manifest by reference, for `SchedulerActor.start`'s `manifestUrl`: an `http(s)://` URL (fetched with
 * undici, redirects followed), a `file://` URL, or an absolute path (a regular file; where `opts.localRoot` says,
 * see ManifestRefOptions). Either form is accepted:
 * the binary format (docs/manifest-format.md; detected by its content-type or its magic, streamed into a packed
 * CID table) or the JSON that `portal manifest` writes (at most `limits.maxJsonBytes`). Throws
 * PORTAL_INVALID_ARGUMENT for a reference of another form or a local file the host may not read,
 * PORTAL_MANIFEST_INVALID when it cannot be read or is not a manifest (the message names the cause and the URL
 * with its credentials and query redacted, never the bytes read), PORTAL_MANIFEST_TOO_LARGE over the limits.
 */
export async function loadManifestRef(
  ref: string,
  limits?: ManifestLimits,
  opts: ManifestRefOptions = {},
): Promise<PackedManifest> {
  if (typeof ref !== 'string' || ref.length === 0)
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'manifestUrl: expected a URL or an absolute path');
  if (ref.startsWith('file://') || ref.startsWith('/')) {
    const named = ref.startsWith('/') ? ref : localFileOf(ref);
    const file = await localManifestPath(named, opts.localRoot);
    if (await fileIsBinary(file))
      return (
        await loadBinaryManifest(file, limits?.maxChunks !== undefined ? { maxChunks: limits.maxChunks } : {})
      ).manifest;
    return packManifest(await loadManifest(file, limits));
  }
  if (!/^https?:\/\//i.test(ref))
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `manifestUrl: expected an http(s):// or file:// URL or an absolute path, got ${JSON.stringify(redactUrl(ref))}`,
    );
  const shown = redactUrl(ref);
  const timeoutMs = opts.timeoutMs ?? FETCH_TIMEOUT_MS;
  return (await readBody(await get(ref, shown, timeoutMs), shown, limits, timeoutMs)).manifest;
}

/**
 * Fetches the manifest whose content id is `cid` (sha-256 of its binary encoding) from the first of `edgeUrls`
 * that serves it at `<url>/v1/manifests/<cid>` (`portal edge`), in order, and checks its bytes against the id.
 * An edge that fails, answers something else or bytes of another id is skipped. Throws PORTAL_INVALID_ARGUMENT
 * for a malformed cid, and PORTAL_MANIFEST_INVALID listing every edge's failure when none served it.
 */
export async function fetchManifestByCid(
  cid: string,
  edgeUrls: readonly string[],
  limits?: ManifestLimits,
): Promise<PackedManifest> {
  if (typeof cid !== 'string' || !MANIFEST_CID.test(cid))
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `manifestCid: expected 64 lowercase hex characters (sha-256 of the binary manifest), got ${JSON.stringify(cid)}`,
    );
  const failures: string[] = [];
  for (const base of edgeUrls) {
    const url = `${base.replace(/\/+$/, '')}/v1/manifests/${cid}`;
    const shown = redactUrl(url);
    try {
      const read = await readBody(await get(url, shown, FETCH_TIMEOUT_MS), shown, limits, FETCH_TIMEOUT_MS);
      if (read.cid !== cid) {
        failures.push(
          read.cid === undefined
            ? `${shown}: not a binary manifest`
            : `${shown}: its bytes hash to ${read.cid}, not the requested id`,
        );
        continue;
      }
      return read.manifest;
    } catch (err) {
      if (err instanceof PortalError && err.code === 'PORTAL_MANIFEST_TOO_LARGE') throw err;
      failures.push((err as Error).message);
    }
  }
  throw new PortalError(
    'PORTAL_MANIFEST_INVALID',
    `manifest ${cid} is served by none of the ${edgeUrls.length} edge(s): ${failures.join('; ') || 'no edge to ask'}`,
  );
}
