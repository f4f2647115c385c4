import { writeFile } from 'node:fs/promises';
import { createSystemClock, type Clock } from '../../common/clock.js';
import { createLogger } from '../../common/logger.js';
import { resolveLogFormat } from '../../common/log-format.js';
import { PortalError } from '../../common/errors.js';
import { createEmbeddedHost, createMemoryStateStore, type ActorProxy } from '../../runtime/index.js';
import {
  CoordinatorActor,
  type CoordPolicy,
  type CoordTask,
  type TaskOutcome,
  type CoordOracle,
  type CoordSnapshot,
  type PeerTransport,
} from '../../actors/coordinator-actor.js';
import { actorProxy, type CoordinatorActorApi } from '../../actors/api.js';
import { splitEqualArea, mergeTiles, type RenderedTile, type TaskContext } from '../../learning/index.js';
import { createPrng } from '../../transfer/index.js';
import { commonFlags, defineCommand } from '../args.js';
import { renderTile, complexityMap, RENDER_UNIT_ITERS, type FrameView } from '../coord/kernels.js';
import {
  DEMO_TYPES,
  demoPeerSet,
  loadPeerSet,
  runsType,
  trueFailureProb,
  trueMultiplier,
  type DemoType,
  type PeerSet,
  type WorkloadMix,
} from '../coord/profiles.js';
import { startPeerPool, type PeerPool } from '../coord/pool.js';
import { startNatsPeerPool } from '../coord/nats-pool.js';
import { phaseMetrics, type PhaseMetrics, type TaskRow } from '../coord/report.js';
import { latencyChart } from '../coord/chart.js';

const W = 480,
  H = 360,
  DOWN = 4,
  TILES = 4;
const POLICIES: CoordPolicy[] = ['heuristic', 'learned', 'oracle'];
/** The learned policy with the peers' telemetry withheld (`--ablate-telemetry`). */
const BLIND = 'learned-no-telemetry';
/** One kind of run: a policy, and whether its coordinator gets the peers' telemetry. */
interface Variant {
  name: CoordPolicy | typeof BLIND;
  policy: CoordPolicy;
  telemetry: boolean;
}

interface Job {
  kind: 'frame' | 'physics' | 'audio';
  at: number;
  work: number;
  view?: FrameView;
}

/**
 * The same job stream for every policy: frames (`tiles` render tasks each) and single
 * physics/audio tasks in the shares of `mix`, arriving every `interval` ms on average. Returns the
 * jobs and their task count (`tasks`, or fewer when only frames are asked for and the last does
 * not fit).
 */
function workload(
  tasks: number,
  interval: number,
  seed: number,
  mix: WorkloadMix,
  tiles: number,
): { jobs: Job[]; total: number } {
  const rnd = createPrng(seed);
  const jobs: Job[] = [];
  let at = 0,
    count = 0;
  while (count < tasks) {
    const u = rnd();
    if (u < mix.frame && tasks - count >= tiles) {
      const zoom = 3 / (1 + rnd() * 3);
      jobs.push({
        kind: 'frame',
        at,
        work: 0,
        view: {
          width: W,
          height: H,
          cx: -0.75 + (rnd() - 0.5) * 0.4,
          cy: (rnd() - 0.5) * 0.4,
          scale: zoom,
          maxIter: 256,
        },
      });
      count += tiles;
    } else {
      if (mix.physics + mix.audio === 0) break; // frames only, and the next one does not fit
      // the demo's mix (0.4/0.3/0.3) keeps the demo's original stream: physics below 0.7, else audio
      const kind =
        u < mix.frame + mix.physics && mix.physics > 0 ? 'physics' : mix.audio > 0 ? 'audio' : 'physics';
      jobs.push({ kind, at, work: 45 + Math.floor(rnd() * 75) });
      count++;
    }
    at += interval * (0.5 + rnd());
  }
  return { jobs, total: count };
}

