/**
 * The chunk scheduler with formula estimators vs with learned predictors, on the same synthetic
 * workload: edges with known true speeds, a load-dependent failure rate, bandwidth shared among
 * concurrent fetches and a time-of-day slowdown (a compressed day: 1 simulated hour = 2 s). The
 * clock is simulated (50 ms ticks); nothing sleeps. Run: npm run build && node dist/bench/coord-scheduler.js
 */
import { ChunkScheduler, EdgeEstimator, adaptiveTimeoutMs, defaultEstimatorConfig } from '../scheduler/index.js';
import { RiskModel, learnedEdgeFactors } from '../learning/index.js';
import { createPrng } from '../transfer/index.js';

const MB = 1_000_000;
const CHUNK = 1 * MB;
const TICK = 50;
const HOUR_MS = 2000;
const hourOf = (now: number): number => (17 + Math.floor(now / HOUR_MS)) % 24;

interface TrueEdge { mbps: number; rtt: number; shared: boolean; failAtQueue: number; failProb: number; peak?: [number, number, number] }
const EDGES: TrueEdge[] = [
  { mbps: 40, rtt: 10, shared: false, failAtQueue: 2, failProb: 0.35 }, // fast, flaky under load
  { mbps: 30, rtt: 20, shared: true, failAtQueue: 99, failProb: 0 },    // bandwidth split among its fetches
  { mbps: 30, rtt: 15, shared: false, failAtQueue: 99, failProb: 0, peak: [18, 22, 5] }, // 5× slower 18:00–22:00
  { mbps: 15, rtt: 30, shared: false, failAtQueue: 99, failProb: 0.02 },
  { mbps: 12, rtt: 40, shared: false, failAtQueue: 99, failProb: 0.02 },
  { mbps: 20, rtt: 25, shared: false, failAtQueue: 99, failProb: 0.05 },
];

interface Event { at: number; chunk: number; edge: number; attempt: number; ok: boolean; dur: number; load: number; hour: number }

function simulate(mode: 'formula' | 'learned', chunks: number, seed: number) {
  const rnd = createPrng(seed);
  const s = new ChunkScheduler({ chunks, chunkBytes: CHUNK, edgeCapacity: EDGES.length }, { endgameChunks: 0 });
  const est = EDGES.map(() => new EdgeEstimator(defaultEstimatorConfig, 0));
  const model = new RiskModel();
  EDGES.forEach((_, e) => { s.updateEdge(e, { available: true, maxParallel: 4, bandwidth: 10 * MB, rtt: 50 }); for (let c = 0; c < chunks; c++) s.setAvailability(c, e, true); });
  const events: Event[] = [];
  const firstDispatch = new Float64Array(chunks).fill(-1);
  const latencies: number[] = [];
  let attempts = 0, failures = 0, now = 0;
  while (!s.done && now < 600_000) {
    events.sort((a, b) => a.at - b.at);
    while (events.length > 0 && events[0].at <= now) {
      const ev = events.shift()!;
      const r = s.report({ chunk: ev.chunk, edge: ev.edge, attempt: ev.attempt, ok: ev.ok, reason: ev.ok ? undefined : 'http' });
      if (r === 'stale') continue;
      if (ev.ok) { est[ev.edge].observeSuccess(CHUNK, EDGES[ev.edge].rtt, ev.dur, ev.at); latencies.push(ev.at - firstDispatch[ev.chunk]); }
      else { est[ev.edge].observeFailure('http', ev.at); failures++; }
      model.observe({ peer: `edge-${ev.edge}`, taskType: 'chunk', hour: ev.hour, load: ev.load, work: CHUNK, ok: ev.ok, timeMs: ev.dur });
    }
    const learned = mode === 'learned' && model.warm ? learnedEdgeFactors(model, s.edges, CHUNK, now, { hourOf }) : undefined;
    EDGES.forEach((_, e) => {
      const snap = est[e].snapshot(now);
      const timeoutMs = adaptiveTimeoutMs(snap, CHUNK);
      const u = learned?.updates[e];
      if (u) s.updateEdge(e, { ...u, timeoutMs });
      else if (snap.samples > 0) s.updateEdge(e, { bandwidth: snap.bandwidth, rtt: snap.rtt, health: snap.health, timeoutMs });
    });
    const t = s.tick(now);
    for (const d of t.dispatch) {
      const te = EDGES[d.edge];
      const load = s.edges.queueDepth[d.edge] - 1; // fetches already running there
      const hour = hourOf(now);
      const peak = te.peak && hour >= te.peak[0] && hour < te.peak[1] ? te.peak[2] : 1;
      const bw = (te.mbps * MB) / (te.shared ? load + 1 : 1) / peak;
      const dur = (te.rtt + (CHUNK / bw) * 1000) * Math.exp(0.1 * (rnd() - 0.5));
      const ok = !(load >= te.failAtQueue && rnd() < te.failProb) && rnd() >= (load >= te.failAtQueue ? 0 : Math.min(te.failProb, 0.05) * (te.failAtQueue === 99 ? 1 : 0));
      if (firstDispatch[d.chunk] < 0) firstDispatch[d.chunk] = now;
      attempts++;
      events.push({ at: now + (ok ? dur : dur / 2), chunk: d.chunk, edge: d.edge, attempt: d.attempt, ok, dur: ok ? dur : dur / 2, load, hour });
    }
    now += TICK;
  }
  latencies.sort((a, b) => a - b);
  return { mode, makespanS: now / 1000, meanChunkLatencyMs: latencies.reduce((a, b) => a + b, 0) / latencies.length, p99ChunkLatencyMs: latencies[Math.floor(latencies.length * 0.99)], attempts, failures, failureRate: failures / attempts, done: s.done };
}

const chunks = Number(process.argv[2] ?? 2000);
const rows = [];
for (const seed of [1, 2, 3]) for (const mode of ['formula', 'learned'] as const) rows.push({ seed, ...simulate(mode, chunks, seed) });
process.stdout.write(`${JSON.stringify(rows, null, 1)}\n`);
