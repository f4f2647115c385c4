import { readFileSync } from 'node:fs';
import { PortalError } from '../common/errors.js';
import { httpUrl } from '../common/source-url.js';
import { EdgeFlags } from '../scheduler/types.js';
import type { TransferEdge } from '../actors/types.js';
import { repeatedEdgeId } from '../actors/edge-ids.js';
import { actorIdProblem } from '../runtime/state-keys.js';

/**
 * Throws PORTAL_CONFIG_INVALID `<what>: expected …, got …` unless `value` is an actor id (checkActorId's rule: 1 to
 * MAX_ACTOR_ID_BYTES bytes of UTF-8): the ids the CLI takes (transfer ids, edge ids) become actor ids and NATS
 * subject tokens, so an over-long one is refused where it is given, not at its first publish.
 */
export function checkIdFlag(value: string, what: string): void {
  const problem = actorIdProblem(value);
  if (problem !== undefined) throw new PortalError('PORTAL_CONFIG_INVALID', `${what}: ${problem}`);
}

/**
 * The most requests in flight to one edge `max=N` accepts; `max=0` is "no limit" (EdgeConfig.maxParallel 0, the
 * transfer's adaptive limit alone decides, up to actors/parallel-limit.ts NO_LIMIT_PARALLEL, the same number).
 */
export const MAX_PARALLEL = 1024;

/**
 * Parses `--edge` values: `URL` or `URL#opt,opt…` with options `mirror` (plain HTTP Range
 * mirror), `metered`, `battery`, `max=N` (max parallel, 0..MAX_PARALLEL, 0 = no limit), `bw=BYTES_PER_S` (prior bandwidth, ≥ 1),
 * `id=NAME`. Errors name the bad value.
 */
export function parseEdgeSpec(spec: string, index: number): TransferEdge {
  const [given, optPart] = spec.split('#', 2);
  // HTTP://… is http://… (RFC 3986 §3.1); an unparsable one is refused below naming the spec
  const urlPart = httpUrl(given) ?? given;
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
    /** `v` as a number in [min, max] (an integer when `integer`), else a refusal naming the option and the range. */
    const num = (min: number, max: number, what: string, integer = false): number => {
      const n = v === undefined || v.trim() === '' ? NaN : Number(v);
      if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n)))
        throw new PortalError(
          'PORTAL_CONFIG_INVALID',
          `--edge ${spec}: ${k} expects ${integer ? 'an integer' : 'a number'} from ${min} to ${max} (${what}), got ${JSON.stringify(v ?? '')}`,
        );
      return n;
    };
    if (v !== undefined && (k === 'mirror' || k === 'metered' || k === 'battery'))
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `--edge ${spec}: ${k} takes no value, got ${JSON.stringify(v)}`,
      );
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
        edge.config.maxParallel = num(
          0,
          MAX_PARALLEL,
          'requests in flight to this edge at once, 0 = no limit',
          true,
        );
        break;
      case 'bw':
        edge.config.bandwidthHint = num(1, Number.MAX_SAFE_INTEGER, 'its prior bandwidth in bytes/s');
        break;
      case 'id':
        if (!v) throw new PortalError('PORTAL_CONFIG_INVALID', `--edge ${spec}: id expects a name`);
        checkIdFlag(v, `--edge ${spec}: id`);
        edge.id = v;
        break;
      default:
        throw new PortalError(
          'PORTAL_CONFIG_INVALID',
          `--edge ${spec}: unknown option "${k}" (mirror, metered, battery, max=0..${MAX_PARALLEL}, bw=N, id=NAME)`,
        );
    }
  }
  if (edge.config.kind === 'mirror') edge.config.url = urlPart;
  void index;
  return edge;
}

/**
 * Refuses (PORTAL_CONFIG_INVALID, exit 2) two edges of one fetch with one id: an edge id names one edge (one
 * EdgeActor), so the second's URL replaced the first's for both and the first was never asked (trial #3). `where[i]`
 * names where edge i was given (`--edge SPEC`, `--edges-file F edge [i]`).
 */
export function checkUniqueEdgeIds(edges: readonly TransferEdge[], where: readonly string[]): void {
  const r = repeatedEdgeId(edges);
  if (r)
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `edge id "${r.id}" is given twice (${where[r.first]} and ${where[r.at]}): an edge id names one edge; give each source its own id (--edge URL#id=NAME, "id" in --edges-file)`,
    );
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
    checkIdFlag(edge.id, `--edges-file ${path}: edge [${i}] id`);
    return e as TransferEdge;
  });
}