interface PolicyResult {
  predictedVsTrueMsPerUnit?: Record<string, Record<string, { predicted: number; truth: number }>>;
  policy: CoordPolicy;
  /** The variant: the policy's name, or BLIND. */
  name: Variant['name'];
  /** Latency of every task in submission order (failed ones included). */ latencies: number[];
  phases: PhaseMetrics[];
  overall: PhaseMetrics;
  seconds: number;
  peerTasks: Record<string, number>;
  /** The last merged frame equals a local render; undefined when the workload has no frames. */
  imageVerified: boolean | undefined;
  snapshot: CoordSnapshot;
}

/** `portal coord-demo`: learned coordinator vs the heuristic vs an oracle, on forked peer processes doing real work. */
export const coordDemoCommand = defineCommand({
  name: 'coord-demo',
  summary:
    "learned peer selection + task splitting on heterogeneous peer processes (the demo's 4 or a --peers file), vs heuristic and oracle",
  usage:
    'portal coord-demo [--peers FILE] [--nats URL] [--pace X] [--tasks N] [--interval-ms MS] [--seed N] [--start-hour H] [--tasks-per-hour N] [--repeats N] [--no-telemetry] [--ablate-telemetry] [--out frame.pgm] [--chart latency.svg] [--json]',
  flags: [
    {
      name: 'peers',
      type: 'string',
      help: 'a peers file (JSON, docs/coord-peers.md): the peer profiles, job mix and pace to run instead of the built-in four',
    },
    {
      name: 'nats',
      type: 'string',
      help: 'run the peers as `portal peer` processes reached over this NATS server (credentials and TLS from NATS_* variables) instead of forked processes over IPC',
      env: 'NATS_URL',
    },
    {
      name: 'pace',
      type: 'number',
      help: "emulation pace: a peer holds a task for pace × its multiplier × the CPU time the task took (default: the peers file's, else 2); raise it on a busy machine, with --interval-ms in proportion",
      min: 1,
      max: 100,
    },
    {
      name: 'tasks',
      type: 'number',
      integer: true,
      help: 'tasks per policy (frames count 4 tiles)',
      default: 150,
      min: 20,
      max: 2000,
    },
    {
      name: 'interval-ms',
      type: 'number',
      help: 'mean time between job arrivals',
      default: 100,
      min: 1,
      max: 1000,
    },
    { name: 'seed', type: 'number', integer: true, help: 'workload and failure seed', default: 1 },
    {
      name: 'start-hour',
      type: 'number',
      help: 'simulated hour of day at the first task',
      default: 16,
      min: 0,
      max: 23,
    },
    {
      name: 'repeats',
      type: 'number',
      integer: true,
      help: 'runs of every policy, in a rotated order each time (so no policy always runs first or last on a machine that warms up or gets busy); metrics are averaged',
      default: 2,
      min: 1,
      max: 10,
    },
    {
      name: 'tasks-per-hour',
      type: 'number',
      integer: true,
      help: 'tasks submitted per simulated hour (the coordinator reads the hour from its clock)',
      default: 10,
      min: 1,
    },
    {
      name: 'telemetry',
      type: 'boolean',
      help: "feed the peers' telemetry (resource pressure, from their heartbeats and answers) to the coordinators as a model feature; --no-telemetry to compare without",
      default: true,
    },
    {
      name: 'ablate-telemetry',
      type: 'boolean',
      help: `also run the learned policy without the telemetry (as "${BLIND}"), in the same rotation, to measure what the pressure feature is worth`,
      default: false,
    },
    { name: 'out', type: 'string', help: "write the learned run's last merged frame as a PGM image here" },
    {
      name: 'chart',
      type: 'string',
      help: "write an SVG chart of every policy's task latency (rolling mean of 10) against the task index here",
    },
    ...commonFlags,
  ],
  async run({ flags }) {
    const json = flags.json;
    const say = (s: string): void => {
      if (!json) process.stderr.write(`${s}\n`);
    };
    const logger = createLogger({
      level: flags['log-level'],
      format: resolveLogFormat(flags['log-format'], 'text'),
    });
    const log = logger.child({ command: 'coord-demo' });
    const set: PeerSet = flags.peers ? await loadPeerSet(flags.peers) : demoPeerSet();
    if (flags.pace !== undefined) set.pace = flags.pace;
    const profiles = set.peers;
    const seed = flags.seed;
    // a frame is split into as many tiles as there are render peers, at most TILES
    const tiles = Math.min(TILES, profiles.filter((p) => runsType(p, 'render')).length);
    const { jobs, total: tasks } = workload(flags.tasks, flags['interval-ms'], seed, set.mix, tiles);
    say(`workload: ${set.source}, ${profiles.length} peers, ${tasks} tasks per run`);

    const sys = createSystemClock();
    let simHour = flags['start-hour'];
    const clock: Clock = {
      now: () => sys.now(),
      wallNow: () => Date.UTC(2026, 0, 1) + simHour * 3_600_000,
      setTimeout: (fn, ms) => sys.setTimeout(fn, ms),
      clearTimeout: (h) => sys.clearTimeout(h),
    };
    const byId = new Map(profiles.map((p) => [p.id, p]));
    // the oracle knows every formula; whether a peer is inside a contention episode it reads, like
    // the learned policy, from the peer's telemetry (CPU pressure 1 inside one, see executors.ts)
    const oracle: CoordOracle = (q: TaskContext) => {
      const p = byId.get(q.peer)!;
      const type = q.taskType as DemoType;
      const contended = (q.pressure ?? 0) >= 1;
      const t =
        base[q.peer][type] * (q.work ?? 1) * set.pace * trueMultiplier(p, type, q.hour, q.load, contended);
      return { timeMs: t, failureProb: trueFailureProb(p, q.load) };
    };
    let onOutcome: (o: TaskOutcome) => void = () => {};
    const natsUrl = flags.nats;
    const pool: PeerPool = natsUrl
      ? await startNatsPeerPool(set, seed * 1000, log, natsUrl)
      : await startPeerPool(profiles, seed * 1000, log, { width: W, height: H }, undefined, set.pace);
    say(`peers: ${natsUrl ? `portal peer processes over NATS (${natsUrl})` : 'forked processes over IPC'}`);
    const base = pool.rates(); // each peer's own ms per work unit, measured in the peer at start
    say(
      `calibrated ms per work unit (render/physics/audio): ${Object.entries(base)
        .map(([id, r]) => `${id} ${r.render.toFixed(3)}/${r.physics.toFixed(3)}/${r.audio.toFixed(3)}`)
        .join(', ')}`,
    );
    const useTelemetry = flags.telemetry;
    const variants: Variant[] = POLICIES.map((policy) => ({ name: policy, policy, telemetry: useTelemetry }));
    if (flags['ablate-telemetry']) variants.push({ name: BLIND, policy: 'learned', telemetry: false });
    let telemetryNow = useTelemetry;
    // without telemetry the coordinator sees no pressure at all: none from heartbeats, none in answers
    const transport: PeerTransport = {
      execute: (peer, d) =>
        telemetryNow ? pool.execute(peer, d) : pool.execute(peer, d).then(({ pressure: _p, ...a }) => a),
    };
    let current: ActorProxy<CoordinatorActorApi> | undefined;
    pool.onTelemetry((peer, pressure) => {
      if (telemetryNow)
        current
          ?.invoke('peerTelemetry', { id: peer, pressure: Math.min(1, Math.max(0, pressure)) })
          .catch((err: unknown) => log.warn({ err, peer }, 'peerTelemetry failed'));
    });
    const host = createEmbeddedHost({
      store: createMemoryStateStore(),
      clock,
      logger: log,
      services: {
        coordinatorTransport: transport,
        coordinatorSink: (o: TaskOutcome) => onOutcome(o),
        coordinatorOracle: oracle,
      },
    });
    host.register(CoordinatorActor);
    const runs: PolicyResult[] = [];
    const repeats = flags.repeats;
    let lastImage: Uint8Array | undefined;
    const t0 = performance.now();
    try {
      await host.ready();
      for (let rep = 0; rep < repeats; rep++)
        for (let k = 0; k < variants.length; k++) {
          const variant = variants[(k + rep) % variants.length];
          const policy = variant.policy;
          simHour = flags['start-hour'];
          await pool.reset(seed * 1000);
          const coord = actorProxy(host, 'CoordinatorActor', `${variant.name}-${rep}`); // a fresh coordinator (and model) per run
          await coord.invoke('configure', { policy, maxAttempts: 3 });
          telemetryNow = variant.telemetry;
          current = coord;
          for (const p of profiles)
            await coord.invoke('registerPeer', {
              id: p.id,
              maxConcurrent: p.maxConcurrent,
              latencyHintMs: p.latencyHintMs,
              taskTypes: Object.keys(p.speed),
            });
          say(`running ${variant.name}${repeats > 1 ? ` (${rep + 1}/${repeats})` : ''}…`);
          const r = await runPolicy(
            policy,
            coord,
            jobs,
            tasks,
            (h) => {
              simHour = h;
            },
            flags['start-hour'],
            flags['tasks-per-hour'],
            pool,
            (fn) => {
              onOutcome = fn;
            },
            { tiles, peers: profiles.length },
          );
          r.result.name = variant.name;
          if (variant.name === 'learned' && rep === repeats - 1) {
            // what the model believes at the end (load 0, current hour) beside the oracle's truth, ms per work unit
            const table: Record<string, Record<string, { predicted: number; truth: number }>> = {};
            for (const type of DEMO_TYPES.filter((t) => profiles.some((p) => runsType(p, t)))) {
              for (const rk of await coord.invoke('rankPeers', { type })) {
                const hour = new Date(clock.wallNow()).getUTCHours();
                (table[rk.peer] ??= {})[type] = {
                  predicted: rk.timeMs,
                  truth: oracle({ peer: rk.peer, taskType: type, hour, load: rk.load, work: 1 }).timeMs,
                };
              }
            }
            r.result.predictedVsTrueMsPerUnit = table;
          }
          runs.push(r.result);
          if (variant.name === 'learned') lastImage = r.lastImage;
        }
    } finally {
      // heartbeats keep coming until the peers stop: no more telemetry calls to a stopping host
      current = undefined;
      await host.stop();
      await pool.close();
    }
    if (flags.out && lastImage)
      await writeFile(
        flags.out,
        Buffer.concat([Buffer.from(`P5\n${W} ${H}\n255\n`), Buffer.from(lastImage)]),
      );

    const results = variants.map((v) => averageRuns(runs.filter((r) => r.name === v.name)));
    if (flags.chart) {
      const style: Record<Variant['name'], { color: string; dashed?: boolean }> = {
        [BLIND]: { color: '#9467bd' },
        heuristic: { color: '#d62728' },
        learned: { color: '#1f77b4' },
        oracle: { color: '#2ca02c', dashed: true },
      };
      await writeFile(
        flags.chart,
        latencyChart(
          results.map((r) => ({ name: r.name, ...style[r.name], latencyMs: r.latencies })),
          {
            title: `coord-demo: task latency by policy (${tasks} tasks${repeats > 1 ? `, mean of ${repeats} runs` : ''}, seed ${seed})`,
            marks: [20, 50, 100],
          },
        ),
      );
    }
    const by = Object.fromEntries(results.map((r) => [r.name, r])) as Record<CoordPolicy, PolicyResult> &
      Partial<Record<typeof BLIND, PolicyResult>>;
    const last = (p: CoordPolicy): PhaseMetrics => by[p].phases[by[p].phases.length - 1];
    const change = (a: number, b: number): number => (b > 0 ? a / b - 1 : 0);
    const comparison = {
      phase: last('learned').phase,
      latencyVsHeuristic: change(last('learned').meanLatencyMs, last('heuristic').meanLatencyMs),
      failureRateVsHeuristic: change(last('learned').failureRate, last('heuristic').failureRate),
      latencyVsOracle: change(last('learned').meanLatencyMs, last('oracle').meanLatencyMs),
      overallLatencyVsHeuristic: change(by.learned.overall.meanLatencyMs, by.heuristic.overall.meanLatencyMs),
      overallFailureRateVsHeuristic: change(by.learned.overall.failureRate, by.heuristic.overall.failureRate),
      overallLatencyVsOracle: change(by.learned.overall.meanLatencyMs, by.oracle.overall.meanLatencyMs),
      byPhase: by.learned.phases.map((ph, i) => ({
        phase: ph.phase,
        latencyVsHeuristic: change(ph.meanLatencyMs, by.heuristic.phases[i].meanLatencyMs),
        failureRateVsHeuristic: change(ph.failureRate, by.heuristic.phases[i].failureRate),
        latencyVsOracle: change(ph.meanLatencyMs, by.oracle.phases[i].meanLatencyMs),
      })),
      // the learned policy with its telemetry against the same policy without (--ablate-telemetry)
      ...(by[BLIND]
        ? {
            latencyVsNoTelemetry: change(
              last('learned').meanLatencyMs,
              by[BLIND].phases[by[BLIND].phases.length - 1].meanLatencyMs,
            ),
            overallLatencyVsNoTelemetry: change(
              by.learned.overall.meanLatencyMs,
              by[BLIND].overall.meanLatencyMs,
            ),
          }
        : {}),
    };
    const report = {
      tasksPerPolicy: tasks,
      repeats,
      transport: natsUrl ? 'nats' : 'ipc',
      telemetry: useTelemetry,
      workload: {
        source: set.source,
        ...(set.description ? { description: set.description } : {}),
        mix: set.mix,
        pace: set.pace,
        tilesPerFrame: tiles,
      },
      peers: profiles.map((p) => p.id),
      seconds: (performance.now() - t0) / 1000,
      calibrationMsPerUnit: base,
      policies: by,
      comparison,
    };
    if (json) process.stdout.write(`${JSON.stringify(report)}\n`);
    else {
      const pct = (x: number): string => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(0)}%`;
      const lines = [
        '',
        ...(repeats > 1 ? [`(means over ${repeats} runs of each policy, in rotated order)`] : []),
        'policy     phase     tasks  mean ms   p99 ms  fail rate  failed  util  tile imbalance',
      ];
      for (const r of results)
        for (const ph of [...r.phases, r.overall]) {
          lines.push(
            `${r.name.padEnd(10)} ${ph.phase.padEnd(9)} ${String(ph.tasks).padStart(5)} ${ph.meanLatencyMs.toFixed(1).padStart(8)} ${ph.p99LatencyMs.toFixed(1).padStart(8)} ${(ph.failureRate * 100).toFixed(1).padStart(8)}% ${String(ph.failedTasks).padStart(7)} ${(ph.utilization * 100).toFixed(0).padStart(4)}% ${ph.tileImbalance.toFixed(2).padStart(8)} (${ph.frames} frames)`,
          );
        }
      lines.push(
        '',
        `learned vs heuristic (${comparison.phase}): latency ${pct(comparison.latencyVsHeuristic)}, failure rate ${pct(comparison.failureRateVsHeuristic)}; vs oracle: latency ${pct(comparison.latencyVsOracle)}`,
      );
      if (comparison.latencyVsNoTelemetry !== undefined)
        lines.push(
          `learned vs ${BLIND} (${comparison.phase}): latency ${pct(comparison.latencyVsNoTelemetry)}; all tasks ${pct(comparison.overallLatencyVsNoTelemetry!)}`,
        );
      lines.push(
        `learned per phase vs heuristic / vs oracle latency: ${comparison.byPhase.map((b) => `${b.phase} ${pct(b.latencyVsHeuristic)} / ${pct(b.latencyVsOracle)}`).join(', ')}`,
      );
      lines.push(
        `learned vs heuristic (all tasks): latency ${pct(comparison.overallLatencyVsHeuristic)}, failure rate ${pct(comparison.overallFailureRateVsHeuristic)}; vs oracle: latency ${pct(comparison.overallLatencyVsOracle)}`,
      );
      const pv = by.learned.predictedVsTrueMsPerUnit ?? {};
      lines.push(
        `learned ms/unit at the end (predicted/true): ${Object.entries(pv)
          .map(
            ([peer, t]) =>
              `${peer} ${Object.entries(t)
                .map(([ty, v]) => `${ty} ${v.predicted.toFixed(3)}/${v.truth.toFixed(3)}`)
                .join(' ')}`,
          )
          .join('; ')}`,
      );
      lines.push(
        `tasks per peer: ${results
          .map(
            (r) =>
              `${r.name} ${Object.entries(r.peerTasks)
                .map(([k, v]) => `${k} ${Number(v.toFixed(1))}`)
                .join('/')}`,
          )
          .join('; ')}`,
      );
      lines.push(
        `merged frames verified against a local render: ${results.map((r) => `${r.name} ${r.imageVerified === undefined ? 'no frames' : r.imageVerified ? 'yes' : 'NO'}`).join(', ')}; ${report.seconds.toFixed(1)} s`,
      );
      process.stdout.write(`${lines.join('\n')}\n`);
    }
    return results.every((r) => r.imageVerified !== false) ? 0 : 1;
  },
});

/** One policy's runs merged: every numeric metric is the mean over the runs; the image is verified only if every run's was. */
function averageRuns(rs: PolicyResult[]): PolicyResult {
  const avg = (ms: PhaseMetrics[]): PhaseMetrics => {
    const out = { ...ms[0] } as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries(ms[0]))
      if (typeof v === 'number')
        out[k] = ms.reduce((a, m) => a + (m as unknown as Record<string, number>)[k], 0) / ms.length;
    return out as unknown as PhaseMetrics;
  };
  const peerTasks: Record<string, number> = {};
  for (const r of rs)
    for (const [k, v] of Object.entries(r.peerTasks)) peerTasks[k] = (peerTasks[k] ?? 0) + v / rs.length;
  const last = rs[rs.length - 1];
  return {
    ...last,
    latencies: last.latencies.map((_, i) => rs.reduce((a, r) => a + r.latencies[i], 0) / rs.length),
    phases: last.phases.map((_, i) => avg(rs.map((r) => r.phases[i]))),
    overall: avg(rs.map((r) => r.overall)),
    seconds: rs.reduce((a, r) => a + r.seconds, 0) / rs.length,
    peerTasks,
    imageVerified: rs.some((r) => r.imageVerified === undefined)
      ? undefined
      : rs.every((r) => r.imageVerified),
  };
}

async function runPolicy(
  policy: CoordPolicy,
  coord: ActorProxy<CoordinatorActorApi>,
  jobs: Job[],
  total: number,
  setHour: (h: number) => void,
  startHour: number,
  perHour: number,
  pool: PeerPool,
  setSink: (fn: (o: TaskOutcome) => void) => void,
  shape: { tiles: number; peers: number },
): Promise<{ result: PolicyResult; lastImage: Uint8Array | undefined }> {
  const TILES = shape.tiles;
  const meta = new Map<
    string,
    {
      index: number;
      type: string;
      frame: number | undefined;
      submittedAt: number;
      tile?: { x: number; y: number; width: number; height: number };
    }
  >();
  const rows: TaskRow[] = [];
  const tiles = new Map<number, RenderedTile[]>();
  const peerTasks: Record<string, number> = {};
  let done!: () => void;
  const finished = new Promise<void>((r) => {
    done = r;
  });
  setSink((o) => {
    const m = meta.get(o.taskId);
    if (!m) return;
    const now = performance.now();
    rows.push({
      index: m.index,
      type: m.type,
      frame: m.frame,
      submittedAt: m.submittedAt,
      doneAt: now,
      latencyMs: o.latencyMs,
      ok: o.ok,
      attempts: o.attempts,
      failures: o.failures,
    });
    if (o.ok) peerTasks[o.peer] = (peerTasks[o.peer] ?? 0) + 1;
    const px = (o.output as { pixels?: string } | undefined)?.pixels;
    if (m.frame !== undefined && m.tile && px) {
      const l = tiles.get(m.frame) ?? [];
      l.push({ ...m.tile, pixels: new Uint8Array(Buffer.from(px, 'base64')) });
      tiles.set(m.frame, l);
    }
    if (rows.length === total) done();
  });
  const t0 = performance.now();
  let index = 0,
    frame = 0,
    lastView: FrameView | undefined;
  for (const job of jobs) {
    const wait = t0 + job.at - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    setHour(startHour + Math.floor(index / perHour));
    const batch: CoordTask[] = [];
    if (job.kind === 'frame') {
      const view = job.view!;
      const map = complexityMap(view, DOWN, 64);
      let planned: Array<{
        x: number;
        y: number;
        width: number;
        height: number;
        cost: number;
        peer?: string;
      }>;
      if (policy === 'heuristic')
        planned = splitEqualArea(map, TILES); // the naive split: equal areas, placed by the heuristic
      else {
        const plan = await coord.invoke('split', {
          task: {
            type: 'render',
            complexity: { width: map.width, height: map.height, data: Array.from(map.data) },
          },
          peers: TILES,
        });
        if (plan.strategy !== 'spatial')
          throw new PortalError(
            'PORTAL_INVALID_ARGUMENT',
            `expected a spatial plan for render, got ${plan.strategy}`,
          );
        planned = plan.tiles;
      }
      for (const t of planned) {
        const tile = {
          x: t.x * DOWN,
          y: t.y * DOWN,
          width: Math.min(W, (t.x + t.width) * DOWN) - t.x * DOWN,
          height: Math.min(H, (t.y + t.height) * DOWN) - t.y * DOWN,
        };
        const id = `${policy}-${index}`;
        meta.set(id, { index: index++, type: 'render', frame, submittedAt: performance.now(), tile });
        batch.push({
          id,
          type: 'render',
          work: Math.max(0.05, t.cost / RENDER_UNIT_ITERS),
          pin: t.peer,
          payload: { view, ...{ x: tile.x, y: tile.y, w: tile.width, h: tile.height } },
        });
      }
      lastView = view;
      frame++;
    } else {
      const id = `${policy}-${index}`;
      meta.set(id, { index: index++, type: job.kind, frame: undefined, submittedAt: performance.now() });
      batch.push({ id, type: job.kind, work: job.work });
    }
    await coord.invoke('submit', { tasks: batch });
  }
  // two minutes after the last arrival (more with slow arrivals)
  const limitMs = 120_000 + 2 * (jobs[jobs.length - 1]?.at ?? 0);
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(
      () =>
        reject(
          new PortalError(
            'PORTAL_ACTOR_TIMEOUT',
            `${policy}: tasks did not finish within ${Math.round(limitMs / 1000)} s (${rows.length}/${total})`,
          ),
        ),
      limitMs,
    ).unref(),
  );
  await Promise.race([finished, timeout]);
  const seconds = (performance.now() - t0) / 1000;
  rows.sort((a, b) => a.index - b.index);
  const events = pool.events();
  // the demo's phases: the first 20 tasks (warm-up), up to 50, up to 100, and after 100
  const bounds = (
    [
      [0, 20],
      [20, 50],
      [50, 100],
      [100, total],
    ] as const
  )
    .filter(([a]) => a < total)
    .map(([a, b]) => [a, Math.min(b, total)] as const);
  const phases = bounds.map(([a, b]) => phaseMetrics(`${a + 1}-${b}`, rows, events, shape.peers, a, b));
  const overall = phaseMetrics('all', rows, events, shape.peers, 0, total);
  // verify the last frame: merged tiles must equal a single local render
  let imageVerified: boolean | undefined;
  let lastImage: Uint8Array | undefined;
  if (lastView) {
    const merged = mergeTiles(W, H, tiles.get(frame - 1) ?? []);
    lastImage = merged.image;
    imageVerified =
      merged.covered === W * H &&
      Buffer.from(merged.image).equals(Buffer.from(renderTile(lastView, 0, 0, W, H).pixels));
  }
  const snapshot = await coord.invoke('snapshot');
  return {
    result: {
      policy,
      name: policy,
      latencies: rows.map((r) => r.latencyMs),
      phases,
      overall,
      seconds,
      peerTasks,
      imageVerified,
      snapshot,
    },
    lastImage,
  };
}
