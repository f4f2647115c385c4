/**
 * A data-plane worker thread (see data-plane.ts): receives chunk bodies over its own undici client, hashes
 * each piece as it arrives and writes it at its file offset (pwrite), then reports the outcome. Only job
 * descriptions and outcomes cross the thread boundary; chunk bytes stay here.
 */
import { BufferPool } from '../common/buffer-pool.js';
import type { Hash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';
import { PortalError } from '../common/errors.js';
import { ChunkFetchError } from './chunk-fetch-error.js';
import { openChunkWriter, type ChunkWriter } from './chunk-writer.js';
import { checkStillConfinedSync } from './output-target.js';
import { createHttpClient, type HttpClient } from './http-client.js';
import type { PrestartedWorkerData } from './data-thread-prestart.js';
import { fetchChunkTo, type ChunkSink, type FetchChunkRequest } from './http-fetch.js';
import {
  hashFileRange,
  openPartialChunkLog,
  partialRecorder,
  type PartialChunkLog,
} from './partial-chunks.js';
import type { DataJob, DataOutcome, DataWorkerData, FromDataWorker, ToDataWorker } from './data-protocol.js';

const port = parentPort!;
/**
 * This thread's configuration and HTTP client: from its workerData, or, for a thread started before its plane
 * (data-thread-prestart.ts), from the `init` message that comes before any job.
 */
let data: DataWorkerData;
let client: HttpClient;
/**
 * V8's own collector, for the young-generation collections after every `gcEveryBytes` received (see
 * DATA_GC_EVERY_BYTES). Node exposes it only with --expose-gc; the flag set at run time installs `gc` in
 * contexts created afterwards, so it is read from a fresh vm context. Undefined when V8 refuses: then V8
 * collects on its own schedule (more memory, same results).
 */
function gcFunction(): ((o: { type: 'minor' }) => void) | undefined {
  try {
    v8.setFlagsFromString('--expose-gc');
    const f: unknown = vm.runInNewContext('gc');
    return typeof f === 'function' ? (f as (o: { type: 'minor' }) => void) : undefined;
  } catch {
    return undefined;
  }
}

const prestarted = (workerData as Partial<PrestartedWorkerData>).awaitInit === true;
/**
 * V8's collector, looked up at the first collection, once `gcEveryBytes` have come in (a new vm context: 2–30 ms
 * of this thread). Not at the thread's start: a prestarted thread is still booting when `portal fetch` dispatches
 * its first chunks, so whatever it runs before them delays the transfer's first requests.
 */
let gc: { fn: ((o: { type: 'minor' }) => void) | undefined } | undefined;

function init(d: DataWorkerData): void {
  data = d;
  client = createHttpClient(d.http);
}

if (!prestarted) init(workerData as DataWorkerData);

let receivedSinceGc = 0;
/** Counts received bytes and collects the young generation every gcEveryBytes. */
function received(n: number): void {
  if (!(data.gcEveryBytes > 0)) return;
  receivedSinceGc += n;
  if (receivedSinceGc < data.gcEveryBytes) return;
  receivedSinceGc = 0;
  (gc ??= { fn: gcFunction() }).fn?.({ type: 'minor' });
}

/** Open output files of this thread, by path. */
const files = new Map<string, Promise<ChunkWriter>>();
/** Partial-chunk logs of this thread's streamed outputs, by output path (null: it cannot be opened). */
const partialLogs = new Map<string, PartialChunkLog | null>();
/** Read buffer for hashing a kept prefix back from the file. */
const prefixScratch = Buffer.allocUnsafeSlow(256 * 1024);

function partialLogFor(output: string): PartialChunkLog | null {
  let log = partialLogs.get(output);
  if (log === undefined) {
    try {
      confineOpen(output); // the log lies in the output's folder
      log = openPartialChunkLog(output);
    } catch {
      // a read-only folder, or a link planted at the log's path (never followed): chunks are fetched whole, as
      // without the log
      log = null;
    }
    partialLogs.set(output, log);
  }
  return log;
}

/**
 * Faults after which a kept prefix is thrown away and the chunk fetched whole at once: its bytes may be the
 * wrong ones (corrupt), or the source cannot send the rest alone (it ignores Range).
 */
const PREFIX_FAULTS = new Set(['corrupt', 'range-ignored', 'content-range']);

interface Running {
  id: number;
  job: DataJob;
  ac: AbortController;
  /** Writes its pieces to the file as they come (else: into a pooled buffer, written once verified). */
  streaming: boolean;
  /** A concurrent attempt of the same chunk was verified first: this one must not write again. */
  superseded: boolean;
  /** Bytes [0, written) of the chunk that this attempt (a streaming one) has written to the file so far. */
  written: number;
}

/** Attempts of one chunk of one file running at once here (endgame hedges), and whether one was verified. */
interface Region {
  running: Set<Running>;
  verified: boolean;
}

const running = new Map<number, Running>();
const regions = new Map<string, Region>();

/**
 * Chunk-sized buffers for attempts that cannot stream (a hedge of a chunk another attempt is writing, or
 * streamWrites off), reused so a steady state allocates nothing (at most 8 kept).
 */
const pool = new BufferPool(8);

/**
 * Bytes this thread writes to a file between two background fdatasyncs (openChunkWriter's syncEveryBytes):
 * the file's closing sync then flushes at most about this much per thread instead of the whole file, and that
 * sync is on the path from the last byte to the process's exit (the output is durable before it takes its
 * name). 4 MiB: the closing sync of the throttled-mirrors fetch took 3–5 ms against 10–18 ms with 16 MiB (4 runs
 * each, BENCHMARKS.md "Issue 15", session 13), and a 512 MiB fetch from 4 local nginx (128 background syncs per
 * thread instead of 32, each on libuv's pool, never on this thread's loop) took the same wall and CPU time
 * (1.51–1.62 s and 1.96–2.06 CPU s against 1.55–1.64 s and 1.95–2.04 s, 3 runs each). A whole 128 MiB file
 * took 100–125 ms to flush.
 */
const BACKGROUND_SYNC_BYTES = 4 * 1024 * 1024;

/**
 * The output root's confinement checked again right before this thread opens `file` by name (an executor with a
 * root): the dispatch was confined when its transfer was attached, but threads open their files lazily, and a
 * folder of the path may be a link by then. Throws PORTAL_OUTPUT_OUTSIDE_ROOT.
 */
function confineOpen(file: string): void {
  if (data.outputRoot === undefined) return;
  realRoot ??= realpathSync(data.outputRoot);
  checkStillConfinedSync(realRoot, file);
}
/** The real path of DataWorkerData.outputRoot, resolved at this thread's first open. */
let realRoot: string | undefined;

function writerFor(job: DataJob): Promise<ChunkWriter> {
  let w = files.get(job.output);
  if (!w) {
    w = Promise.resolve()
      .then(() => confineOpen(job.output))
      .then(() =>
        openChunkWriter(job.output, { fileSize: job.fileSize, syncEveryBytes: BACKGROUND_SYNC_BYTES }),
      );
    files.set(job.output, w);
    w.catch(() => {
      if (files.get(job.output) === w) files.delete(job.output);
    });
  }
  return w;
}

const post = (m: FromDataWorker): void => port.postMessage(m);

function failure(r: Running, err: unknown, t0: number): DataOutcome {
  const { job } = r;
  const elapsed = performance.now() - t0;
  if (r.superseded)
    return {
      ok: false,
      reason: 'cancelled',
      fault: 'cancelled',
      detail: 'superseded: another attempt of this chunk was verified first',
      firstByteMs: 0,
      elapsedMs: elapsed,
    };
  if (err instanceof ChunkFetchError) {
    const io = err.reason === 'io';
    return {
      ok: false,
      reason: err.reason,
      fault: err.fault,
      detail: io ? `cannot write chunk ${job.chunk} to ${job.output}: ${err.detail}` : err.detail,
      firstByteMs: err.firstByteMs ?? 0,
      elapsedMs: err.elapsedMs,
      ...(err.retryAfterMs !== undefined ? { retryAfterMs: err.retryAfterMs } : {}),
      ...(err.status !== undefined ? { status: err.status } : {}),
    };
  }
  // Bad dispatch fields (PORTAL_INVALID_ARGUMENT), a file that cannot be opened or written: one report still.
  const msg = (err as Error)?.message ?? String(err);
  return {
    ok: false,
    reason: 'io',
    fault: 'io',
    detail:
      err instanceof PortalError && err.code === 'PORTAL_INVALID_ARGUMENT'
        ? msg
        : `cannot write chunk ${job.chunk} to ${job.output}: ${msg}`,
    firstByteMs: 0,
    elapsedMs: elapsed,
  };
}

/**
 * Bytes of chunk `job` that an attempt streaming it into the file has written so far (the largest among those
 * still running, not superseded or cancelled), below the whole chunk; 0 when none. A hedge (an attempt that
 * cannot stream: it buffers the chunk, written once verified) asks its source only for the rest of the chunk
 * after them and is verified with them, as a failover resumes from the partial-chunk log: on the throttled-
 * mirrors bench an endgame hedge on the fast mirror fetched the whole chunk while the slow one had written
 * 0.5-0.8 MB of it (up to ~1.1 MB per run fetched twice, at the very end of the transfer).
 */
function streamedSoFar(region: Region, job: DataJob): number {
  let most = 0;
  for (const o of region.running)
    if (o.streaming && !o.superseded && !o.ac.signal.aborted && o.written > most) most = o.written;
  return most < job.length ? most : 0;
}

/** True when two sha-256 states (neither finished) have the same digest so far; neither is consumed. */
function sameDigest(a: Hash, b: Hash): boolean {
  return a.copy().digest().equals(b.digest());
}

async function run(id: number, job: DataJob): Promise<void> {
  const t0 = performance.now();
  const key = `${job.output}\u0000${job.chunk}`;
  let region = regions.get(key);
  if (!region) regions.set(key, (region = { running: new Set(), verified: false }));
  const r: Running = {
    id,
    job,
    ac: new AbortController(),
    streaming: data.streamWrites && region.running.size === 0,
    superseded: false,
    written: 0,
  };
  running.set(id, r);
  region.running.add(r);
  let buffer: Buffer | undefined;
  let outcome: DataOutcome;
  /** Bytes of the chunk kept from an earlier fetch (not fetched again). */
  let kept = 0;
  /** Bytes [0, written) of the chunk are in the file (a streaming attempt). */
  let written = 0;
  let log: PartialChunkLog | null = null;
  try {
    const w = await writerFor(job);
    let sink: ChunkSink;
    log = r.streaming && data.keepPartialChunks ? partialLogFor(job.output) : null;
    if (r.streaming) {
      const record = log ? partialRecorder(log, job.chunk, job.cid, job.length) : undefined;
      sink = {
        write(piece, at) {
          if (r.superseded) throw new PortalError('PORTAL_CANCELLED', 'superseded');
          w.writeSync(job.offset + at, piece);
          written = r.written = at + piece.length;
          record?.(written);
          received(piece.length);
        },
      };
    } else {
      const b = (buffer = pool.take(job.length));
      sink = {
        write(piece, at) {
          piece.copy(b, at);
          received(piece.length);
        },
      };
    }
    const req: FetchChunkRequest = {
      edgeUrl: job.edgeUrl,
      edgeKind: job.edgeKind,
      cid: job.cid,
      offset: job.offset,
      length: job.length,
      timeoutMs: job.timeoutMs,
      fileSize: job.fileSize,
      signal: r.ac.signal,
      client,
    };
    // the first bytes of this chunk may be in the file already, from a fetch a crash or a failure cut short, or
    // (a hedge) from the attempt streaming the chunk into the file right now
    const k = log ? log.kept(job.chunk, job.cid, job.length) : buffer ? streamedSoFar(region, job) : 0;
    if (k > 0) {
      try {
        req.prefix = { length: k, hash: hashFileRange(job.output, job.offset, k, prefixScratch) };
      } catch {
        log?.forget(job.chunk);
      }
    }
    let t;
    try {
      t = await fetchChunkTo(req, sink);
    } catch (err) {
      if (err instanceof ChunkFetchError && err.fault === 'corrupt') log?.forget(job.chunk);
      if (
        !req.prefix ||
        !(err instanceof ChunkFetchError) ||
        !PREFIX_FAULTS.has(err.fault) ||
        r.ac.signal.aborted
      )
        throw err;
      // the kept bytes were wrong, or this source cannot send the rest alone: the whole chunk, now
      req.prefix = undefined;
      written = 0;
      t = await fetchChunkTo(req, sink);
    }
    if (req.prefix) kept = req.prefix.length;
    if (r.superseded) throw new PortalError('PORTAL_CANCELLED', 'superseded');
    if (buffer && !region.verified) {
      // A hedge that asked only for the rest: the streamed bytes it was verified with must still be those in the
      // file (the streaming attempt rewrites them only when its source restarted the chunk, and then with what
      // that source sent again); when they changed it leaves the chunk to the streaming attempt.
      if (
        kept > 0 &&
        !sameDigest(req.prefix!.hash, hashFileRange(job.output, job.offset, kept, prefixScratch))
      ) {
        r.superseded = true;
        throw new PortalError('PORTAL_CANCELLED', 'the streamed bytes it continued changed meanwhile');
      }
      // A hedge verified before the attempt that streams into the file: stop that one, then write these bytes.
      for (const o of region.running) {
        if (o === r || !o.streaming) continue;
        o.superseded = true;
        o.ac.abort(new PortalError('PORTAL_CANCELLED', 'superseded by a verified attempt'));
      }
      try {
        w.writeSync(job.offset + kept, buffer.subarray(kept, job.length));
      } catch (err) {
        throw new ChunkFetchError('io', (err as Error).message, {
          edgeUrl: job.edgeUrl,
          firstByteMs: t.firstByteMs,
          elapsedMs: t.transferMs,
          cause: err,
        });
      }
    }
    region.verified = true;
    outcome = {
      ok: true,
      bytes: t.length,
      firstByteMs: t.firstByteMs,
      transferMs: t.transferMs,
      ...(kept > 0 ? { keptBytes: kept } : {}),
    };
  } catch (err) {
    outcome = failure(r, err, t0);
    // The records come every quarter chunk (partialRecordStep), so up to a quarter of what this attempt wrote
    // would be fetched again; a failure this thread sees (a reset source, a timeout, a cancel) records every
    // byte written instead, and the chunk's next attempt (a failover, often right away) asks only for the rest.
    // Wrong bytes ('corrupt') were forgotten above; a superseded attempt's chunk is verified already.
    if (log && written > 0 && !r.superseded && !(err instanceof ChunkFetchError && err.fault === 'corrupt'))
      log.record(job.chunk, job.cid, written);
  } finally {
    running.delete(id);
    region.running.delete(r);
    if (region.running.size === 0) regions.delete(key);
    if (buffer) pool.give(buffer);
  }
  post({ t: 'done', id, outcome });
}

async function closeFile(id: number, output: string, sync: boolean): Promise<void> {
  const wp = files.get(output);
  files.delete(output);
  partialLogs.get(output)?.close();
  partialLogs.delete(output);
  let error: string | undefined;
  if (wp) {
    try {
      const w = await wp;
      if (sync) await w.sync();
      await w.close();
    } catch (err) {
      error = (err as Error)?.message ?? String(err);
    }
  }
  post({ t: 'closed', id, ...(error !== undefined ? { error } : {}) });
}

port.on('message', (m: ToDataWorker) => {
  switch (m.t) {
    case 'init':
      init(m.data);
      break;
    case 'job':
      void run(m.id, m.job);
      break;
    case 'cancel':
      running.get(m.id)?.ac.abort(new PortalError('PORTAL_CANCELLED', m.detail));
      break;
    case 'close-file':
      void closeFile(m.id, m.output, m.sync);
      break;
  }
});
