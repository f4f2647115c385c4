/**
 * Data-fabric benchmarks, on loopback with real processes (`portal fetch` from dist/):
 *
 * - ttfb: time to first byte of Range reads at random offsets of a running transfer (`fetch --serve`),
 *   against one chunk's fetch time from the fastest edge (goal ≤ 2×).
 * - swarm: N fetchers of one file from one origin capped at R bytes/s with `--swarm` (haves over NATS),
 *   against one fetcher alone and N independent fetchers, in the same run: bytes the origin served and the
 *   slowest fetcher's time (goals: origin ≤ 1.5 × the file, slowest ≤ 1.5 × one alone).
 *
 * `npm run bench:fabric -- [--only ttfb|swarm] [--size-mib 64] [--fetchers 8] [--origin-rate 20000000]
 *   [--runs alone,swarm,independent] [--linger 10] [--cpu-prof-dir DIR]` (`--runs` picks the swarm bench's runs;
 *   `--linger`: seconds a swarm fetcher keeps serving after it is done, not counted in its time; `--cpu-prof-dir`:
 *   each `portal` process writes a V8 CPU profile, `.cpuprofile`, into DIR). Each run's outputs are deleted after it,
 *   so 8 × 256 MiB needs about 2 GiB of /tmp at a time.
 *
 * The swarm's result per run: `chunksFromPeers` of `chunksTotal` (each fetcher's own count of chunks per source),
 * and `cpuSeconds`, the CPU time of all its fetchers (each one's `cpuSeconds` on its result line).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { createInterface } from 'node:readline';
import { request } from 'undici';
import { createEdgeServer, createManifest, type EdgeServer, type Manifest } from '../transfer/index.js';
import { arg, quantile, startBenchNats } from './lib.js';

const MAIN = path.resolve('dist/cli/main.js');
const CHUNK = 256 * 1024;

interface Proc {
  lines: string[];
  line<T>(pick: (l: string) => T | undefined): Promise<T>;
  exit: Promise<number | null>;
}

/** `--cpu-prof-dir DIR`: every `portal` process writes a V8 CPU profile there (node refuses --cpu-prof in NODE_OPTIONS). */
const CPU_PROF_DIR = arg('cpu-prof-dir', '');

function portal(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const prof = CPU_PROF_DIR ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF_DIR] : [];
  const child = spawn(process.execPath, [...prof, MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, PORTAL_LOG_LEVEL: process.env.PORTAL_LOG_LEVEL ?? 'error', ...env },
  });
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  createInterface({ input: child.stdout }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters.splice(0)) w();
  });
  const exit = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return {
    lines,
    exit,
    line<T>(pick: (l: string) => T | undefined): Promise<T> {
      return new Promise((resolve) => {
        let seen = 0;
        const check = (): void => {
          for (; seen < lines.length; seen++) {
            const v = pick(lines[seen]);
            if (v !== undefined) return resolve(v);
          }
          waiters.push(check);
        };
        check();
      });
    },
  };
}

async function makeFile(
  dir: string,
  mib: number,
): Promise<{ source: string; manifestPath: string; m: Manifest }> {
  const source = path.join(dir, 'source.bin');
  await writeFile(source, crypto.randomBytes(mib * 1024 * 1024));
  const m = await createManifest(source, { chunkSize: CHUNK, name: 'out.bin' });
  const manifestPath = path.join(dir, 'source.manifest.json');
  await writeFile(manifestPath, JSON.stringify(m));
  return { source, manifestPath, m };
}

/** The edges of the ttfb and reader runs: caps in bytes/s, 5 ms RTT, each holding the whole file. */
const EDGE_RATES = [2e6, 3e6, 3e6, 4e6];

async function startEdges(source: string, m: Manifest): Promise<EdgeServer[]> {
  const edges: EdgeServer[] = [];
  for (const [i, rate] of EDGE_RATES.entries())
    edges.push(
      await createEdgeServer({
        id: `t${i}`,
        source: { path: source, manifest: m },
        bandwidthBytesPerSec: rate,
        rttMs: 5,
      }),
    );
  return edges;
}

/**
 * One chunk's fetch time from the fastest edge, idle, two ways: `idleMs`, the first chunk from a full token
 * bucket (its burst, max(64 KiB, rate / 20) = 200 kB at 4 MB/s, comes at once, so this is faster than the
 * cap allows), and `atCapMs`, the mean of the 3rd and 4th of four chunks fetched back to back (the bucket
 * is empty, as it is on an edge a running transfer keeps busy: chunk / cap + RTT).
 */
