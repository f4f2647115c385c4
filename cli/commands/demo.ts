import { checkPortsFree } from '../system-errors.js';
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import {
  createEdgeServer,
  createManifest,
  saveManifest,
  createPrng,
  encodeHaveBitmap,
  type EdgeServer,
  type Manifest,
} from '../../transfer/index.js';
import { createFileStateStore } from '../../runtime/index.js';
import { createLogger } from '../../common/logger.js';
import { resolveLogFormat } from '../../common/log-format.js';
import { EdgeFlags } from '../../scheduler/types.js';
import { readPagedJournal, type TransferEdge, type TransferStatus } from '../../actors/index.js';
import type { ChunkReport } from '../../common/index.js';
import { commonFlags, defineCommand, schedulingFlags } from '../args.js';
import { runTransfer, journalDir, parseBackend, localTransferId } from '../../node/index.js';
import { PART_SUFFIX } from '../../transfer/output-target.js';
import { cpuThreadsFromEnv, makeTempDir, requireGpuFromEnv } from '../env.js';
import { createProgress, formatBytes } from '../progress.js';
import { progressDetail } from './fetch.js';
import { freePort } from '../../common/net.js';
import { hasBit } from '../../common/bitset.js';
import { zeroCounters } from '../../scheduler/scheduler.js';
import { makeDirs } from '../../common/make-dirs.js';

const MB = 1_000_000;

/** The demo's mesh: caps, RTTs, flags, share of chunks held, and the two misbehaving edges. */
const EDGES = [
  { name: 'alpha', capMBps: 12, rttMs: 5, flags: 0, share: 0.7 },
  { name: 'bravo', capMBps: 10, rttMs: 20, flags: 0, share: 0.6 }, // killed part-way
  { name: 'charlie', capMBps: 8, rttMs: 40, flags: 0, share: 0.6 },
  { name: 'delta', capMBps: 8, rttMs: 10, flags: 0, share: 0.5 }, // serves corrupt chunks
  { name: 'echo', capMBps: 6, rttMs: 60, flags: EdgeFlags.METERED, share: 0.5 },
  { name: 'foxtrot', capMBps: 6, rttMs: 30, flags: EdgeFlags.BATTERY_LOW, share: 0.5 },
  { name: 'golf', capMBps: 4, rttMs: 80, flags: 0, share: 0.4 },
  { name: 'hotel', capMBps: 4, rttMs: 15, flags: EdgeFlags.METERED | EdgeFlags.BATTERY_LOW, share: 0.4 },
] as const;
const KILLED = 1;
const CORRUPT = 3;

/** Replica sets: each chunk on the edges its hash picks, and always on at least two. */
function replicaSets(chunks: number): Array<Set<number>> {
  const sets = EDGES.map(() => new Set<number>());
  const rnd = createPrng(20261123);
  for (let c = 0; c < chunks; c++) {
    const holders: number[] = [];
    EDGES.forEach((e, i) => {
      if (rnd() < e.share) holders.push(i);
    });
    for (let j = 0; holders.length < 2; j++) {
      const i = (c + j * 3) % EDGES.length;
      if (!holders.includes(i)) holders.push(i);
    }
    for (const i of holders) sets[i].add(c);
  }
  return sets;
}

async function writeRandomFile(
  file: string,
  bytes: number,
  onProgress: (done: number) => void,
): Promise<void> {
  const rnd = createPrng(1);
  const out = createWriteStream(file);
  const block = Buffer.alloc(4 << 20);
  for (let done = 0; done < bytes;) {
    const n = Math.min(block.length, bytes - done);
    for (let i = 0; i < n; i += 4) block.writeUInt32LE((rnd() * 0x100000000) >>> 0, i);
    if (!out.write(block.subarray(0, n))) await new Promise<void>((r) => out.once('drain', () => r()));
    done += n;
    onProgress(done);
  }
  await new Promise<void>((resolve, reject) =>
    out.end((err?: Error | null) => (err ? reject(err) : resolve())),
  );
}

/** Time-weighted sum of the caps of the edges alive within [from, to] (bytes/s). */
function aliveCapacity(from: number, to: number, killedAt: number | undefined): number {
  let sum = 0;
  EDGES.forEach((e, i) => {
    const end = i === KILLED && killedAt !== undefined ? Math.max(from, Math.min(to, killedAt)) : to;
    sum += e.capMBps * MB * (end - from);
  });
  return to > from ? sum / (to - from) : 0;
}

