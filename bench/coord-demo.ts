/**
 * The coordinator demo as a benchmark: `portal coord-demo --json` (peer processes doing real work,
 * every policy on the same job stream) once per seed, and the learned policy's latency and failure
 * rate against the heuristic and the oracle, with the coordinator's goals over the last phase
 * (tasks 101–150 of the default 150): −40% latency and −80% failed attempts against the heuristic,
 * within 15% of the oracle's latency. The ratios depend on the machine: peers emulate their speed
 * from CPU time and hold their answers, so a loaded machine stretches every peer alike and narrows
 * the gap (raise `--pace` and `--interval-ms` in proportion there). That is why they are measured
 * here and recorded in BENCHMARKS.md, not asserted by a test.
 *
 * Run: `npm run bench:coord-demo [-- --seeds 1,2,3 --tasks 150 --repeats 2 --peers FILE
 *   --nats [URL] --pace X --interval-ms MS --telemetry on|off|ablate]`
 * - `--peers FILE`: a peers file (docs/coord-peers.md) instead of the built-in four peers.
 * - `--nats`: the peers run as separate `portal peer` processes over NATS: a nats-server -js the
 *   benchmark starts (or BENCH_NATS_URL), or the URL given after `--nats`.
 * - `--telemetry ablate`: every run also runs the learned policy without the peers' telemetry
 *   (coord-demo --ablate-telemetry, in the same rotation), to show what the pressure feature is
 *   worth; `off` withholds the telemetry from every policy.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { arg, startBenchNats } from './lib.js';

const MAIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../cli/main.js');

/** The `comparison` block of `coord-demo --json` (fractions: −0.6 = 60% lower). */
interface Comparison {
  phase: string;
  latencyVsHeuristic: number;
  failureRateVsHeuristic: number;
  latencyVsOracle: number;
  latencyVsNoTelemetry?: number;
  overallLatencyVsNoTelemetry?: number;
  overallLatencyVsHeuristic: number;
  overallFailureRateVsHeuristic: number;
  overallLatencyVsOracle: number;
}
interface Phase {
  phase: string;
  meanLatencyMs: number;
  failureRate: number;
}
/** The parts of `coord-demo --json` the benchmark reads. */
interface DemoReport {
  comparison: Comparison;
  seconds: number;
  policies: Record<'heuristic' | 'learned' | 'oracle', { phases: Phase[]; overall: Phase }>;
}

function demo(args: string[]): Promise<DemoReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, 'coord-demo', '--json', ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`coord-demo ${args.join(' ')} exited with ${code}`));
      resolve(JSON.parse(out.trim().split('\n').pop()!) as DemoReport);
    });
  });
}

const has = (name: string): boolean => process.argv.includes(`--${name}`);
const pct = (x: number): string => `${x > 0 ? '+' : x < 0 ? '−' : ''}${Math.abs(Math.round(x * 100))}%`;
const seeds = arg('seeds', '1,2,3').split(',').map(Number);
const tasks = arg('tasks', '150');
const repeats = arg('repeats', '2');
const peers = arg('peers', '');
const pace = arg('pace', '');
const interval = arg('interval-ms', '');
const telemetry = arg('telemetry', 'on');
if (!['on', 'off', 'ablate'].includes(telemetry))
  throw new Error(`--telemetry: expected on, off or ablate, got ${telemetry}`);
const natsArg = arg('nats', '');
const nats = has('nats')
  ? natsArg.startsWith('nats://') || natsArg.startsWith('tls://')
    ? { url: natsArg, stop: async () => undefined }
    : await startBenchNats()
  : undefined;

const common = ['--tasks', tasks, '--repeats', repeats];
if (peers) common.push('--peers', peers);
if (pace) common.push('--pace', pace);
if (interval) common.push('--interval-ms', interval);
if (nats) common.push('--nats', nats.url);
if (telemetry === 'off') common.push('--no-telemetry');
if (telemetry === 'ablate') common.push('--ablate-telemetry');

const rows: string[] = [];
let met = true;
const load = (): string =>
  os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
try {
  for (const seed of seeds) {
    const loadBefore = load();
    const r = await demo([...common, '--seed', String(seed)]);
    const c = r.comparison;
    const lastOf = (p: 'heuristic' | 'learned' | 'oracle'): Phase =>
      r.policies[p].phases[r.policies[p].phases.length - 1];
    const [h, l, o] = [lastOf('heuristic'), lastOf('learned'), lastOf('oracle')];
    const ok = c.latencyVsHeuristic <= -0.4 && c.failureRateVsHeuristic <= -0.8 && c.latencyVsOracle <= 0.15;
    met &&= ok;
    const ms = (p: Phase): string => p.meanLatencyMs.toFixed(0);
    const fr = (p: Phase): string => `${(p.failureRate * 100).toFixed(1)}%`;
    rows.push(
      `| ${seed} | ${ms(h)} / ${ms(l)} / ${ms(o)} | ${pct(c.latencyVsHeuristic)} | ${pct(c.overallLatencyVsHeuristic)} | ${fr(h)} / ${fr(l)} / ${fr(o)} | ${pct(c.failureRateVsHeuristic)} | ${pct(c.overallFailureRateVsHeuristic)} | ${pct(c.latencyVsOracle)} | ${pct(c.overallLatencyVsOracle)} | ${ok ? 'yes' : 'NO'} | ${c.latencyVsNoTelemetry === undefined ? '–' : `${pct(c.latencyVsNoTelemetry)} / ${pct(c.overallLatencyVsNoTelemetry!)}`} | ${r.seconds.toFixed(0)} | ${loadBefore} → ${load()} |`,
    );
    process.stderr.write(`${rows[rows.length - 1]}\n`);
  }
} finally {
  await nats?.stop();
}
process.stdout.write(
  [
    `coord-demo ${common.join(' ')}: ${peers || 'built-in demo'}, ${nats ? '`portal peer` processes over NATS' : 'forked peers over IPC'}; ${tasks} tasks per policy, ${repeats} runs each (learned vs heuristic and oracle; last phase / all tasks)`,
    '',
    '| seed | mean ms last phase, heuristic / learned / oracle | latency vs heuristic, last phase | all tasks | failed attempts last phase, h / l / o | failure rate vs heuristic, last phase | all | latency vs oracle, last phase | all | goals met | latency vs learned without telemetry, last phase / all | s | load average before → after |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---|',
    ...rows,
    '',
    `goals (last phase: latency ≤ −40% and failure rate ≤ −80% against the heuristic, latency ≤ +15% against the oracle): ${met ? 'met on every run' : 'MISSED on some run'}`,
    '',
  ].join('\n'),
);
