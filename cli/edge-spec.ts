import { readFileSync } from 'node:fs';
import { PortalError } from '../common/errors.js';
import { EdgeFlags } from '../scheduler/types.js';
import type { TransferEdge } from '../actors/types.js';
import { redactUrl } from '../common/redact.js';
import { defaultHttpClient, type HttpClient } from '../transfer/index.js';

/**
 * Parses `--edge` values: `URL` or `URL#opt,opt…` with options `mirror` (plain HTTP Range
 * mirror), `metered`, `battery`, `max=N` (max parallel), `bw=BYTES_PER_S` (prior bandwidth),
 * `id=NAME`. Errors name the bad value.
 */
export function parseEdgeSpec(spec: string, index: number): TransferEdge {
  const [urlPart, optPart] = spec.split('#', 2);
  let url: URL;
  try {
    url = new URL(urlPart);
  } catch (cause) {
    throw new PortalError('PORTAL_CONFIG_INVALID', `--edge ${spec}: not a URL`, { cause });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new PortalError('PORTAL_CONFIG_INVALID', `--edge ${spec}: expected an http(s) URL`);
  const edge: TransferEdge = {
    id: `edge-${url.host}${url.pathname === '/' ? '' : url.pathname}`.replace(/[^A-Za-z0-9._-]/g, '_'),
    config: { url: urlPart.replace(/\/$/, ''), kind: 'portal', flags: 0, maxParallel: 8 },
  };
  for (const opt of (optPart ?? '').split(',').filter(Boolean)) {
    const [k, v] = opt.split('=', 2);
    const num = (): number => {
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0)
        throw new PortalError(
          'PORTAL_CONFIG_INVALID',
          `--edge ${spec}: ${k} expects a number ≥ 0, got ${JSON.stringify(v)}`,
        );
      return n;
    };
    switch (k) {
      case 'mirror':
        edge.config.kind = 'mirror';
        edge.holds = 'all';
        break;
      case 'metered':
        edge.config.flags |= EdgeFlags.METERED;
        break;
      case 'battery':
        edge.config.flags |= EdgeFlags.BATTERY_LOW;
        break;
      case 'max':
        edge.config.maxParallel = Math.floor(num());
        break;
      case 'bw':
        edge.config.bandwidthHint = num();
        break;
      case 'id':
        if (!v) throw new PortalError('PORTAL_CONFIG_INVALID', `--edge ${spec}: id expects a name`);
        edge.id = v;
        break;
      default:
        throw new PortalError(
          'PORTAL_CONFIG_INVALID',
          `--edge ${spec}: unknown option "${k}" (mirror, metered, battery, max=N, bw=N, id=NAME)`,
        );
    }
  }
  if (edge.config.kind === 'mirror') edge.config.url = urlPart;
  void index;
  return edge;
}

/** Reads an edges file: a JSON array of TransferEdge objects. */
export function readEdgesFile(path: string): TransferEdge[] {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new PortalError('PORTAL_CONFIG_INVALID', `--edges-file ${path}: cannot read JSON`, { cause });
  }
  if (!Array.isArray(v))
    throw new PortalError('PORTAL_CONFIG_INVALID', `--edges-file ${path}: expected a JSON array of edges`);
  return v.map((e: unknown, i) => {
    const edge = e as { id?: unknown; config?: { url?: unknown } } | null;
    if (
      typeof edge !== 'object' ||
      edge === null ||
      typeof edge.id !== 'string' ||
      typeof edge.config?.url !== 'string'
    ) {
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `--edges-file ${path}: edge [${i}] needs "id" and "config.url"`,
      );
    }
    return e as TransferEdge;
  });
}

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
    const why = (cause as { code?: string })?.code ?? (cause as Error)?.message;
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
