import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { PortalError } from '../common/errors.js';
import { redactUrl } from '../common/redact.js';
import {
  DEFAULT_MANIFEST_LIMITS,
  loadManifest,
  parseManifest,
  type Manifest,
  type ManifestLimits,
} from './manifest.js';

/** Follows at most this many redirects when fetching a manifest by URL. */
const MAX_REDIRECTS = 5;
/** A manifest fetch with no answer (or no progress) after this long fails, ms. */
const FETCH_TIMEOUT_MS = 30_000;

/**
 * Loads a manifest by reference, for `SchedulerActor.start`'s `manifestUrl`: an `http(s)://` URL (fetched with
 * undici, at most `limits.maxJsonBytes` of JSON, redirects followed), a `file://` URL, or an absolute path the
 * host can read. The manifest JSON is the same as `portal manifest` writes. Throws PORTAL_INVALID_ARGUMENT for a
 * reference of another form, PORTAL_MANIFEST_INVALID when it cannot be read or is not a manifest (the message
 * names the URL with its credentials and query redacted), PORTAL_MANIFEST_TOO_LARGE over the limits.
 */
export async function loadManifestRef(ref: string, limits?: ManifestLimits): Promise<Manifest> {
  if (typeof ref !== 'string' || ref.length === 0)
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'manifestUrl: expected a URL or an absolute path');
  if (ref.startsWith('file://')) return loadManifest(fileURLToPath(ref), limits);
  if (ref.startsWith('/')) return loadManifest(ref, limits);
  if (!/^https?:\/\//i.test(ref))
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `manifestUrl: expected an http(s):// or file:// URL or an absolute path, got ${JSON.stringify(redactUrl(ref))}`,
    );
  const maxBytes = limits?.maxJsonBytes ?? DEFAULT_MANIFEST_LIMITS.maxJsonBytes;
  const shown = redactUrl(ref);
  let url = ref;
  for (let hop = 0; ; hop++) {
    let res;
    try {
      res = await request(url, {
        method: 'GET',
        headersTimeout: FETCH_TIMEOUT_MS,
        bodyTimeout: FETCH_TIMEOUT_MS,
      });
    } catch (err) {
      throw new PortalError('PORTAL_MANIFEST_INVALID', `manifest ${shown}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const location = res.headers.location;
    if (
      res.statusCode >= 300 &&
      res.statusCode < 400 &&
      typeof location === 'string' &&
      hop < MAX_REDIRECTS
    ) {
      await res.body.dump();
      url = new URL(location, url).toString();
      continue;
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new PortalError('PORTAL_MANIFEST_INVALID', `manifest ${shown}: HTTP ${res.statusCode}`);
    }
    const parts: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) {
        res.body.destroy();
        throw new PortalError(
          'PORTAL_MANIFEST_TOO_LARGE',
          `manifest ${shown}: more than limits.maxJsonBytes (${maxBytes}) bytes of JSON`,
        );
      }
      parts.push(chunk);
    }
    let json: unknown;
    try {
      json = JSON.parse(Buffer.concat(parts).toString('utf8'));
    } catch (err) {
      throw new PortalError(
        'PORTAL_MANIFEST_INVALID',
        `manifest ${shown}: not JSON (${(err as Error).message})`,
        {
          cause: err,
        },
      );
    }
    return parseManifest(json, limits);
  }
}
