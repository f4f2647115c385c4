import { readFile } from 'node:fs/promises';
import { PortalError } from '../../common/errors.js';

/** Task types of the coord demo: the kernels a demo peer really runs (cli/coord/kernels.ts). */
export const DEMO_TYPES = ['render', 'physics', 'audio'] as const;
/** One of DEMO_TYPES. */
export type DemoType = (typeof DEMO_TYPES)[number];

/**
 * A simulated peer's true behaviour: work multiplier per task type it runs (1 = the reference
 * speed; a type left out is one the peer does not run), slowdown at peak hours, extra slowdown per
 * queued task, and failures under overload or at random. The peer process really does the task's
 * computation and holds it for EMULATION_PACE × multiplier × its CPU time; the oracle policy is
 * given these numbers. The JSON form is documented in docs/coord-peers.md.
 */
export interface PeerProfile {
  id: string;
  /** Latency the peer advertises, ms: all the heuristic knows about it. */
  latencyHintMs: number;
  maxConcurrent: number;
  /** Work multiplier per task type; a type absent here is one the peer does not run. */
  speed: Partial<Record<DemoType, number>>;
  /** [from, to) hours of day (0..24) where the peer is slower by peakFactor; from > to wraps past midnight; equal = never. */
  peakHours: [number, number];
  peakFactor: number;
  /** Work multiplier grows by this for every task queued behind the running one (thermal/memory pressure). */
  loadFactor: number;
  /** An attempt arriving with at least this many tasks already queued or running fails with failProb. */
  overloadAt: number;
  failProb: number;
  /** Probability that any attempt fails, whatever the load (a flaky link or host); default 0. */
  baseFailProb?: number;
  /**
   * Episodes in which other tenants' work shares the peer (a noisy neighbour), independent of the
   * hour and of the coordinator's own tasks: the peer spends `share` of the time in them, each
   * lasting `meanMs` on average (exponentially distributed, in wall time), and a task that starts
   * inside one is `factor` times slower. The peer's telemetry shows them (CPU pressure 1 inside,
   * 0 outside); nothing else does.
   */
  contention?: Contention;
}

/** See PeerProfile.contention. */
export interface Contention {
  share: number;
  factor: number;
  meanMs: number;
}

/** Share of each kind of job in a generated workload (normalized; frames are split into render tiles). */
export interface WorkloadMix {
  frame: number;
  physics: number;
  audio: number;
}

/** A peers file: the profiles, the job mix and the emulation pace (docs/coord-peers.md). */
export interface PeerSet {
  /** Where it came from: a file path, or 'built-in demo'. */
  source: string;
  description?: string;
  peers: PeerProfile[];
  mix: WorkloadMix;
  /** See EMULATION_PACE. */
  pace: number;
}

/** Four heterogeneous peers: the one that advertises the best latency is the one that fails under load. */
export const DEMO_PEERS: readonly PeerProfile[] = [
  {
    id: 'gpu_beast',
    latencyHintMs: 60,
    maxConcurrent: 4,
    speed: { render: 1, physics: 3, audio: 2 },
    peakHours: [0, 0],
    peakFactor: 1,
    loadFactor: 0,
    overloadAt: 99,
    failProb: 0,
  },
  {
    id: 'cpu_beast',
    latencyHintMs: 50,
    maxConcurrent: 4,
    speed: { render: 3, physics: 1, audio: 1 },
    peakHours: [0, 0],
    peakFactor: 1,
    loadFactor: 0,
    overloadAt: 99,
    failProb: 0,
  },
  {
    id: 'balanced',
    latencyHintMs: 10,
    maxConcurrent: 4,
    speed: { render: 1.6, physics: 1.6, audio: 1.6 },
    peakHours: [18, 22],
    peakFactor: 2,
    loadFactor: 0.3,
    overloadAt: 3,
    failProb: 0.2,
  },
  {
    id: 'unstable',
    latencyHintMs: 5,
    maxConcurrent: 4,
    speed: { render: 2.5, physics: 2.5, audio: 2.5 },
    peakHours: [0, 0],
    peakFactor: 1,
    loadFactor: 0,
    overloadAt: 1,
    failProb: 0.4,
  },
];

