import { PortalError, isPortalError } from '../common/errors.js';
import { redactUrl } from '../common/redact.js';
import { defaultHttpClient, type HttpClient } from './http-client.js';
import { transportFault } from './http-fetch.js';

/** Bytes of a /v1/have answer for `chunks` chunks: the base64 bitmap plus room for the JSON around it. */
export function haveAnswerLimit(chunks: number): number {
  return Math.ceil(Math.ceil(chunks / 8) / 3) * 4 + 4096;
}

/**
 * Asks a Portal edge which chunks of `manifestId` it holds (GET /v1/have/<id>, over the process's undici
 * client: its CA, proxy and headers); returns the base64 bitmap. The whole answer must arrive within
 * `timeoutMs` (a slow drip is cut off, not only a silent socket) and be at most `maxBytes` long (default:
 * the size a bitmap of 2^24 chunks needs). Rejects with PORTAL_EDGE_TIMEOUT, PORTAL_EDGE_UNREACHABLE or
 * PORTAL_EDGE_HTTP naming the edge (without its secrets).
 */
export async function fetchHave(
  edgeUrl: string,
  manifestId: string,
  timeoutMs = 5000,
  maxBytes = haveAnswerLimit(2 ** 24),
  client: HttpClient = defaultHttpClient(),
): Promise<string> {
  const edge = redactUrl(edgeUrl);
  // one deadline for the whole answer, headers and body
  const signal = AbortSignal.timeout(timeoutMs);
  const timedOut = (): PortalError =>
    new PortalError(
      'PORTAL_EDGE_TIMEOUT',
      `edge ${edge} did not send the have bitmap of ${manifestId} within ${timeoutMs} ms`,
    );
  let r;
  try {
    r = await client.send(new URL(`/v1/have/${manifestId}`, edgeUrl).href, { signal });
  } catch (cause) {
    if (signal.aborted) throw timedOut();
    // the phrase a chunk fetch gives the same failure: `connection refused`, `TLS: UNABLE_TO_VERIFY_… (…)`
    const why = transportFault(cause, 0, false, edgeUrl).what;
    throw new PortalError('PORTAL_EDGE_UNREACHABLE', `edge ${edge} is unreachable (${why})`, { cause });
  }
  if (r.statusCode !== 200) {
    await r.body.dump().catch(() => undefined);
    throw new PortalError(
      'PORTAL_EDGE_HTTP',
      `edge ${edge} answered ${r.statusCode} for the have bitmap of ${manifestId}`,
    );
  }
  const declared = Number(r.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    r.body.on('error', () => undefined).destroy();
    throw new PortalError(
      'PORTAL_EDGE_HTTP',
      `edge ${edge} announced a have answer of ${declared} bytes, more than the ${maxBytes} a bitmap needs`,
    );
  }
  const parts: Buffer[] = [];
  let size = 0;
  try {
    for await (const d of r.body as AsyncIterable<Buffer>) {
      size += d.length;
      if (size > maxBytes) {
        r.body.on('error', () => undefined).destroy();
        throw new PortalError(
          'PORTAL_EDGE_HTTP',
          `edge ${edge} sent more than ${maxBytes} bytes for the have bitmap of ${manifestId}`,
        );
      }
      parts.push(d);
    }
  } catch (cause) {
    if (cause instanceof PortalError) throw cause;
    if (signal.aborted) throw timedOut();
    throw new PortalError('PORTAL_EDGE_UNREACHABLE', `edge ${edge} broke off the have bitmap`, { cause });
  }
  let body: { bitmap?: unknown };
  try {
    body = JSON.parse(Buffer.concat(parts).toString('utf8')) as { bitmap?: unknown };
  } catch (cause) {
    throw new PortalError('PORTAL_EDGE_HTTP', `edge ${edge} sent a malformed have bitmap`, { cause });
  }
  if (typeof body?.bitmap !== 'string')
    throw new PortalError('PORTAL_EDGE_HTTP', `edge ${edge} sent a malformed have bitmap (no bitmap field)`);
  return body.bitmap;
}

/**
 * Which chunks of a manifest of `chunks` chunks a `portal` edge holds, for a transfer that did not say (`holds`
 * omitted on the actor API): its `/v1/have/<manifestId>` bitmap (fetchHave, `timeoutMs` for the whole answer),
 * base64 as TransferEdge.holds takes it; `'all'` when the edge does not answer it — a plain HTTP server (404, or
 * another status), no answer in time, unreachable, an answer that is no bitmap or one shorter than the manifest —
 * as before: the scheduler then asks it for any chunk and fails a 404 over to another source. `onFallback` hears
 * why (the error names the edge without its credentials).
 */
export async function askHoldings(
  edgeUrl: string,
  manifestId: string,
  chunks: number,
  opts: { timeoutMs?: number; client?: HttpClient; onFallback?: (err: Error) => void } = {},
): Promise<string> {
  try {
    const bitmap = await fetchHave(
      edgeUrl,
      manifestId,
      opts.timeoutMs ?? 3000,
      haveAnswerLimit(chunks),
      opts.client,
    );
    if (Buffer.from(bitmap, 'base64').length * 8 < chunks)
      throw new PortalError(
        'PORTAL_EDGE_HTTP',
        `edge ${redactUrl(edgeUrl)} sent a have bitmap of fewer than ${chunks} bits for ${manifestId}`,
      );
    return bitmap;
  } catch (err) {
    if (!isPortalError(err)) throw err;
    opts.onFallback?.(err);
    return 'all';
  }
}
