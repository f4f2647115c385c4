/**
 * Host-under-load benchmark: N concurrent transfers of one file (4 MiB, 256 KiB chunks) from 4 nginx loopback
 * mirrors, all submitted at once to one `portal serve --runtime embedded` over its HTTP actor API (at most 64
 * calls in flight), each accepted transfer's status polled every 200 ms while they run. The host runs with
 * admission control (its default --max-running and --max-queued, or the values given here): a start answers
 * `running` or `queued`, or 503 PORTAL_OVERLOADED once the queue is full too. Prints, per N: how many were
 * queued and refused, transfers done and verified, time to the last, aggregate MB/s, the actor API's p50/p99
 * latency while they run (a call's time from being sent to its answer; goal p99 ≤ 100 ms), the host's peak
 * RSS (VmHWM), and the CPU seconds of its main thread and of the whole process (/proc; figures that depend less
 * on what else the machine runs than latencies do), the main thread's per start while the starts come in. A row
 * that does not finish within --timeout-s says how many did.
 *
 * BENCH_LOAD_TRACE=PREFIX writes every call to PREFIX-<N>.txt, one line each: ms since the row began when it was
 * sent, its latency in ms, method, transfer id and the state answered (to see which calls are slow, and when).
 *
 *   npm run bench:load -- [--transfers 100,1000] [--size-mib 4] [--chunk-kib 256] [--timeout-s 120] [--max-running N] [--max-queued N]
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { startNginx, waitForPort, type TestNginx } from '../harness/index.js';
import { createManifest } from '../transfer/index.js';
import { encodeActorId } from '../runtime/index.js';
import { arg, quantile, startBenchServe } from './lib.js';

const counts = arg('transfers', '100,1000').split(',').map(Number);
const sizeMiB = Number(arg('size-mib', '4'));
const chunkKiB = Number(arg('chunk-kib', '256'));
const timeoutS = Number(arg('timeout-s', '120'));
const pollMs = 200;
const maxRunning = arg('max-running', '');
const maxQueued = arg('max-queued', '');
/** Calls the benchmark has in flight at most (the pool's connections): the rest wait on the client side, untimed. */
const CLIENT_CONCURRENCY = 64;

interface Row {
  transfers: number;
  maxRunning: number;
  maxQueued: number;
  /** Starts answered `queued`. */
  queued: number;
  /** Starts refused with PORTAL_OVERLOADED. */
  rejected: number;
  done: number;
  /** Of the done ones, those whose whole-file sha256 matched the manifest. */
  verified: number;
  failed: number;
  seconds: number;
  aggregateMBps: number;
  apiP50Ms: number;
  apiP99Ms: number;
  /** p99 of the status calls only (the starts, each a durable write and for a running one the edges' set-up, excluded). */
  statusP99Ms: number;
  startP99Ms: number;
  apiCalls: number;
  peakRssMB: number;
  /**
   * CPU seconds of the host's main thread (the one that runs every actor and answers the API) and of the whole
   * process, from start-up to the last transfer's end: less sensitive than latencies to what else the machine runs.
   */
  mainCpuS: number;
  processCpuS: number;
  /** Main-thread CPU seconds spent while the starts were submitted (start-up excluded), per start, in ms. */
  mainCpuMsPerStart: number;
}