/** The demo's job mix: 40% frames (4 render tiles each), 30% physics, 30% audio. */
export const DEMO_MIX: Readonly<WorkloadMix> = { frame: 0.4, physics: 0.3, audio: 0.3 };

/**
 * How much slower than one core of the machine running the demo the fastest emulated peer is: a
 * peer holds a task for EMULATION_PACE × multiplier × the CPU time its real computation took.
 * Above 1 so that four peers sharing two cores still run at their own speeds (see peer.ts); a
 * peers file with more peers can raise it (`pace`).
 */
export const EMULATION_PACE = 2;

/** The built-in demo workload as a PeerSet. */
export function demoPeerSet(): PeerSet {
  return {
    source: 'built-in demo',
    peers: structuredClone([...DEMO_PEERS]),
    mix: { ...DEMO_MIX },
    pace: EMULATION_PACE,
  };
}

/** True when `hour` (0..23) lies in the profile's peak hours (a range with from > to wraps past midnight). */
export function inPeak(p: PeerProfile, hour: number): boolean {
  const [a, b] = p.peakHours;
  const h = ((hour % 24) + 24) % 24;
  return a < b ? h >= a && h < b : a > b ? h >= a || h < b : false;
}

/** True when the profile runs tasks of `type`. */
export function runsType(p: PeerProfile, type: string): boolean {
  return typeof (p.speed as Record<string, number | undefined>)[type] === 'number';
}

/**
 * The true work multiplier of a task on a peer at an hour with `queued` tasks ahead of it, started
 * inside a contention episode or not; throws PORTAL_INVALID_ARGUMENT for a type the peer does not run.
 */
export function trueMultiplier(
  p: PeerProfile,
  type: DemoType,
  hour: number,
  queued: number,
  contended = false,
): number {
  const s = p.speed[type];
  if (s === undefined)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `type: peer ${p.id} does not run ${JSON.stringify(type)}`,
    );
  return (
    s *
    (inPeak(p, hour) ? p.peakFactor : 1) *
    (1 + p.loadFactor * queued) *
    (contended && p.contention ? p.contention.factor : 1)
  );
}

/** The true failure probability of an attempt arriving at a peer with `load` tasks queued or running. */
export function trueFailureProb(p: PeerProfile, load: number): number {
  const over = load >= p.overloadAt ? p.failProb : 0;
  return 1 - (1 - (p.baseFailProb ?? 0)) * (1 - over);
}

// ---- the peers file ------------------------------------------------------------------------------

type Rec = Record<string, unknown>;
const show = (v: unknown): string => (v === undefined ? 'nothing' : (JSON.stringify(v) ?? typeof v));

/** Builds the PORTAL_CONFIG_INVALID error of a peers file, naming the file and the field. */
function invalid(source: string, field: string, expectation: string, got: unknown): PortalError {
  return new PortalError(
    'PORTAL_CONFIG_INVALID',
    `peers file ${source}: ${field}: expected ${expectation}, got ${show(got)}`,
  );
}

function onlyKeys(source: string, at: string, o: Rec, allowed: readonly string[]): void {
  for (const k of Object.keys(o))
    if (!allowed.includes(k))
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `peers file ${source}: ${at}${at ? '.' : ''}${k}: unknown field (known: ${allowed.join(', ')})`,
      );
}

function num(
  source: string,
  field: string,
  v: unknown,
  opts: { min?: number; max?: number; above?: number; integer?: boolean; fallback?: number },
): number {
  if (v === undefined && opts.fallback !== undefined) return opts.fallback;
  const bounds = [
    opts.above !== undefined ? `> ${opts.above}` : '',
    opts.min !== undefined ? `≥ ${opts.min}` : '',
    opts.max !== undefined ? `≤ ${opts.max}` : '',
  ]
    .filter(Boolean)
    .join(' and ');
  const what = `${opts.integer ? 'an integer' : 'a number'}${bounds ? ` ${bounds}` : ''}`;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid(source, field, what, v);
  if (opts.integer && !Number.isInteger(v)) throw invalid(source, field, what, v);
  if (opts.min !== undefined && v < opts.min) throw invalid(source, field, what, v);
  if (opts.max !== undefined && v > opts.max) throw invalid(source, field, what, v);
  if (opts.above !== undefined && v <= opts.above) throw invalid(source, field, what, v);
  return v;
}

