/**
 * The chunk scheduler with formula estimators vs with learned predictors, on the same synthetic
 * workload: edges with known true speeds, a load-dependent failure rate, bandwidth shared among
 * concurrent fetches and a time-of-day slowdown (a compressed day: 1 simulated hour = 2 s). The
 * clock is simulated (50 ms ticks); nothing sleeps. Modes: formula estimators; learned time and
 * risk in the cost model; and the same plus the learned risk-aware max_parallel. An overloaded
 * fast edge stalls until the scheduler's deadline. Run: npm run bench:coord [chunks]
 */
import {
  ChunkScheduler,
  EdgeEstimator,
  adaptiveTimeoutMs,
  defaultEstimatorConfig,
} from '../scheduler/index.js';
import { RiskModel, learnedEdgeFactors } from '../learning/index.js';
import { createPrng } from '../transfer/index.js';
import { quantileSorted } from '../common/quantile.js';

const MB = 1_000_000;
const CHUNK = 1 * MB;
const TICK = 50;
const HOUR_MS = 2000;
const hourOf = (now: number): number => (17 + Math.floor(now / HOUR_MS)) % 24;

interface TrueEdge {
  mbps: number;
  rtt: number;
  shared: boolean;
  failAtQueue: number;
  failProb: number;
  peak?: [number, number, number];
}
const EDGES: TrueEdge[] = [
  { mbps: 40, rtt: 10, shared: false, failAtQueue: 2, failProb: 0.35 }, // fast, stalls under load
  { mbps: 30, rtt: 20, shared: true, failAtQueue: 99, failProb: 0 }, // bandwidth split among its fetches
  { mbps: 30, rtt: 15, shared: false, failAtQueue: 99, failProb: 0, peak: [18, 22, 5] }, // 5× slower 18:00–22:00
  { mbps: 15, rtt: 30, shared: false, failAtQueue: 99, failProb: 0.02 },
  { mbps: 12, rtt: 40, shared: false, failAtQueue: 99, failProb: 0.02 },
  { mbps: 20, rtt: 25, shared: false, failAtQueue: 99, failProb: 0.05 },
];

interface Event {
  at: number;
  chunk: number;
  edge: number;
  attempt: number;
  ok: boolean;
  reason?: 'timeout' | 'http';
  dur: number;
  load: number;
  hour: number;
}