/** utime + stime of /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat, in seconds (USER_HZ = 100 on Linux). */
const cpuSeconds = (statPath: string): number => {
  const text = readFileSync(statPath, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
};

const peakRss = (pid: number): number => {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
};

async function runOne(
  n: number,
  dir: string,
  manifest: Awaited<ReturnType<typeof createManifest>>,
  mirrors: string[],
): Promise<Row> {
  const state = join(dir, `state-${n}`);
  const outDir = join(dir, `out-${n}`);
  mkdirSync(outDir);
  const {
    child: host,
    port,
    ready,
  } = await startBenchServe({
    stateDir: state,
    outputRoot: outDir,
    args: [
      ...(maxRunning ? ['--max-running', maxRunning] : []),
      ...(maxQueued ? ['--max-queued', maxQueued] : []),
    ],
    // e.g. BENCH_HOST_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the host
    nodeArgs: process.env.BENCH_HOST_NODE_ARGS?.split(' ').filter(Boolean),
  });
  const limits = ready as unknown as { maxRunning: number; maxQueued: number };
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: CLIENT_CONCURRENCY });
  const latencies: number[] = [];
  const trace = process.env.BENCH_LOAD_TRACE ? ([] as string[]) : undefined;
  const traceT0 = performance.now();
  const byMethod = new Map<string, number[]>();
  // at most CLIENT_CONCURRENCY calls in flight: a call is timed from when it is sent, not while it waits here
  let inFlight = 0;
  const waiting: Array<() => void> = [];
  const call = async (
    id: string,
    method: string,
    body: unknown,
  ): Promise<{ state?: string; verified?: boolean; error?: { code: string } }> => {
    if (inFlight >= CLIENT_CONCURRENCY) await new Promise<void>((r) => waiting.push(r));
    inFlight++;
    try {
      const t = performance.now();
      const r = await pool.request({
        path: `/v1.0/actors/SchedulerActor/${encodeActorId(id)}/method/${method}`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body ?? {}),
      });
      const text = await r.body.text();
      const ms = performance.now() - t;
      latencies.push(ms);
      trace?.push(
        `${(t - traceT0).toFixed(1)} ${ms.toFixed(2)} ${method} ${id} ${/"state":"(\w+)"/.exec(text)?.[1] ?? '-'}`,
      );
      if (!byMethod.has(method)) byMethod.set(method, []);
      byMethod.get(method)!.push(ms);
      const answer = JSON.parse(text) as { state?: string; verified?: boolean; error?: { code: string } };
      if (r.statusCode === 503 && answer.error?.code === 'PORTAL_OVERLOADED') return answer;
      if (r.statusCode >= 400) throw new Error(`${method} ${id}: HTTP ${r.statusCode} ${text.slice(0, 300)}`);
      return answer;
    } finally {
      inFlight--;
      waiting.shift()?.();
    }
  };
  try {
    await waitForPort(port, 30_000, `portal serve on ${port}`);
    const edges = mirrors.map((url, i) => ({
      id: `m${i}`,
      config: { url, kind: 'mirror' as const, flags: 0, maxParallel: 8 },
      holds: 'all' as const,
    }));
    const ids = Array.from({ length: n }, (_, i) => `load-${n}-${i}`);
    const mainStat = `/proc/${host.pid}/task/${host.pid}/stat`;
    const mainAtStart = cpuSeconds(mainStat);
    const t0 = performance.now();
    const states = new Map<string, string>();
    const verified = new Set<string>();
    let rejected = 0;
    await Promise.all(
      ids.map(async (id) => {
        const s = await call(id, 'start', {
          transferId: id,
          manifest,
          output: join(outDir, `${id}.bin`),
          edges,
        });
        if (s.error?.code === 'PORTAL_OVERLOADED') rejected++;
        else states.set(id, s.state ?? '');
      }),
    );
    const mainCpuMsPerStart = ((cpuSeconds(mainStat) - mainAtStart) * 1000) / n;
    const queued = [...states.values()].filter((s) => s === 'queued').length;
    process.stderr.write(
      `${n} submitted in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${states.size - queued} running, ${queued} queued, ${rejected} refused\n`,
    );
    const accepted = [...states.keys()];
    let last = t0;
    while (performance.now() - t0 < timeoutS * 1000) {
      const open = accepted.filter((id) => !['done', 'failed'].includes(states.get(id) ?? ''));
      if (open.length === 0) break;
      const round = performance.now();
      await Promise.all(
        open.map(async (id) => {
          try {
            const s = await call(id, 'status', {});
            states.set(id, s.state ?? '');
            if (s.verified) verified.add(id);
            if (s.state === 'done' || s.state === 'failed') last = performance.now();
          } catch {
            /* counted by its latency; the transfer is asked again next round */
          }
        }),
      );
      const wait = pollMs - (performance.now() - round);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    const done = [...states.values()].filter((s) => s === 'done').length;
    const failed = [...states.values()].filter((s) => s === 'failed').length;
    const seconds = (last - t0) / 1000;
    const sorted = [...latencies].sort((a, b) => a - b);
    const mainCpuS = cpuSeconds(mainStat);
    const processCpuS = cpuSeconds(`/proc/${host.pid}/stat`);
    return {
      transfers: n,
      maxRunning: limits.maxRunning,
      maxQueued: limits.maxQueued,
      queued,
      rejected,
      done,
      verified: verified.size,
      failed,
      seconds,
      aggregateMBps: (done * manifest.fileSize) / 1e6 / seconds,
      apiP50Ms: quantile(sorted, 0.5),
      apiP99Ms: quantile(sorted, 0.99),
      statusP99Ms: quantile(
        [...(byMethod.get('status') ?? [])].sort((a, b) => a - b),
        0.99,
      ),
      startP99Ms: quantile(
        [...(byMethod.get('start') ?? [])].sort((a, b) => a - b),
        0.99,
      ),
      apiCalls: latencies.length,
      peakRssMB: peakRss(host.pid!),
      mainCpuS,
      processCpuS,
      mainCpuMsPerStart,
    };
  } finally {
    await pool.close().catch(() => undefined);
    if (trace) writeFileSync(`${process.env.BENCH_LOAD_TRACE}-${n}.txt`, trace.join('\n'));
    // a host with hundreds of transfers left may drain slowly: 10 s, then SIGKILL
    const exited = new Promise((r) => host.once('exit', r));
    host.kill('SIGTERM');
    const timer = setTimeout(() => host.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
    await rm(outDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'portal-bench-load-'));
  const servers: TestNginx[] = [];
  try {
    const src = join(dir, 'file.bin');
    writeFileSync(src, randomBytes(sizeMiB * 1024 * 1024));
    const manifest = await createManifest(src, { chunkSize: chunkKiB * 1024 });
    for (let i = 0; i < 4; i++) servers.push(await startNginx({ root: dir }));
    const mirrors = servers.map((s) => `${s.httpUrl}/file.bin`);
    const rows: Row[] = [];
    const loads: number[] = [loadavg()[0]];
    for (const n of counts) {
      rows.push(await runOne(n, dir, manifest, mirrors));
      loads.push(loadavg()[0]);
      process.stderr.write(`${JSON.stringify(rows[rows.length - 1])}\n`);
    }
    process.stdout.write(
      `${sizeMiB} MiB per transfer from 4 nginx loopback mirrors, one embedded host, status polled every ${pollMs} ms; ${cpus().length} cores; load average ${loads.map((l) => l.toFixed(1)).join(' → ')}\n\n`,
    );
    process.stdout.write(
      '| submitted | max running / queued | queued | refused (503) | done | verified | failed | seconds to last | aggregate MB/s | API p50 ms | API p99 ms | status p99 ms | start p99 ms | API calls | peak RSS MB | main-thread CPU s | process CPU s | main CPU ms / start |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n',
    );
    for (const r of rows)
      process.stdout.write(
        `| ${r.transfers} | ${r.maxRunning} / ${r.maxQueued} | ${r.queued} | ${r.rejected} | ${r.done} | ${r.verified} | ${r.failed} | ${r.seconds.toFixed(1)} | ${r.aggregateMBps.toFixed(0)} | ${r.apiP50Ms.toFixed(1)} | ${r.apiP99Ms.toFixed(1)} | ${r.statusP99Ms.toFixed(1)} | ${r.startP99Ms.toFixed(1)} | ${r.apiCalls} | ${r.peakRssMB.toFixed(0)} | ${r.mainCpuS.toFixed(1)} | ${r.processCpuS.toFixed(1)} | ${r.mainCpuMsPerStart.toFixed(2)} |\n`,
      );
    process.stdout.write(`${JSON.stringify({ sizeMiB, loads, rows })}\n`);
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:load: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