const PEER_KEYS = [
  'id',
  'latencyHintMs',
  'maxConcurrent',
  'speed',
  'peakHours',
  'peakFactor',
  'loadFactor',
  'overloadAt',
  'failProb',
  'baseFailProb',
  'contention',
] as const;

/** Validates one peer profile of a peers file (`at` = its path, e.g. `peers[2]`); defaults filled in. */
function parsePeer(source: string, at: string, v: unknown): PeerProfile {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw invalid(source, at, 'an object', v);
  const o = v as Rec;
  onlyKeys(source, at, o, PEER_KEYS);
  if (typeof o.id !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(o.id))
    throw invalid(source, `${at}.id`, 'a name of 1–64 letters, digits, _ or -', o.id);
  if (!o.speed || typeof o.speed !== 'object' || Array.isArray(o.speed))
    throw invalid(
      source,
      `${at}.speed`,
      `an object of work multipliers by task type (${DEMO_TYPES.join(', ')})`,
      o.speed,
    );
  const speed: Partial<Record<DemoType, number>> = {};
  for (const [k, s] of Object.entries(o.speed as Rec)) {
    if (!(DEMO_TYPES as readonly string[]).includes(k))
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `peers file ${source}: ${at}.speed.${k}: unknown task type (known: ${DEMO_TYPES.join(', ')})`,
      );
    speed[k as DemoType] = num(source, `${at}.speed.${k}`, s, { above: 0, max: 1000 });
  }
  if (Object.keys(speed).length === 0)
    throw invalid(source, `${at}.speed`, 'at least one task type', o.speed);
  let peakHours: [number, number] = [0, 0];
  if (o.peakHours !== undefined) {
    const ph = o.peakHours;
    if (!Array.isArray(ph) || ph.length !== 2)
      throw invalid(source, `${at}.peakHours`, '[from, to] hours', ph);
    peakHours = [
      num(source, `${at}.peakHours[0]`, ph[0], { min: 0, max: 23, integer: true }),
      num(source, `${at}.peakHours[1]`, ph[1], { min: 0, max: 24, integer: true }),
    ];
  }
  return {
    id: o.id,
    latencyHintMs: num(source, `${at}.latencyHintMs`, o.latencyHintMs, { min: 0, max: 3_600_000 }),
    maxConcurrent: num(source, `${at}.maxConcurrent`, o.maxConcurrent, {
      min: 1,
      max: 1024,
      integer: true,
      fallback: 4,
    }),
    speed,
    peakHours,
    peakFactor: num(source, `${at}.peakFactor`, o.peakFactor, { above: 0, max: 1000, fallback: 1 }),
    loadFactor: num(source, `${at}.loadFactor`, o.loadFactor, { min: 0, max: 100, fallback: 0 }),
    overloadAt: num(source, `${at}.overloadAt`, o.overloadAt, { min: 0, integer: true, fallback: 1_000_000 }),
    failProb: num(source, `${at}.failProb`, o.failProb, { min: 0, max: 1, fallback: 0 }),
    baseFailProb: num(source, `${at}.baseFailProb`, o.baseFailProb, { min: 0, max: 0.9, fallback: 0 }),
    ...(o.contention !== undefined
      ? { contention: parseContention(source, `${at}.contention`, o.contention) }
      : {}),
  };
}

