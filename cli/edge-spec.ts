import { readFileSync } from 'node:fs';
import { PortalError } from '../common/errors.js';
import { httpUrl } from '../common/source-url.js';
import { redactUrl } from '../common/redact.js';
import { EdgeFlags } from '../scheduler/types.js';
import type { TransferEdge } from '../actors/types.js';
import { repeatedEdgeId } from '../actors/edge-ids.js';
import { actorIdProblem } from '../runtime/state-keys.js';
import { isBase64 } from '../common/base64.js';

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

/** The fields of an edges-file entry (TransferEdge) and of its `config` (EdgeConfig, api/schemas/EdgeActor.json). */
const EDGE_FIELDS = new Set(['id', 'config', 'holds', 'announced']);
const CONFIG_FIELDS = new Set([
  'url',
  'kind',
  'flags',
  'maxParallel',
  'bandwidthHint',
  'rttHint',
  'location',
  'accepts',
]);

/** The problems of one edges-file entry, each `<field>: <what is wrong>` (every one, not the first). */
function edgeProblems(e: unknown): string[] {
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return ['expected an object'];
  const edge = e as Record<string, unknown>;
  const out: string[] = [];
  const got = (v: unknown): string => (v === undefined ? 'nothing' : JSON.stringify(v));
  for (const k of Object.keys(edge)) if (!EDGE_FIELDS.has(k)) out.push(`${k}: is not a known field`);
  if (edge.id === undefined) out.push('id: is required');
  else if (typeof edge.id !== 'string') out.push(`id: expected a string, got ${got(edge.id)}`);
  else {
    const problem = actorIdProblem(edge.id);
    if (problem !== undefined) out.push(`id: ${problem}`);
  }
  const config = edge.config;
  if (config === undefined) out.push('config: is required');
  else if (typeof config !== 'object' || config === null || Array.isArray(config))
    out.push(`config: expected an object, got ${got(config)}`);
  else {
    const c = config as Record<string, unknown>;
    for (const k of Object.keys(c)) if (!CONFIG_FIELDS.has(k)) out.push(`config.${k}: is not a known field`);
    if (c.url === undefined) out.push('config.url: is required');
    else if (httpUrl(c.url) === undefined)
      out.push(
        `config.url: expected an http(s) URL, got ${typeof c.url === 'string' ? JSON.stringify(redactUrl(c.url)) : got(c.url)}`,
      );
    if (c.kind === undefined) out.push('config.kind: is required ("portal" or "mirror")');
    else if (c.kind !== 'portal' && c.kind !== 'mirror')
      out.push(`config.kind: expected "portal" or "mirror", got ${got(c.kind)}`);
    const integer = (k: string, max: number, required: boolean): void => {
      const v = c[k];
      if (v === undefined) {
        if (required) out.push(`config.${k}: is required (an integer ≥ 0)`);
      } else if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max)
        out.push(
          `config.${k}: expected an integer ≥ 0${max < Infinity ? ` and ≤ ${max}` : ''}, got ${got(v)}`,
        );
    };
    // flags may be left out (no flags), as before; the actor API's schema requires it
    integer('flags', 0xffffffff, false);
    integer('maxParallel', Infinity, true);
  }
  const holds = edge.holds;
  if (holds !== undefined && holds !== 'all' && (typeof holds !== 'string' || !isBase64(holds)))
    out.push(`holds: expected "all" or a base64 bitmap (bit i = chunk i), got ${got(holds)}`);
  if (edge.announced !== undefined && typeof edge.announced !== 'boolean')
    out.push(`announced: expected true or false, got ${got(edge.announced)}`);
  return out;
}

/**
 * Reads an edges file: a JSON array of TransferEdge objects (api/schemas: TransferEdge). Every problem of every
 * entry is refused at once (PORTAL_CONFIG_INVALID, exit 2), each line naming the file, the entry (index and id)
 * and the field: `--edges-file ef.json: edge [0] "a": config.maxParallel: is required (an integer ≥ 0)`.
 */
export function readEdgesFile(path: string): TransferEdge[] {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new PortalError('PORTAL_CONFIG_INVALID', `--edges-file ${path}: cannot read JSON`, { cause });
  }
  if (!Array.isArray(v))
    throw new PortalError('PORTAL_CONFIG_INVALID', `--edges-file ${path}: expected a JSON array of edges`);
  const problems = v.flatMap((e: unknown, i) =>
    edgeProblems(e).map((p) => `${edgeFileEntry(path, i, e)}: ${p}`),
  );
  if (problems.length > 0) throw new PortalError('PORTAL_CONFIG_INVALID', problems.join('\n'));
  return v as TransferEdge[];
}

/** How an error names entry `i` of edges file `path`: `--edges-file <path>: edge [i] "<id>"` (the id when it is one). */
export function edgeFileEntry(path: string, i: number, e: unknown): string {
  const id = (e as { id?: unknown } | null)?.id;
  const named = typeof id === 'string' && actorIdProblem(id) === undefined;
  return `--edges-file ${path}: edge [${i}]${named ? ` ${JSON.stringify(id)}` : ''}`;
}

/**
 * Refuses (PORTAL_CONFIG_INVALID) a given edge whose `holds` bitmap is shorter than the manifest's chunk count,
 * naming where it was given (`where[i]`) and the field; the scheduler said only "bitmap: expected at least N bits".
 */
export function checkGivenHoldings(
  edges: readonly TransferEdge[],
  where: readonly string[],
  chunks: number,
): void {
  edges.forEach((e, i) => {
    if (typeof e.holds !== 'string' || e.holds === 'all') return;
    const bytes = Buffer.from(e.holds, 'base64').length;
    if (bytes * 8 < chunks)
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `${where[i]}: holds: a base64 bitmap of at least ${chunks} bits (${Math.ceil(chunks / 8)} bytes) for the manifest's ${chunks} chunks, got ${bytes} byte${bytes === 1 ? '' : 's'}`,
      );
  });
}
