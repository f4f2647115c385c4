import { access, constants as fsConstants } from 'node:fs/promises';
import path from 'node:path';
import { PortalError } from '../common/errors.js';
import { isRedactedUrl, redactUrl } from '../common/redact.js';
import { unresolvedCredentialsDetail } from '../bus/dispatch-seal.js';
import { createSilentLogger, type Logger } from '../common/logger.js';
import { TRANSFER_ENDED_CHUNK } from '../common/vocabulary.js';
import { subjects, type Bus, type Subscription } from '../bus/types.js';
import type {
  DispatchBatch,
  DispatchItem,
  ChunkReport,
  CancelRequest,
  FailureReason,
} from '../common/index.js';
import { fetchChunk as defaultFetch, type FetchChunkFn } from './http-fetch.js';
import { ChunkFetchError } from './chunk-fetch-error.js';
import { defaultHttpClient, type HttpClient } from './http-client.js';
import { openChunkWriter, type ChunkWriter } from './chunk-writer.js';
import { checkStillConfined, resolveInsideRoot } from './output-target.js';
import { createDataPlane, DEFAULT_DATA_THREADS, type DataPlane } from './data-plane.js';
import { isEdgeOutput, openPutWriter, type EdgePutCredential } from './chunk-put.js';

/** Options for createExecutor. */
export interface ExecutorOptions {
  bus: Bus;
  /** Reported in every ChunkReport as `executorId`. */
  id: string;
  /** Fetches run at once across all attached transfers (default 64); the rest wait in FIFO order. */
  concurrency?: number;
  logger?: Logger;
  /** Chunk fetcher, run on the calling thread (a stand-in for tests; implies `threads: 0`). */
  fetch?: FetchChunkFn;
  /**
   * HTTP client of the fetches (default: the process-wide one); closed by the caller. On data-plane threads
   * each thread builds its own from `http.options`.
   */
  http?: HttpClient;
  /**
   * Folder every output must resolve inside (symbolic links resolved first, see resolveInsideRoot);
   * a dispatch naming a file elsewhere gets an 'io' failure report per item and writes nothing (or is skipped,
   * see `unservable`). Unset: any path (the embedded fetch, whose output the user chose).
   */
  outputRoot?: string;
  /**
   * What becomes of a dispatch batch this executor cannot serve: its output lies outside `outputRoot`, in a
   * folder that is missing here or that this process may not write, or it is an edge URL whose credentials
   * arrived redacted. 'fail' (default): each item is tried and gets an 'io' failure report naming the cause —
   * for the executor of the host that scheduled the transfer, whom nobody else stands in for. 'skip': nothing
   * is fetched and nothing reported, the items are counted in stats().skipped and a debug line names why — for
   * `portal executor`, which sees other hosts' transfers: their dispatches are left to the executors that can
   * serve them (the scheduling host's own), never failed on their behalf. Checked once per output while it is
   * attached (and again after a detach), before its items are queued.
   */
  unservable?: 'fail' | 'skip';
  /**
   * Data-plane worker threads that receive, hash and write chunk bytes (default DEFAULT_DATA_THREADS); 0 runs
   * fetches on the calling thread (fetchChunk, then a write of the verified chunk).
   */
  threads?: number;
  /**
   * On threads: write each piece at its offset as it arrives (default true). Turn off when other processes
   * write the same output (executors sharing a transfer over NATS): then a chunk is written only once
   * verified, so a hedge in another process can never overwrite verified bytes with unverified ones.
   */
  streamWrites?: boolean;
  /** On threads: most bytes in flight at once (default DEFAULT_MAX_IN_FLIGHT_BYTES; see createDataPlane). */
  maxInFlightBytes?: number;
  /** A data plane to run the fetches on instead of one made from `threads` (closed with the executor). */
  dataPlane?: DataPlane;
  /**
   * Bearer token for PUTs to edges, when a transfer's output is an edge URL (a pre-position task), sent only to
   * the origins it lists (edgePutCredentialFromEnv).
   */
  put?: EdgePutCredential;
}