/** Validates a profile's `contention` object (`at` = its path). */
function parseContention(source: string, at: string, v: unknown): Contention {
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw invalid(source, at, 'an object { share, factor, meanMs? }', v);
  const o = v as Rec;
  onlyKeys(source, at, o, ['share', 'factor', 'meanMs']);
  return {
    share: num(source, `${at}.share`, o.share, { above: 0, max: 0.95 }),
    factor: num(source, `${at}.factor`, o.factor, { above: 0, max: 1000 }),
    meanMs: num(source, `${at}.meanMs`, o.meanMs, { min: 10, max: 3_600_000, fallback: 3000 }),
  };
}

/**
 * Validates the parsed JSON of a peers file (docs/coord-peers.md): either an array of peer
 * profiles or `{ description?, peers, mix?, pace? }`. Defaults: maxConcurrent 4, no peak hours,
 * peakFactor 1, loadFactor 0, no overload failures, baseFailProb 0, the demo's pace and mix (less
 * the kinds of job no peer runs); shares are normalized to sum to 1.
 * Throws PORTAL_CONFIG_INVALID naming the file and the field (`peers[2].speed.render: expected a
 * number > 0, got -1`); an unknown field is an error (a typo would otherwise be ignored silently).
 */
export function parsePeerSet(json: unknown, source: string): PeerSet {
  const top: Rec = Array.isArray(json) ? { peers: json } : (json as Rec);
  if (!top || typeof top !== 'object')
    throw invalid(source, '(top level)', 'an array of peers or an object with "peers"', json);
  onlyKeys(source, '', top, ['description', 'peers', 'mix', 'pace']);
  if (top.description !== undefined && typeof top.description !== 'string')
    throw invalid(source, 'description', 'a string', top.description);
  if (!Array.isArray(top.peers) || top.peers.length === 0 || top.peers.length > 256)
    throw invalid(source, 'peers', 'an array of 1–256 peer profiles', top.peers);
  const peers = top.peers.map((p, i) => parsePeer(source, `peers[${i}]`, p));
  const seen = new Set<string>();
  for (const [i, p] of peers.entries()) {
    if (seen.has(p.id)) throw invalid(source, `peers[${i}].id`, 'an id no other peer has', p.id);
    seen.add(p.id);
  }
  let mix: WorkloadMix = { ...DEMO_MIX };
  if (top.mix !== undefined) {
    const m = top.mix as Rec;
    if (!m || typeof m !== 'object' || Array.isArray(m))
      throw invalid(source, 'mix', 'an object { frame, physics, audio } of job shares', m);
    onlyKeys(source, 'mix', m, ['frame', 'physics', 'audio']);
    mix = {
      frame: num(source, 'mix.frame', m.frame, { min: 0, fallback: 0 }),
      physics: num(source, 'mix.physics', m.physics, { min: 0, fallback: 0 }),
      audio: num(source, 'mix.audio', m.audio, { min: 0, fallback: 0 }),
    };
    const sum = mix.frame + mix.physics + mix.audio;
    if (!(sum > 0)) throw invalid(source, 'mix', 'at least one share above 0', m);
  }
  const need: Array<[keyof WorkloadMix, DemoType]> = [
    ['frame', 'render'],
    ['physics', 'physics'],
    ['audio', 'audio'],
  ];
  for (const [share, type] of need)
    if (mix[share] > 0 && !peers.some((p) => runsType(p, type))) {
      if (top.mix !== undefined)
        throw invalid(source, `mix.${share}`, `0, since no peer runs ${type} tasks`, mix[share]);
      mix[share] = 0; // the default mix keeps only the kinds of job some peer runs
    }
  const total = mix.frame + mix.physics + mix.audio;
  mix = { frame: mix.frame / total, physics: mix.physics / total, audio: mix.audio / total };
  return {
    source,
    ...(top.description !== undefined ? { description: top.description } : {}),
    peers,
    mix,
    pace: num(source, 'pace', top.pace, { min: 1, max: 100, fallback: EMULATION_PACE }),
  };
}

/** Reads and validates a peers file; throws PORTAL_CONFIG_INVALID when it cannot be read, is not JSON, or fails parsePeerSet. */
export async function loadPeerSet(file: string): Promise<PeerSet> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `--peers: cannot read ${file}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `peers file ${file}: not JSON: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return parsePeerSet(json, file);
}