interface PhaseOneLine {
  type: 'started' | 'progress' | 'result';
  complete: number;
  total: number;
  counters?: TransferStatus['counters'];
  ticks?: number;
  tickMsP50?: number;
  tickMsP99?: number;
  /** Chunks each edge delivered in that process so far, by edge id (fetch --progress-json). */
  chunksByEdge?: Record<string, number>;
  backend?: string;
}

/** The `{type:'result'}` line of the phase-1 fetch process, when it finished before the kill (what the demo reads). */
interface PhaseOneResult {
  verified: boolean;
  chunksBySource?: Record<string, number>;
  backend?: string;
}

/** What runInterruptedFetch saw of the phase-1 process. */
interface PhaseOne {
  start: number;
  end: number;
  last?: PhaseOneLine;
  /** The SIGKILL was sent (it may have come after the last chunk: the caller reads the journal). */
  killed: boolean;
  result?: PhaseOneResult;
}

/**
 * The fields of a TransferStatus the report reads, for a phase-1 process that finished its transfer before the kill:
 * no chunk, tick or counter of a resumed run (the report adds the process's own), its backend from its result, and
 * verified by the sha-256 of the file it left (under the name asked for, or still `.portal-part` if the kill came between the
 * journal's end and the rename).
 */
async function phaseOneStatus(
  p: PhaseOne,
  manifest: Manifest,
  output: string,
): Promise<
  Pick<
    TransferStatus,
    | 'verified'
    | 'counters'
    | 'ticks'
    | 'tickMsP50'
    | 'tickMsP99'
    | 'resumedChunks'
    | 'backend'
    | 'perEdgeChunks'
  >
> {
  const file = existsSync(output) ? output : `${output}${PART_SUFFIX}`;
  const hash = createHash('sha256');
  for await (const b of createReadStream(file)) hash.update(b as Buffer);
  return {
    verified: hash.digest('hex') === manifest.fileSha256,
    // nothing ran after the kill: the report adds the process's own counters (its last progress line)
    counters: zeroCounters(),
    ticks: 0,
    tickMsP50: 0,
    tickMsP99: 0,
    resumedChunks: 0,
    backend: p.result?.backend ?? p.last?.backend ?? 'unknown',
    perEdgeChunks: EDGES.map(() => 0),
  };
}