async function chunkYardstick(edge: EdgeServer, m: Manifest): Promise<{ idleMs: number; atCapMs: number }> {
  const times: number[] = [];
  for (let k = 0; k < 4; k++) {
    const t0 = performance.now();
    const res = await request(`${edge.url}/v1/chunks/${m.chunks[k]}`);
    await res.body.arrayBuffer();
    times.push(performance.now() - t0);
  }
  return { idleMs: times[0], atCapMs: (times[2] + times[3]) / 2 };
}

/** `portal fetch --serve 0` of the manifest from the edges; resolves with the process and its content URL. */
async function servingFetch(
  manifestPath: string,
  edges: EdgeServer[],
  out: string,
): Promise<{ proc: Proc; url: string }> {
  const proc = portal([
    'fetch',
    manifestPath,
    ...edges.flatMap((e) => ['--edge', e.url]),
    '--out',
    out,
    '--serve',
    '0',
    '--progress-json',
  ]);
  const url = await proc.line((l) => {
    const j = JSON.parse(l) as { type?: string; url?: string };
    return j.type === 'serving' ? j.url : undefined;
  });
  return { proc, url };
}

/** The content server's counters (the `content` line `portal fetch --progress-json` prints at its end). */
async function contentStats(proc: Proc): Promise<Record<string, number> | undefined> {
  await proc.exit;
  for (const l of proc.lines) {
    try {
      const j = JSON.parse(l) as { type?: string };
      if (j.type === 'content') return j as unknown as Record<string, number>;
    } catch {
      // not a JSON line
    }
  }
  return undefined;
}

async function ttfb(dir: string, mib: number): Promise<void> {
  const { source, manifestPath, m } = await makeFile(dir, mib);
  const edges = await startEdges(source, m);
  const fastest = edges[EDGE_RATES.indexOf(Math.max(...EDGE_RATES))];
  const one = await chunkYardstick(fastest, m);
  const { proc: fetch, url } = await servingFetch(manifestPath, edges, path.join(dir, 'ttfb.bin'));
  const times: number[] = [];
  const n = m.chunks.length;
  for (let k = 0; k < 12; k++) {
    // offsets in the second half (chunk order would fetch them last), each 8 chunks below the one before: a
    // read's read-ahead runs forward, so no earlier read has fetched the chunk (every read is cold)
    const c = n - 2 - 8 * k;
    const offset = c * CHUNK + 1000;
    const s = performance.now();
    // the transfer may end before all reads: then the reads stop (the fetch process is gone)
    const res = await request(url, { headers: { range: `bytes=${offset}-${offset + 65535}` } }).catch(
      () => undefined,
    );
    if (!res) break;
    let first = 0;
    for await (const piece of res.body) {
      if (first === 0 && (piece as Buffer).length > 0) first = performance.now() - s;
    }
    times.push(first);
    if (process.env.BENCH_DEBUG) console.error('read', k, c, first);
    await new Promise((r) => setTimeout(r, 150));
  }
  const content = await contentStats(fetch);
  for (const e of edges) await e.close();
  const sorted = [...times].sort((a, b) => a - b);
  const p50 = quantile(sorted, 0.5);
  const max = sorted[sorted.length - 1];
  console.log(
    JSON.stringify({
      bench: 'ttfb',
      fileMiB: mib,
      edgesBytesPerSec: EDGE_RATES,
      chunkBytes: CHUNK,
      oneChunkFastestEdgeIdleMs: +one.idleMs.toFixed(1),
      oneChunkFastestEdgeAtCapMs: +one.atCapMs.toFixed(1),
      reads: times.length,
      ttfbMsP50: +p50.toFixed(1),
      ttfbMsMax: +max.toFixed(1),
      ratioP50Idle: +(p50 / one.idleMs).toFixed(2),
      ratioP50AtCap: +(p50 / one.atCapMs).toFixed(2),
      ratioMaxAtCap: +(max / one.atCapMs).toFixed(2),
      content,
    }),
  );
}

/**
 * A sequential reader at `share` × the edges' summed caps: one process reads the content of a running
 * `portal fetch --serve` through Range requests of `readBytes` on one keep-alive connection, from
 * `startAt` × the file size to the end. Read k is due `readBytes / rate` after read k−1 was due (a player
 * consuming at a constant rate); the reader issues it at its due time and needs all its bytes before the
 * next is due. A read that ends later is late by the excess, and the schedule shifts by it (playback
 * paused while the bytes come). Lateness has two causes, reported apart: the reader's own timer waking late (a
 * busy machine: the read goes out after its due time, `readerTimerLateMs`), and Portal answering a read in more
 * than one period (`stallsAfterFirst`, `stallMsAfterFirst`: the answer time beyond the period, the goal's
 * figure; the first read waits for its chunk's fetch). The content server's own count of reads that waited for
 * bytes not yet verified comes with them (`content.stalls`, first read included), and the server's own side of
 * every read it answered from verified bytes: `content.readyAnswers` (a histogram of request-to-last-byte times)
 * and `content.eventLoopDelayMs` (how long its thread could leave an arrived request waiting). A read late by the
 * reader's clock but answered within its period by the server was delayed outside Portal's code.
 */