function simulate(mode: 'formula' | 'learned' | 'learned+parallel', chunks: number, seed: number) {
  const rnd = createPrng(seed);
  const s = new ChunkScheduler({ chunks, chunkBytes: CHUNK, edgeCapacity: EDGES.length });
  const est = EDGES.map(() => new EdgeEstimator(defaultEstimatorConfig, 0));
  const model = new RiskModel();
  EDGES.forEach((_, e) => {
    s.updateEdge(e, { available: true, maxParallel: 4, bandwidth: 10 * MB, rtt: 50 });
    for (let c = 0; c < chunks; c++) s.setAvailability(c, e, true);
  });
  const events: Event[] = [];
  const firstDispatch = new Float64Array(chunks).fill(-1);
  const latencies: number[] = [];
  let attempts = 0,
    failures = 0,
    now = 0;
  const running = EDGES.map(() => 0);
  while (!s.done && now < 600_000) {
    events.sort((a, b) => a.at - b.at);
    while (events.length > 0 && events[0].at <= now) {
      const ev = events.shift()!;
      running[ev.edge]--;
      // both learners see every outcome, also a stall the scheduler already gave up on
      model.observe({
        peer: `edge-${ev.edge}`,
        taskType: 'chunk',
        hour: ev.hour,
        load: ev.load,
        work: CHUNK,
        ok: ev.ok,
        timeMs: ev.dur,
      });
      if (ev.ok) est[ev.edge].observeSuccess(CHUNK, EDGES[ev.edge].rtt, ev.dur, ev.at);
      else {
        est[ev.edge].observeFailure(ev.reason ?? 'http', ev.at);
        failures++;
      }
      const r = s.report({
        chunk: ev.chunk,
        edge: ev.edge,
        attempt: ev.attempt,
        ok: ev.ok,
        reason: ev.ok ? undefined : ev.reason,
      });
      if (r !== 'stale' && ev.ok) latencies.push(ev.at - firstDispatch[ev.chunk]);
    }
    const learned =
      mode !== 'formula' && model.warm
        ? learnedEdgeFactors(model, s.edges, CHUNK, now, {
            hourOf,
            maxParallelOf: mode === 'learned+parallel' ? () => 4 : undefined,
          })
        : undefined;
    EDGES.forEach((_, e) => {
      const snap = est[e].snapshot(now);
      const timeoutMs = adaptiveTimeoutMs(snap, CHUNK);
      const u = learned?.updates[e];
      if (u) s.updateEdge(e, { ...u, timeoutMs });
      else if (snap.samples > 0)
        s.updateEdge(e, { bandwidth: snap.bandwidth, rtt: snap.rtt, health: snap.health, timeoutMs });
    });
    const t = s.tick(now);
    for (const d of t.dispatch) {
      const te = EDGES[d.edge];
      const load = running[d.edge]++; // fetches already running there
      const hour = hourOf(now);
      const peak = te.peak && hour >= te.peak[0] && hour < te.peak[1] ? te.peak[2] : 1;
      const bw = (te.mbps * MB) / (te.shared ? load + 1 : 1) / peak;
      const dur = (te.rtt + (CHUNK / bw) * 1000) * Math.exp(0.1 * (rnd() - 0.5));
      if (firstDispatch[d.chunk] < 0) firstDispatch[d.chunk] = now;
      attempts++;
      if (load >= te.failAtQueue && rnd() < te.failProb) {
        // overloaded: the edge stalls and the fetch runs into the scheduler's deadline
        events.push({
          at: d.deadline,
          chunk: d.chunk,
          edge: d.edge,
          attempt: d.attempt,
          ok: false,
          reason: 'timeout',
          dur: d.deadline - now,
          load,
          hour,
        });
      } else if (te.failAtQueue === 99 && rnd() < te.failProb) {
        events.push({
          at: now + dur / 2,
          chunk: d.chunk,
          edge: d.edge,
          attempt: d.attempt,
          ok: false,
          reason: 'http',
          dur: dur / 2,
          load,
          hour,
        }); // a fast error
      } else
        events.push({
          at: now + dur,
          chunk: d.chunk,
          edge: d.edge,
          attempt: d.attempt,
          ok: true,
          dur,
          load,
          hour,
        });
    }
    now += TICK;
  }
  latencies.sort((a, b) => a - b);
  return {
    mode,
    makespanS: now / 1000,
    meanChunkLatencyMs: latencies.reduce((a, b) => a + b, 0) / latencies.length,
    p99ChunkLatencyMs: quantileSorted(latencies, 0.99),
    attempts,
    failures,
    failureRate: failures / attempts,
    done: s.done,
  };
}

const chunks = Number(process.argv[2] ?? 2000);
const rows: Array<{ seed: number } & ReturnType<typeof simulate>> = [];
for (const seed of [1, 2, 3])
  for (const mode of ['formula', 'learned', 'learned+parallel'] as const)
    rows.push({ seed, ...simulate(mode, chunks, seed) });
const modes = ['formula', 'learned', 'learned+parallel'] as const;
const mean = (
  m: string,
  k: 'makespanS' | 'meanChunkLatencyMs' | 'p99ChunkLatencyMs' | 'failureRate',
): number => {
  const r = rows.filter((x) => x.mode === m);
  return r.reduce((a, x) => a + x[k], 0) / r.length;
};
const summary = modes.map((m) => ({
  mode: m,
  makespanS: mean(m, 'makespanS'),
  meanChunkLatencyMs: mean(m, 'meanChunkLatencyMs'),
  p99ChunkLatencyMs: mean(m, 'p99ChunkLatencyMs'),
  failureRate: mean(m, 'failureRate'),
}));
process.stdout.write(`${JSON.stringify({ chunks, seeds: [1, 2, 3], summary, rows }, null, 1)}\n`);
process.stderr.write(
  `${summary.map((x) => `${x.mode.padEnd(17)} makespan ${x.makespanS.toFixed(2)} s  chunk latency mean ${x.meanChunkLatencyMs.toFixed(0)} ms p99 ${x.p99ChunkLatencyMs.toFixed(0)} ms  failed attempts ${(x.failureRate * 100).toFixed(1)}%`).join('\n')}\n`,
);
