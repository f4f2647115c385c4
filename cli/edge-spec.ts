import { readFileSync } from 'node:fs';
import { PortalError } from '../common/errors.js';
import { EdgeFlags } from '../scheduler/types.js';
import type { TransferEdge } from '../actors/types.js';

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