async function reader(
  dir: string,
  mib: number,
  share: number,
  startAt: number,
  readBytes: number,
): Promise<void> {
  const { source, manifestPath, m } = await makeFile(dir, mib);
  const edges = await startEdges(source, m);
  const rate = share * EDGE_RATES.reduce((a, b) => a + b, 0);
  const { proc: fetch, url } = await servingFetch(manifestPath, edges, path.join(dir, 'reader.bin'));
  const src = await readFile(source);
  const from = Math.floor((startAt * m.fileSize) / CHUNK) * CHUNK;
  const periodMs = (readBytes / rate) * 1000;
  let due = 0;
  let stalls = 0;
  let stallMs = 0;
  let lateReads = 0;
  let lateMs = 0;
  let timerLateMs = 0;
  let firstReadMs = 0;
  let reads = 0;
  let mismatches = 0;
  let endedEarlyAt: number | undefined;
  const began = performance.now();
  for (let pos = from; pos < m.fileSize; pos += readBytes) {
    const now = performance.now();
    if (reads > 0 && now < due) await new Promise((r) => setTimeout(r, due - now));
    const issued = performance.now();
    if (reads === 0) due = issued;
    const last = Math.min(m.fileSize, pos + readBytes) - 1;
    // the transfer may end before the reader (then its content server is gone): the reader stops there
    const got = await request(url, { headers: { range: `bytes=${pos}-${last}` } })
      .then(async (res) => ({ res, body: Buffer.from(await res.body.arrayBuffer()) }))
      .catch(() => undefined);
    if (!got) {
      endedEarlyAt = pos;
      break;
    }
    const { res, body } = got;
    if (res.statusCode !== 206 || !body.equals(src.subarray(pos, last + 1))) mismatches++;
    const ended = performance.now();
    if (reads === 0) {
      firstReadMs = ended - issued;
      due = ended + periodMs;
    } else {
      const late = ended - (due + periodMs);
      const slow = ended - issued - periodMs;
      timerLateMs += Math.max(0, issued - due);
      if (process.env.BENCH_DEBUG) console.error('read', reads, pos / CHUNK, ended - issued, late);
      if (slow > 0) {
        stalls++;
        stallMs += slow;
      }
      if (late > 0) {
        lateReads++;
        lateMs += late;
        due += late;
      }
      due += periodMs;
    }
    reads++;
  }
  const readSeconds = (performance.now() - began) / 1000;
  const content = await contentStats(fetch);
  for (const e of edges) await e.close();
  console.log(
    JSON.stringify({
      bench: 'reader',
      fileMiB: mib,
      edgesBytesPerSec: EDGE_RATES,
      chunkBytes: CHUNK,
      readerBytesPerSec: rate,
      readBytes,
      startOffset: from,
      reads,
      firstReadMs: +firstReadMs.toFixed(1),
      stallsAfterFirst: stalls,
      stallMsAfterFirst: +stallMs.toFixed(1),
      lateReadsAfterFirst: lateReads,
      lateMsAfterFirst: +lateMs.toFixed(1),
      readerTimerLateMs: +timerLateMs.toFixed(1),
      readSeconds: +readSeconds.toFixed(2),
      idealReadSeconds: +((m.fileSize - from) / rate).toFixed(2),
      bytesMismatched: mismatches,
      ...(endedEarlyAt !== undefined ? { transferEndedBeforeOffset: endedEarlyAt } : {}),
      content,
    }),
  );
}

/** A stdout line as JSON, or {} when it is not one. */
function parseLine(l: string): Record<string, unknown> {
  try {
    return JSON.parse(l) as Record<string, unknown>;
  } catch {
    return {};
  }
}