/** Counters of an executor's work. */
export interface ExecutorStats {
  fetched: number;
  failed: number;
  bytes: number;
  inFlight: number;
  queued: number;
  /** Dispatches dropped unfetched because their transfer had ended (see TRANSFER_ENDED_CHUNK). */
  droppedEnded: number;
  /**
   * Dispatched items left unfetched and unreported because this executor cannot serve their output
   * (ExecutorOptions.unservable 'skip'): other executors serve them.
   */
  skipped: number;
  /** Data-plane threads running now (0 on the calling thread, or before the first transfer or `warm`). */
  dataThreads: number;
}

/** Runs dispatched chunk fetches for attached transfers and reports each outcome on the bus. */
export interface Executor {
  readonly id: string;
  /** Subscribes to the transfer's dispatch (queue group 'executors') and cancel subjects; throws PORTAL_HOST_STOPPED after close, no-op when already attached. */
  attach(transferId: string): void;
  /**
   * Unsubscribes from the transfer, cancels its queued and in-flight fetches, waits for them to end, then syncs and
   * closes its output files; rejects PORTAL_TRANSFER_FAILED when a file cannot be closed. A detach called while one
   * of the same transfer runs answers with that one (so a caller can wait until nothing of the transfer is left
   * here, whoever started the detach); resolves at once for a transfer not attached.
   */
  detach(transferId: string): Promise<void>;
  stats(): ExecutorStats;
  /**
   * Starts the data-plane threads now instead of at the first attached transfer; no-op without threads or after
   * close. A long-lived host calls it at start-up: each thread's boot (an isolate, the bundled worker, undici:
   * ~0.1 s of CPU) would otherwise land on the first burst of transfers and delay its API calls.
   */
  warm(): void;
  /** Detaches every transfer (aborting in-flight fetches, reported as 'cancelled') and closes all files; idempotent. */
  close(): Promise<void>;
}

interface Job {
  transferId: string;
  output: string;
  fileSize: number;
  item: DispatchItem;
  key: string;
  ac: AbortController;
}

interface Attached {
  subs: Subscription[];
  outputs: Set<string>;
}

/** How long an executor that skips what it cannot serve keeps a refused output's verdict, ms. */
const UNSERVABLE_RECHECK_MS = 10_000;

/** Ended transfers an executor remembers (a Map of id → attempt bound: ~100 B each). */
const ENDED_REMEMBERED = 4096;

/**
 * True when attempt id `a` was issued before `b` (serial-number order mod 2^32, RFC 1982): attempt ids are u32
 * and each activation of a transfer starts 2^24 above the last (mod 2^32), so after 256 activations they wrap to
 * small numbers that are still later than an old "transfer ended" marker near 2^32.
 */
function attemptBefore(a: number, b: number): boolean {
  const d = (b - a) >>> 0;
  return d !== 0 && d < 0x80000000;
}

const jobKey = (transferId: string, chunk: number, attempt: number): string =>
  `${transferId}\u0000${chunk}\u0000${attempt}`;

/**
 * Creates an executor on `bus`. Each DispatchItem is fetched (verified by CID), written at its offset into
 * `batch.output`, and answered with exactly one ChunkReport on `subjects.report(transferId)`: ok, or a
 * failure reason ('io' for write errors) — but a batch this executor cannot serve under `unservable: 'skip'`,
 * which gets none. Throws PORTAL_INVALID_ARGUMENT for bad options.
 */