/** `portal demo`: the main job — a 256 MiB transfer over 8 loopback edges with a dead edge, a corrupting edge and a crash + resume. */
export const demoCommand = defineCommand({
  name: 'demo',
  summary:
    'transfer a generated file over 8 loopback edges: one dies, one corrupts, the fetcher is killed and resumes',
  usage: 'portal demo [--size MIB] [--chunk-size BYTES] [--interrupt-at F] [--kill-edge-at F] [--json]',
  flags: [
    {
      name: 'size',
      type: 'number',
      integer: true,
      help: 'file size in MiB',
      default: 256,
      min: 1,
      max: 65536,
    },
    {
      name: 'chunk-size',
      type: 'number',
      integer: true,
      help: 'chunk size in bytes',
      default: 262144,
      min: 4096,
      max: 64 << 20,
    },
    {
      name: 'max-parallel',
      type: 'number',
      integer: true,
      help: 'concurrent fetches per edge',
      default: 8,
      min: 1,
      max: 1024,
    },
    {
      name: 'kill-edge-at',
      type: 'number',
      help: 'fraction of chunks complete when edge "bravo" goes offline',
      default: 0.3,
      min: 0,
      max: 1,
    },
    {
      name: 'interrupt-at',
      type: 'number',
      help: 'fraction complete when the fetch process is SIGKILLed and resumed (0 = no interruption)',
      default: 0.6,
      min: 0,
      max: 0.99,
    },
    {
      name: 'corrupt-rate',
      type: 'number',
      help: 'fraction of chunks edge "delta" corrupts',
      default: 0.1,
      min: 0,
      max: 1,
    },
    {
      name: 'dashboard',
      type: 'boolean',
      help: 'serve the live dashboard while the demo runs (--no-dashboard to turn off)',
      default: true,
    },
    {
      name: 'dashboard-port',
      type: 'number',
      integer: true,
      help: 'dashboard port (0 = any free port)',
      default: 0,
      min: 0,
      max: 65535,
    },
    {
      name: 'linger',
      type: 'number',
      help: 'keep the dashboard up this many seconds after the transfer ends',
      default: 0,
      min: 0,
      max: 86400,
    },
    {
      name: 'dir',
      type: 'string',
      help: 'work folder (default: a new temporary folder, removed afterwards)',
    },
    { name: 'keep', type: 'boolean', help: 'keep the work folder', default: false },
    ...schedulingFlags,
    ...commonFlags,
  ],
  async run({ flags }) {
    // a busy dashboard port is one line (exit 2) before the demo generates anything
    await checkPortsFree([
      { flag: 'dashboard-port', port: flags.dashboard ? flags['dashboard-port'] : undefined },
    ]);
    const json = flags.json;
    const say = (s: string): void => {
      if (!json) process.stderr.write(`${s}\n`);
    };
    const logger = createLogger({
      level: flags['log-level'],
      format: resolveLogFormat(flags['log-format'], 'text'),
    });
    // the default folder is new under the temp dir (never creating a missing TMPDIR); --dir is made as needed
    const dir = flags.dir ?? makeTempDir(`portal-demo-${process.pid}-`, 'the demo (or pass --dir)');
    if (flags.dir) await makeDirs(dir);
    const source = path.join(dir, 'source.bin');
    const output = path.join(dir, 'output.bin');
    await rm(output, { force: true });
    await rm(journalDir(output), { recursive: true, force: true });
    const size = Math.round(flags.size * 1024 * 1024);
    const servers: EdgeServer[] = [];
    try {
      const gen = createProgress('generate', size, {
        quiet: json,
        format: (d, t) => `${formatBytes(d)}/${formatBytes(t)}`,
      });
      await writeRandomFile(source, size, (d) => gen.update(d));
      gen.done();
      const hashing = createProgress('manifest', size, {
        quiet: json,
        format: (d, t) => `${formatBytes(d)}/${formatBytes(t)}`,
      });
      const manifest: Manifest = await createManifest(source, {
        chunkSize: flags['chunk-size'],
        name: 'output.bin',
        onProgress: (d) => hashing.update(d),
      });
      hashing.done(`${manifest.chunks.length} chunks, sha256 ${manifest.fileSha256.slice(0, 16)}…`);
      const manifestPath = path.join(dir, 'source.manifest.json');
      await saveManifest(manifestPath, manifest);

      const sets = replicaSets(manifest.chunks.length);
      for (let i = 0; i < EDGES.length; i++) {
        const e = EDGES[i];
        servers.push(
          await createEdgeServer({
            id: e.name,
            source: { path: source, manifest },
            holds: sets[i],
            bandwidthBytesPerSec: e.capMBps * MB,
            rttMs: e.rttMs,
            faults: i === CORRUPT ? { corruptRate: flags['corrupt-rate'], seed: 7 } : undefined,
            logger: logger.child({ edge: e.name }),
          }),
        );
      }
      const edges: TransferEdge[] = EDGES.map((e, i) => ({
        id: e.name,
        config: {
          url: servers[i].url,
          kind: 'portal',
          flags: e.flags,
          maxParallel: flags['max-parallel'],
        },
        holds: encodeHaveBitmap(sets[i], manifest.chunks.length),
      }));
      const edgesFile = path.join(dir, 'edges.json');
      await writeFile(edgesFile, JSON.stringify(edges, null, 2));
      const capSum = EDGES.reduce((s, e) => s + e.capMBps * MB, 0);
      say(
        `edges: ${EDGES.map((e, i) => `${e.name} ${e.capMBps} MB/s rtt ${e.rttMs} ms${e.flags & EdgeFlags.METERED ? ' metered' : ''}${e.flags & EdgeFlags.BATTERY_LOW ? ' battery' : ''} (${sets[i].size} chunks)`).join(', ')}`,
      );
      say(
        `summed caps ${formatBytes(capSum)}/s; "${EDGES[KILLED].name}" dies at ${(flags['kill-edge-at'] * 100).toFixed(0)}%, "${EDGES[CORRUPT].name}" corrupts ${(flags['corrupt-rate'] * 100).toFixed(0)}% of its chunks`,
      );

      const total = manifest.chunks.length;
      const killEdgeAt = Math.ceil(flags['kill-edge-at'] * total);
      // the kill is asked for before the last chunk (a file of few chunks: 0.6 × 4 rounds up to 3 of 4); whether it
      // landed before it is known afterwards (`interrupted` in the report)
      const interruptAt = Math.min(Math.ceil(flags['interrupt-at'] * total), total - 1);
      const bar = createProgress('transfer', manifest.fileSize, {
        quiet: json,
        format: (d, t) => `${formatBytes(d)}/${formatBytes(t)}`,
      });
      let killedAt: number | undefined;
      const killEdge = (complete: number): void => {
        if (killedAt === undefined && complete >= killEdgeAt) {
          killedAt = performance.now();
          say(`\nkilling edge "${EDGES[KILLED].name}" at ${complete}/${total} chunks`);
          void servers[KILLED].goOffline();
        }
      };

      const dashPort = flags.dashboard ? flags['dashboard-port'] || (await freePort()) : undefined;
      if (dashPort !== undefined) say(`dashboard: http://127.0.0.1:${dashPort}/  (live while the demo runs)`);
      const t0 = performance.now();
      let phase1: PhaseOne | undefined;
      if (interruptAt > 0) {
        phase1 = await runInterruptedFetch(
          manifestPath,
          edgesFile,
          output,
          interruptAt,
          parseBackend(flags.backend),
          flags.learned,
          dashPort,
          (line) => {
            killEdge(line.complete);
            bar.update(
              Math.min(manifest.fileSize, line.complete * manifest.chunkSize),
              `phase 1 (separate process): ${line.complete}/${total} chunks`,
            );
          },
        );
      }
      const journal = await readJournal(output, localTransferId(manifest.id, output));
      const journalBitmap = journal.bitmap;
      // the fetch process ended its transfer before the kill (a small --size): there is nothing to resume, and a
      // start of its done transfer with the demo's request would be refused as another request
      // (or it had published the file when the kill landed, before its finishing turn saved `done`: its partial file
      // is gone and the output is there; a start with the demo's request, not the fetch's, would then be refused)
      const finished =
        phase1 !== undefined &&
        (phase1.result !== undefined ||
          journal.state === 'done' ||
          (!existsSync(`${output}${PART_SUFFIX}`) && existsSync(output)));
      if (phase1)
        say(
          !finished
            ? `\nfetch process SIGKILLed at ${phase1.last?.complete ?? 0}/${total} chunks; resuming from the journal`
            : `\nthe fetch process had all ${total} chunks before the kill landed: no crash mid-transfer, nothing to resume (a larger --size gives it time)`,
        );
      let t1 = performance.now();
      let refetched = 0;
      const started = Date.now();
      // the resumed run's progress line counts the whole run, as the report does: the killed process's failovers and
      // corrupt chunks (its last progress line) are added to the resumed run's own (trial L14: "failovers 9 corrupt
      // 2" above a report of 19 and 4)
      const killed = phase1?.last?.counters;
      const wholeRun = (s: TransferStatus): TransferStatus =>
        killed === undefined
          ? s
          : {
              ...s,
              counters: {
                ...s.counters,
                failovers: s.counters.failovers + killed.failovers,
                corrupt: s.counters.corrupt + killed.corrupt,
              },
            };
      const status = finished
        ? await phaseOneStatus(phase1!, manifest, output)
        : await runTransfer({
            request: {
              transferId: localTransferId(manifest.id, output),
              manifest,
              output,
              edges,
              tickMs: 50,
              learned: flags.learned,
            },
            logger,
            backend: parseBackend(flags.backend),
            requireGpu: requireGpuFromEnv(),
            cpuThreads: cpuThreadsFromEnv(),
            onStarted: () => {
              t1 = performance.now();
            },
            dashboard: dashPort !== undefined ? { port: dashPort, lingerMs: flags.linger * 1000 } : undefined,
            onReport: (r: ChunkReport) => {
              if (r.ok && journalBitmap && hasBit(journalBitmap, r.chunk)) refetched++;
            },
            onProgress: (s) => {
              killEdge(s.complete);
              bar.update(s.bytesDone, progressDetail(wholeRun(s), started));
            },
          });
      if (finished) t1 = performance.now();
      const t2 = performance.now();
      // the kill landed while chunks were missing: the resumed run had some to fetch (its journal, with the chunks the
      // killed process verified after its last flush, may hold them all: then the kill came too late as well)
      const interrupted = phase1 !== undefined && !finished && status.resumedChunks < total;
      bar.done(finished ? undefined : progressDetail(wholeRun(status as TransferStatus), started));

      // "active" = while a scheduler was running: from its start to the kill, and from the resumed start to the end
      const activeMs = (phase1 ? phase1.end - phase1.start : 0) + (t2 - t1);
      const capacity =
        (phase1 ? aliveCapacity(phase1.start, phase1.end, killedAt) * (phase1.end - phase1.start) : 0) +
        aliveCapacity(t1, t2, killedAt) * (t2 - t1);
      const p1 = phase1?.last;
      // its final counts when it finished before the kill, else those of its last progress line
      const p1Counts = phase1?.result?.chunksBySource ?? p1?.chunksByEdge;
      const beforeKill: Record<string, number> = Object.fromEntries(
        EDGES.map((e) => [e.name, p1Counts?.[e.name] ?? 0]),
      );
      const fetchedBytes = manifest.fileSize;
      const ticks1 = p1?.ticks ?? 0;
      const report = {
        verified: status.verified,
        bytes: fetchedBytes,
        seconds: (t2 - t0) / 1000,
        activeSeconds: activeMs / 1000,
        throughputBytesPerSec: fetchedBytes / (activeMs / 1000),
        edgeCapacityBytesPerSec: capacity / activeMs,
        efficiency: fetchedBytes / (activeMs / 1000) / (capacity / activeMs),
        failovers: status.counters.failovers + (p1?.counters?.failovers ?? 0),
        corruptChunksDetected: status.counters.corrupt + (p1?.counters?.corrupt ?? 0),
        corruptChunksServed: servers[CORRUPT].stats().corruptServed,
        timeouts: status.counters.timeouts + (p1?.counters?.timeouts ?? 0),
        hedges: status.counters.hedges + (p1?.counters?.hedges ?? 0),
        tickMsP50:
          ticks1 + status.ticks > 0
            ? ((p1?.tickMsP50 ?? 0) * ticks1 + status.tickMsP50 * status.ticks) / (ticks1 + status.ticks)
            : 0,
        tickMsP99: Math.max(p1?.tickMsP99 ?? 0, status.tickMsP99),
        chunksRefetchedAfterResume: refetched,
        resumedChunks: status.resumedChunks,
        interruptedAtChunk: interrupted ? (p1?.complete ?? null) : null,
        killedEdge: EDGES[KILLED].name,
        backend: status.backend,
        chunks: total,
        /** Whether the kill landed while chunks were still missing (false: no crash run, or it came too late). */
        interrupted,
        // per edge over the whole transfer: the killed process's counts as of its last progress line, plus the resumed
        // run's; `chunksUnattributed` are those it verified and journaled after that line (their edges are unknown)
        perEdgeChunks: Object.fromEntries(
          EDGES.map((e, i) => [e.name, (beforeKill[e.name] ?? 0) + (status.perEdgeChunks[i] ?? 0)]),
        ),
        perEdgeChunksBeforeKill: beforeKill,
        perEdgeChunksAfterResume: Object.fromEntries(
          EDGES.map((e, i) => [e.name, status.perEdgeChunks[i] ?? 0]),
        ),
        chunksUnattributed: Math.max(
          0,
          status.resumedChunks - Object.values(beforeKill).reduce((a, b) => a + b, 0),
        ),
      };
      if (json) process.stdout.write(`${JSON.stringify(report)}\n`);
      else {
        const lines = [
          '',
          `verified        ${report.verified ? 'yes — sha256 matches the manifest' : 'NO'}`,
          `transferred     ${formatBytes(report.bytes)} in ${report.seconds.toFixed(2)} s (${report.activeSeconds.toFixed(2)} s with edges serving)`,
          `throughput      ${formatBytes(report.throughputBytesPerSec)}/s of ${formatBytes(report.edgeCapacityBytesPerSec)}/s alive edge capacity (${(report.efficiency * 100).toFixed(1)}%)`,
          `failovers       ${report.failovers} (timeouts ${report.timeouts}, hedges ${report.hedges})`,
          `corrupt chunks  ${report.corruptChunksDetected} detected by CID (${report.corruptChunksServed} served by "${EDGES[CORRUPT].name}")`,
          report.interrupted
            ? `resume          ${report.resumedChunks} chunks kept from the journal, ${report.chunksRefetchedAfterResume} fetched again`
            : `resume          not exercised: ${phase1 ? `the fetch process had all ${total} chunks before the kill landed` : 'no crash (--interrupt-at 0)'}`,
          `tick            p50 ${report.tickMsP50.toFixed(3)} ms, p99 ${report.tickMsP99.toFixed(3)} ms on ${report.backend}`,
          `per edge        ${Object.entries(report.perEdgeChunks)
            .map(
              ([k, v]) =>
                `${k} ${v} (${report.perEdgeChunksBeforeKill[k]}+${report.perEdgeChunksAfterResume[k]})`,
            )
            .join(', ')}`,
          `                (before the kill + after the resume${report.chunksUnattributed > 0 ? `; ${report.chunksUnattributed} chunks verified by the killed process after its last progress line, edge unknown` : ''})`,
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      return report.verified && report.chunksRefetchedAfterResume === 0 ? 0 : 1;
    } finally {
      await Promise.all(servers.map((s) => s.close()));
      if (!flags.dir && !flags.keep) await rm(dir, { recursive: true, force: true });
    }
  },
});

/** Runs `portal fetch` in a child process and SIGKILLs it once `interruptAt` chunks are complete. */
async function runInterruptedFetch(
  manifestPath: string,
  edgesFile: string,
  output: string,
  interruptAt: number,
  backend: string,
  learned: boolean,
  dashPort: number | undefined,
  onLine: (l: PhaseOneLine) => void,
): Promise<PhaseOne> {
  const main = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'main.js');
  const child = spawn(
    process.execPath,
    [
      main,
      'fetch',
      manifestPath,
      '--edges-file',
      edgesFile,
      '--out',
      output,
      '--progress-json',
      '--backend',
      backend,
      ...(learned ? ['--learned'] : []),
      ...(dashPort !== undefined ? ['--dashboard', '--dashboard-port', String(dashPort)] : []),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let last: PhaseOneLine | undefined;
  let result: PhaseOneResult | undefined;
  let end = 0;
  let start = performance.now();
  const rl = createInterface({ input: child.stdout });
  rl.on('line', (text) => {
    let line: PhaseOneLine;
    try {
      line = JSON.parse(text) as PhaseOneLine;
    } catch {
      return;
    }
    if (line.type === 'started') {
      start = performance.now();
      return;
    }
    if (line.type === 'result') {
      result = line as unknown as PhaseOneResult; // it finished before the kill
      return;
    }
    if (line.type !== 'progress') return;
    last = line;
    onLine(line);
    if (line.complete >= interruptAt && end === 0) {
      end = performance.now();
      child.kill('SIGKILL');
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  // killed: the SIGKILL was sent (it may still have come after the last chunk: the caller reads the journal)
  const killed = end !== 0;
  if (end === 0) end = performance.now();
  if (code !== null && code !== 0) throw new Error(`phase 1 fetch process exited with ${code}`);
  return { start, end, last, killed, result };
}

/** The completion bitmap and state of the journal beside `output`, read independently of the scheduler. */
async function readJournal(
  output: string,
  transferId: string,
): Promise<{ bitmap?: Uint8Array; state?: string }> {
  const store = createFileStateStore(journalDir(output));
  try {
    const got = await readPagedJournal<{ bitmap: string; state?: string }>(async <T>(key: string) => {
      const raw = await store.get(`SchedulerActor||${transferId}||${key}`);
      return raw === undefined ? undefined : (JSON.parse(raw) as T);
    });
    return {
      bitmap: got?.journal.bitmap ? Buffer.from(got.journal.bitmap, 'base64') : undefined,
      state: got?.journal.state,
    };
  } finally {
    await store.close();
  }
}