async function swarm(
  dir: string,
  mib: number,
  fetchers: number,
  originRate: number,
  runs: Set<string>,
  linger: number,
): Promise<void> {
  const { source, manifestPath, m } = await makeFile(dir, mib);
  const nats = await startBenchNats();
  const run = async (label: string, count: number, swarmMode: boolean): Promise<Record<string, unknown>> => {
    const origin = await createEdgeServer({
      id: `origin-${label}`,
      source: { path: source, manifest: m },
      bandwidthBytesPerSec: originRate,
    });
    const started = performance.now();
    const outs = Array.from({ length: count }, (_, i) => path.join(dir, `${label}-${i}.bin`));
    const procs = outs.map((out, i) =>
      portal(
        [
          'fetch',
          manifestPath,
          '--edge',
          origin.url,
          '--out',
          out,
          '--progress-json',
          ...(swarmMode ? ['--swarm', '--swarm-id', `${label}${i}`, '--swarm-linger', String(linger)] : []),
        ],
        // only the swarm talks over NATS (its haves); the others move their bytes as a plain fetch does
        swarmMode ? { NATS_URL: nats.url } : {},
      ),
    );
    // a fetcher is done at its first progress line with every chunk complete (a swarm peer then lingers to
    // seed the others); one that exits first, without it, failed
    const done = await Promise.all(
      procs.map((p) =>
        Promise.race([
          p.line((l) => {
            const j = parseLine(l) as { type?: string; complete?: number; total?: number };
            return (j.type === 'progress' && j.complete === j.total) || j.type === 'result'
              ? performance.now() - started
              : undefined;
          }),
          p.exit.then(() => Number.NaN),
        ]),
      ),
    );
    const originBytes = origin.stats().bytesServed;
    const codes = await Promise.all(procs.map((p) => p.exit));
    await origin.close();
    // chunks each fetcher took from a peer rather than the origin (its result line counts chunks per source)
    let fromPeers = 0;
    const cpu: number[] = [];
    for (const p of procs)
      for (const l of p.lines) {
        const j = parseLine(l) as {
          type?: string;
          chunksBySource?: Record<string, number>;
          cpuSeconds?: number;
        };
        if (j.type !== 'result') continue;
        if (typeof j.cpuSeconds === 'number') cpu.push(j.cpuSeconds);
        // peers are the other fetchers (swarm ids `<label><i>`); the origin is under the id fetch gave its URL
        for (const [id, n] of Object.entries(j.chunksBySource ?? {}))
          if (id.startsWith(label)) fromPeers += n;
      }
    // the outputs go now: 3 runs of 8 × 256 MiB need not sit on the disk together
    await Promise.all(
      outs.flatMap((o) => [rm(o, { force: true }), rm(`${o}.portal`, { recursive: true, force: true })]),
    );
    const ok = done.filter((d) => !Number.isNaN(d));
    return {
      run: label,
      fetchers: count,
      failed: codes.filter((c) => c !== 0).length,
      slowestS: ok.length === count ? +(Math.max(...ok) / 1000).toFixed(2) : null,
      fastestS: ok.length > 0 ? +(Math.min(...ok) / 1000).toFixed(2) : null,
      originBytesOverFile: +(originBytes / m.fileSize).toFixed(2),
      chunksFromPeers: fromPeers,
      chunksTotal: count * m.chunks.length,
      // CPU seconds of all fetchers together up to their result lines (a swarm peer's linger not counted)
      cpuSeconds: +cpu.reduce((a, b) => a + b, 0).toFixed(1),
    };
  };
  const alone = runs.has('alone') ? await run('alone', 1, false) : undefined;
  const sw = runs.has('swarm') ? await run('swarm', fetchers, true) : undefined;
  const indep = runs.has('independent') ? await run('independent', fetchers, false) : undefined;
  await nats.stop();
  console.log(
    JSON.stringify({
      bench: 'swarm',
      fileMiB: mib,
      originBytesPerSec: originRate,
      alone,
      swarm: sw,
      independent: indep,
      ...(sw?.slowestS && alone?.slowestS
        ? { slowestSwarmOverAlone: +((sw.slowestS as number) / (alone.slowestS as number)).toFixed(2) }
        : {}),
    }),
  );
}

async function main(): Promise<void> {
  const only = arg('only', 'all');
  const mib = Number(arg('size-mib', '64'));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'portal-bench-fabric-'));
  try {
    console.log(
      JSON.stringify({
        machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`,
        node: process.version,
        date: new Date().toISOString(),
      }),
    );
    if (only === 'all' || only === 'ttfb') await ttfb(dir, mib);
    if (only === 'all' || only === 'reader')
      await reader(
        dir,
        mib,
        Number(arg('reader-share', '0.8')),
        Number(arg('reader-start', '0.5')),
        Number(arg('read-kib', '256')) * 1024,
      );
    if (only === 'all' || only === 'swarm')
      await swarm(
        dir,
        mib,
        Number(arg('fetchers', '8')),
        Number(arg('origin-rate', '20000000')),
        new Set(arg('runs', 'alone,swarm,independent').split(',')),
        Number(arg('linger', '10')),
      );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

void main();