export function createExecutor(opts: ExecutorOptions): Executor {
  if (!opts || typeof opts !== 'object')
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'opts: expected an object');
  if (!opts.bus || typeof opts.bus.subscribe !== 'function')
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'opts.bus: expected a Bus');
  if (typeof opts.id !== 'string' || opts.id === '')
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'opts.id: expected a non-empty string');
  const concurrency = opts.concurrency ?? 64;
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `opts.concurrency: expected a positive integer, got ${String(concurrency)}`,
    );
  const { bus, id } = opts;
  const fetch = opts.fetch ?? defaultFetch;
  const log = (opts.logger ?? createSilentLogger()).child({ executorId: id });
  const threads = opts.fetch ? 0 : (opts.threads ?? DEFAULT_DATA_THREADS);
  if (!Number.isInteger(threads) || threads < 0)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `opts.threads: expected a non-negative integer, got ${String(opts.threads)}`,
    );
  /** Threads that move the bytes; the HTTP options are read when the first thread starts. */
  const plane: DataPlane | undefined =
    opts.dataPlane ??
    (threads > 0
      ? createDataPlane({
          threads,
          http: () => (opts.http ?? defaultHttpClient()).options,
          streamWrites: opts.streamWrites,
          maxInFlightBytes: opts.maxInFlightBytes,
          logger: log,
          ...(opts.outputRoot === undefined ? {} : { outputRoot: opts.outputRoot }),
        })
      : undefined);

  const attached = new Map<string, Attached>();
  const writers = new Map<string, Promise<ChunkWriter>>();
  const queue: Job[] = [];
  const running = new Map<string, Job>();
  /** Work not yet finished (fetch, write, report), keyed to its transfer. */
  const settling = new Map<Promise<void>, string>();
  const counters = { fetched: 0, failed: 0, bytes: 0, droppedEnded: 0, skipped: 0 };
  const unservable = opts.unservable ?? 'fail';
  if (unservable !== 'fail' && unservable !== 'skip')
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `opts.unservable: expected 'fail' or 'skip', got ${JSON.stringify(unservable)}`,
    );
  /**
   * Transfers that ended, with the attempt id below which their dispatches are void (TRANSFER_ENDED_CHUNK); the
   * oldest forgotten beyond ENDED_REMEMBERED.
   */
  const ended = new Map<string, number>();
  let closed = false;
  let closing: Promise<void> | null = null;

  const publish = async (report: ChunkReport): Promise<void> => {
    try {
      await bus.publish(subjects.report(report.transferId), report);
    } catch (err) {
      log.warn(
        { err, transferId: report.transferId, chunk: report.chunk, attempt: report.attempt },
        'cannot publish chunk report',
      );
    }
  };

  const failureReport = (
    job: Job,
    reason: FailureReason,
    detail: string,
    firstByteMs = 0,
    transferMs = 0,
    retryAfterMs?: number,
  ): ChunkReport => ({
    transferId: job.transferId,
    chunk: job.item.chunk,
    attempt: job.item.attempt,
    edgeIndex: job.item.edgeIndex,
    ok: false,
    bytes: 0,
    firstByteMs,
    transferMs,
    reason,
    detail,
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    executorId: id,
  });

  const writerFor = (output: string, fileSize: number): Promise<ChunkWriter> => {
    let w = writers.get(output);
    if (!w) {
      // an edge URL as the output: a pre-position task, whose chunks are PUT to that edge
      w = isEdgeOutput(output)
        ? Promise.resolve(openPutWriter(output, { fileSize, put: opts.put }))
        : confine(output).then(async (real) => {
            // walked again right before the open: a folder of the path may have become a link since confine
            if (opts.outputRoot !== undefined) await checkStillConfined(opts.outputRoot, real);
            return openChunkWriter(real, { fileSize });
          });
      writers.set(output, w);
      w.catch(() => {
        if (writers.get(output) === w) writers.delete(output);
      });
    }
    return w;
  };

  /**
   * Outputs checked against the output root (one realpath walk per output while it is open, not per chunk);
   * detach forgets an output with its files, so every (re)open is checked again.
   */
  const confined = new Map<string, Promise<string>>();
  const confine = (output: string): Promise<string> => {
    const root = opts.outputRoot;
    if (root === undefined) return Promise.resolve(output);
    let p = confined.get(output);
    if (!p) {
      p = resolveInsideRoot(root, output);
      confined.set(output, p);
      p.catch((err: unknown) => {
        // skipping: whyUnservable says it at debug; another host's transfer is no fault of this one
        if (unservable === 'fail')
          log.warn({ err, output }, 'dispatch names an output outside the output root: refused');
        if (confined.size > 1024) confined.clear(); // a flood of distinct paths does not grow this
      });
    }
    return p;
  };

  /**
   * Why this executor cannot serve dispatches that write `output` (undefined: it can), for `unservable: 'skip'`:
   * an edge output whose credentials arrived redacted; a file outside the output root (confine); a file that exists
   * and this process may not write; an absent file whose folder is missing or not writable here. One check per
   * output while it is attached (detach forgets it); a refusal is checked again after UNSERVABLE_RECHECK_MS (a
   * folder created, a mount attached). Never rejects.
   */
  const servable = new Map<string, Promise<string | undefined>>();
  const whyUnservable = (output: string): Promise<string | undefined> => {
    let p = servable.get(output);
    if (!p) {
      const mine = checkServable(output);
      p = mine;
      if (servable.size >= 1024) servable.clear(); // a flood of distinct paths does not grow this
      servable.set(output, p);
      void mine.then((reason) => {
        if (reason === undefined) return;
        setTimeout(() => {
          if (servable.get(output) !== mine) return;
          servable.delete(output);
          confined.delete(output);
        }, UNSERVABLE_RECHECK_MS).unref();
      });
    }
    return p;
  };
  const checkServable = async (output: string): Promise<string | undefined> => {
    if (isEdgeOutput(output)) return isRedactedUrl(output) ? unresolvedCredentialsDetail(output) : undefined;
    let real: string;
    try {
      real = await confine(output);
    } catch (err) {
      return (err as Error).message;
    }
    try {
      await access(real, fsConstants.W_OK);
      return undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        return `cannot write ${output}: ${(err as Error).message}`;
    }
    try {
      await access(path.dirname(real), fsConstants.W_OK | fsConstants.X_OK);
      return undefined;
    } catch (err) {
      return `cannot create ${output}: ${(err as Error).message}`;
    }
  };

  /** Fetches and writes one item on a data-plane thread; never rejects, resolves to its report. */
  const runOnPlane = async (job: Job, p: DataPlane): Promise<ChunkReport> => {
    const { item } = job;
    const o = await p.run(
      {
        output: job.output,
        fileSize: job.fileSize,
        chunk: item.chunk,
        edgeUrl: item.edgeUrl,
        edgeKind: item.edgeKind,
        cid: item.cid,
        offset: item.offset,
        length: item.length,
        timeoutMs: item.timeoutMs,
      },
      job.ac.signal,
    );
    if (!o.ok) {
      counters.failed++;
      return failureReport(job, o.reason, o.detail, o.firstByteMs, o.elapsedMs, o.retryAfterMs);
    }
    counters.fetched++;
    counters.bytes += o.bytes;
    return {
      transferId: job.transferId,
      chunk: item.chunk,
      attempt: item.attempt,
      edgeIndex: item.edgeIndex,
      ok: true,
      bytes: o.bytes,
      firstByteMs: o.firstByteMs,
      transferMs: o.transferMs,
      executorId: id,
    };
  };

  /** Fetches and writes one item; never rejects, resolves to its report. */
  const run = async (job: Job): Promise<ChunkReport> => {
    const { item } = job;
    // a source with credentials that reached this process redacted (over NATS, without the dispatch key): fetching
    // would send `***` as the password, so the chunk fails naming what to set
    if (isRedactedUrl(item.edgeUrl) || (isEdgeOutput(job.output) && isRedactedUrl(job.output))) {
      counters.failed++;
      return failureReport(
        job,
        'io',
        unresolvedCredentialsDetail(isRedactedUrl(item.edgeUrl) ? item.edgeUrl : job.output),
      );
    }
    // an edge URL as the output (a pre-position task): fetched and verified here, then PUT to the edge
    if (!isEdgeOutput(job.output)) {
      // confinement first: a dispatch for a place outside the root fetches nothing either
      try {
        await confine(job.output);
      } catch (err) {
        counters.failed++;
        return failureReport(job, 'io', (err as Error).message);
      }
      if (plane) return runOnPlane(job, plane);
    }
    let report: ChunkReport;
    try {
      const res = await fetch({
        edgeUrl: item.edgeUrl,
        edgeKind: item.edgeKind,
        cid: item.cid,
        offset: item.offset,
        length: item.length,
        timeoutMs: item.timeoutMs,
        fileSize: job.fileSize,
        signal: job.ac.signal,
        client: opts.http,
      });
      try {
        const w = await writerFor(job.output, job.fileSize);
        await w.write(item.offset, res.bytes);
      } catch (err) {
        // a PUT's failure names the destination edge first (destinationFault): the source delivered its bytes
        throw new ChunkFetchError(
          'io',
          isEdgeOutput(job.output)
            ? `${(err as Error).message} (chunk ${item.chunk}, verified from ${redactUrl(item.edgeUrl)})`
            : `cannot write chunk ${item.chunk} to ${job.output}: ${(err as Error).message}`,
          { edgeUrl: item.edgeUrl, firstByteMs: res.firstByteMs, elapsedMs: res.transferMs, cause: err },
        );
      }
      counters.fetched++;
      counters.bytes += res.bytes.length;
      report = {
        transferId: job.transferId,
        chunk: item.chunk,
        attempt: item.attempt,
        edgeIndex: item.edgeIndex,
        ok: true,
        bytes: res.bytes.length,
        firstByteMs: res.firstByteMs,
        transferMs: res.transferMs,
        executorId: id,
      };
    } catch (err) {
      counters.failed++;
      if (err instanceof ChunkFetchError) {
        report = failureReport(
          job,
          err.reason,
          err.detail,
          err.firstByteMs ?? 0,
          err.elapsedMs,
          err.retryAfterMs,
        );
      } else {
        // Invalid dispatch fields (PORTAL_INVALID_ARGUMENT) or an unexpected fault: still one report per item.
        log.warn({ err, chunk: item.chunk, attempt: item.attempt }, 'chunk fetch failed unexpectedly');
        report = failureReport(job, 'io', (err as Error)?.message ?? String(err));
      }
    }
    return report;
  };

  const pump = (): void => {
    while (running.size < concurrency && queue.length > 0) {
      const job = queue.shift()!;
      running.set(job.key, job);
      // The job leaves `running` before its report goes out, so stats() agree with what subscribers saw.
      const p = run(job)
        .then((report) => {
          running.delete(job.key);
          pump();
          return publish(report);
        })
        .finally(() => settling.delete(p));
      settling.set(p, job.transferId);
    }
  };

  /**
   * Takes a dispatch batch: malformed ones are dropped; with `unservable: 'skip'` one this executor cannot serve is
   * counted and left to others (the promise resolves once that is decided, so the bus acks after it).
   */
  const onDispatch = (transferId: string, batch: DispatchBatch): void | Promise<void> => {
    if (closed || !attached.has(transferId)) return;
    if (
      !batch ||
      typeof batch.output !== 'string' ||
      !Number.isSafeInteger(batch.fileSize) ||
      !Array.isArray(batch.items)
    ) {
      log.error({ transferId }, 'malformed dispatch batch dropped (needs output, fileSize, items)');
      return;
    }
    if (batch.transferId !== transferId)
      log.warn(
        { transferId, batchTransferId: batch.transferId },
        "dispatch batch names another transfer; reporting under the subject's",
      );
    if (unservable === 'fail') return enqueue(transferId, batch);
    const skip = (items: number, reason: string): void => {
      counters.skipped += items;
      log.debug(
        { transferId, output: batch.output, items, reason },
        'dispatch skipped: this executor cannot serve it, so it is left to the executors that can',
      );
    };
    return whyUnservable(batch.output).then((reason) => {
      if (closed || !attached.has(transferId)) return;
      if (reason !== undefined) return skip(batch.items.length, reason);
      // items from a source whose credentials reached this process redacted (no dispatch key here): the host that
      // dispatched them holds the real URL; failing them would fail its transfer's chunks on this one's behalf
      const locked = batch.items.filter((i) => isRedactedUrl(i?.edgeUrl));
      if (locked.length > 0) skip(locked.length, unresolvedCredentialsDetail(locked[0].edgeUrl));
      if (locked.length === batch.items.length) return;
      return enqueue(
        transferId,
        locked.length > 0 ? { ...batch, items: batch.items.filter((i) => !locked.includes(i)) } : batch,
      );
    });
  };

  /** Queues the items of a batch this executor serves, but those of an ended run of the transfer. */
  const enqueue = (transferId: string, batch: DispatchBatch): void => {
    if (closed || !attached.has(transferId)) return;
    const endedBelow = ended.get(transferId);
    attached.get(transferId)!.outputs.add(batch.output);
    for (const item of batch.items) {
      if (endedBelow !== undefined && attemptBefore(item.attempt, endedBelow)) {
        counters.droppedEnded++;
        continue;
      }
      queue.push({
        transferId,
        output: batch.output,
        fileSize: batch.fileSize,
        item,
        key: jobKey(transferId, item.chunk, item.attempt),
        ac: new AbortController(),
      });
    }
    pump();
  };

  const cancelQueued = (pred: (j: Job) => boolean, detail: string): void => {
    for (let i = queue.length - 1; i >= 0; i--) {
      const job = queue[i];
      if (!pred(job)) continue;
      queue.splice(i, 1);
      counters.failed++;
      const p = publish(failureReport(job, 'cancelled', detail)).finally(() => settling.delete(p));
      settling.set(p, job.transferId);
    }
  };

  const onCancel = (transferId: string, req: CancelRequest): void => {
    if (!req || typeof req.chunk !== 'number' || typeof req.attempt !== 'number') {
      log.error({ transferId }, 'malformed cancel request dropped (needs chunk, attempt)');
      return;
    }
    if (req.chunk === TRANSFER_ENDED_CHUNK) {
      onEnded(transferId, req.attempt);
      return;
    }
    const key = jobKey(transferId, req.chunk, req.attempt);
    const job = running.get(key);
    if (job) {
      job.ac.abort(
        new PortalError('PORTAL_CANCELLED', `chunk ${req.chunk} attempt ${req.attempt} cancelled`),
      );
      return;
    }
    cancelQueued((j) => j.key === key, 'cancelled before it started');
  };

  /**
   * The transfer ended: its queued dispatches with an attempt below `below` are dropped without a fetch or a
   * report (nobody reads them now), its fetches of those attempts in flight are aborted (reported cancelled), and
   * later batches of them are dropped as they arrive.
   */
  const onEnded = (transferId: string, below: number): void => {
    ended.delete(transferId);
    ended.set(transferId, below);
    if (ended.size > ENDED_REMEMBERED) ended.delete(ended.keys().next().value!);
    const before = queue.length;
    for (let i = queue.length - 1; i >= 0; i--)
      if (queue[i].transferId === transferId && attemptBefore(queue[i].item.attempt, below))
        queue.splice(i, 1);
    counters.droppedEnded += before - queue.length;
    for (const j of running.values())
      if (j.transferId === transferId && attemptBefore(j.item.attempt, below))
        j.ac.abort(new PortalError('PORTAL_CANCELLED', `transfer ${transferId} ended`));
    log.info({ transferId, dropped: before - queue.length }, 'transfer ended: its dispatches are dropped');
  };

  /** Detaches running now, by transfer id (see Executor.detach). */
  const detaching = new Map<string, Promise<void>>();
  const detach = (transferId: string): Promise<void> => {
    const running = detaching.get(transferId);
    if (running) return running;
    if (!attached.has(transferId)) return Promise.resolve();
    const p = detachNow(transferId).finally(() => {
      if (detaching.get(transferId) === p) detaching.delete(transferId);
    });
    detaching.set(transferId, p);
    return p;
  };
  const detachNow = async (transferId: string): Promise<void> => {
    const a = attached.get(transferId);
    if (!a) return;
    attached.delete(transferId);
    for (const s of a.subs) s.unsubscribe();
    cancelQueued((j) => j.transferId === transferId, 'transfer detached');
    const mine = [...running.values()].filter((j) => j.transferId === transferId);
    for (const j of mine) j.ac.abort(new PortalError('PORTAL_CANCELLED', 'transfer detached'));
    await Promise.allSettled([...settling].filter(([, t]) => t === transferId).map(([p]) => p));
    const errors: unknown[] = [];
    for (const output of a.outputs) {
      const stillUsed = [...attached.values()].some((o) => o.outputs.has(output));
      // its next open (a restart, a resume) confines it again: a folder of its path may be a link by then
      if (!stillUsed) {
        confined.delete(output);
        servable.delete(output);
      }
      if (plane && !stillUsed && !isEdgeOutput(output)) {
        try {
          await plane.closeFile(output, { sync: true });
        } catch (err) {
          errors.push(err);
        }
        continue;
      }
      const wp = writers.get(output);
      if (!wp || stillUsed) continue;
      writers.delete(output);
      try {
        const w = await wp;
        await w.sync();
        await w.close();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) {
      throw new PortalError(
        'PORTAL_TRANSFER_FAILED',
        `transfer ${transferId}: ${errors.length} output file(s) could not be closed: ${(errors[0] as Error)?.message}`,
        { cause: errors[0] },
      );
    }
  };

  return {
    id,
    attach(transferId) {
      if (closed)
        throw new PortalError(
          'PORTAL_HOST_STOPPED',
          `executor ${id} is closed: cannot attach ${String(transferId)}`,
        );
      // any id: subjects.dispatch/cancel carry it as one subject token (subjectToken)
      if (typeof transferId !== 'string' || transferId === '') {
        throw new PortalError(
          'PORTAL_INVALID_ARGUMENT',
          `transferId: expected a non-empty string, got ${JSON.stringify(transferId)}`,
        );
      }
      if (attached.has(transferId)) return;
      plane?.start();
      const subs = [
        bus.subscribe<DispatchBatch>(subjects.dispatch(transferId), (b) => onDispatch(transferId, b), {
          queue: 'executors',
        }),
        bus.subscribe<CancelRequest>(subjects.cancel(transferId), (c) => onCancel(transferId, c)),
      ];
      attached.set(transferId, { subs, outputs: new Set() });
    },
    detach,
    stats: () => ({
      ...counters,
      inFlight: running.size,
      queued: queue.length,
      dataThreads: plane?.stats().started ?? 0,
    }),
    warm() {
      if (!closed) plane?.start();
    },
    close() {
      if (closing) return closing;
      closed = true;
      closing = (async () => {
        const results = await Promise.allSettled([...attached.keys()].map((t) => detach(t)));
        await Promise.allSettled([...settling.keys()]);
        for (const [output, wp] of writers) {
          writers.delete(output);
          try {
            await (await wp).close();
          } catch (err) {
            log.warn({ err, output }, 'cannot close output file');
          }
        }
        await plane?.close();
        const bad = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (bad) throw bad.reason;
      })();
      return closing;
    },
  };
}
