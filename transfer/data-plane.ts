import { rm } from 'node:fs/promises';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { PortalError } from '../common/errors.js';
import { createSilentLogger, type Logger } from '../common/logger.js';
import type { HttpClientOptions } from './http-client.js';
import { partialChunkLogPath } from './partial-chunks.js';
import {
  DATA_WORKER_LIMITS,
  defaultDataWorkerUrl,
  takePrestartedDataThread,
} from './data-thread-prestart.js';
import type { DataJob, DataOutcome, DataWorkerData, FromDataWorker, ToDataWorker } from './data-protocol.js';

export type { DataJob, DataOutcome } from './data-protocol.js';

/**
 * Data-plane threads by default: 2, or one when the machine has a single core. Measured on a 2-core host
 * (docs/architecture.md, "The data plane"): two workers receiving, hashing and writing overlap with the main thread's
 * scheduling and with each other's hashing; more threads than cores only add switches.
 */
export const DEFAULT_DATA_THREADS = Math.max(1, Math.min(2, os.availableParallelism()));

export { DATA_WORKER_LIMITS, defaultDataWorkerUrl } from './data-thread-prestart.js';

/**
 * Default cap on the bytes in flight on a data plane (the summed lengths of the chunk fetches running on its
 * threads): 32 MiB, the 32 concurrent 1 MiB fetches of 4 mirrors × 8 parallel requests. A bandwidth-delay
 * product of 1 Gb/s × 250 ms fits in it.
 */
export const DEFAULT_MAX_IN_FLIGHT_BYTES = 32 * 1024 * 1024;

/**
 * Each data thread runs a young-generation collection after this many received bytes. Socket reads allocate
 * their buffers outside the JavaScript heap, where V8 only counts them towards its next collection (it starts
 * one after about 64 MiB of such memory per thread); collecting every 2 MiB frees the dead read buffers
 * before they pile up, for well under 1 ms of a 2 MiB young generation each time.
 */
export const DATA_GC_EVERY_BYTES = 2 * 1024 * 1024;

/** Options of createDataPlane. */
export interface DataPlaneOptions {
  /** Worker threads (default DEFAULT_DATA_THREADS). */
  threads?: number;
  /** DataWorkerData.outputRoot: the real path of the folder every output must stay inside. */
  outputRoot?: string;
  /**
   * Most bytes in flight at once (summed lengths of the running fetches, default DEFAULT_MAX_IN_FLIGHT_BYTES);
   * further fetches wait in FIFO order. A fetch longer than the cap runs alone.
   */
  maxInFlightBytes?: number;
  /**
   * Options of each worker's HTTP client (default: none — system CAs, proxy from the environment), or a
   * function giving them, called when the first thread starts.
   */
  http?: HttpClientOptions | (() => HttpClientOptions);
  /** Write pieces as they arrive (default true); see DataWorkerData.streamWrites. */
  streamWrites?: boolean;
  /**
   * With streamWrites: log how far each chunk's fetch got (a `.partial` file beside the output) and finish a
   * fetch cut short by asking for the rest of the chunk only (default true); see DataWorkerData.keepPartialChunks.
   */
  keepPartialChunks?: boolean;
  /** The compiled worker script (default defaultDataWorkerUrl()). */
  workerUrl?: URL | string;
  logger?: Logger;
}

/** Counters of a data plane. */
export interface DataPlaneStats {
  threads: number;
  /** Threads started and not stopped (they start on the first job, or all at once with `start`). */
  started: number;
  /** Fetches running on the threads now. */
  running: number;
  /** Summed lengths of the running fetches (bytes). */
  inFlightBytes: number;
  /** Fetches waiting for room under maxInFlightBytes. */
  waiting: number;
  /** The cap (bytes). */
  maxInFlightBytes: number;
  /** Threads that stopped unexpectedly and were replaced. */
  crashes: number;
  /** Bytes of verified chunks that were kept from interrupted fetches instead of fetched again. */
  keptBytes: number;
}

/**
 * Chunk fetches on worker threads. Each thread keeps, for its whole life, an undici client (a Pool of
 * keep-alive connections per origin), the open output files, the sequential readers of mirrors that ignore
 * Range and a pool of chunk buffers; a fetch is a small message in and an outcome out. The main thread only
 * schedules.
 */
export interface DataPlane {
  readonly threads: number;
  /** Starts the threads now (they load their modules while the caller prepares the transfer); idempotent. */
  start(): void;
  /**
   * Fetches `job` on a thread: the body is hashed and written at its offset as it streams in; resolves to the
   * outcome (never rejects). A fetch that would take the bytes in flight over maxInFlightBytes waits (FIFO)
   * until earlier ones end. Attempts of the same chunk of the same file run on the same thread, so a hedge
   * never overwrites the verified bytes of another attempt. An abort of `signal` cancels the fetch (outcome
   * `cancelled`); a thread that dies fails its fetches as `io` and is replaced on the next job.
   */
  run(job: DataJob, signal?: AbortSignal): Promise<DataOutcome>;
  /**
   * Syncs (fdatasync when `sync`) and closes `output` on every thread that opened it, then removes its
   * partial-chunk log unless `keepPartials`; rejects PORTAL_TRANSFER_FAILED naming the fs error.
   */
  closeFile(output: string, opts?: { sync?: boolean; keepPartials?: boolean }): Promise<void>;
  stats(): DataPlaneStats;
  /** Stops thread `index` at once, as a crash would (tests of crash handling); its fetches fail as `io`. */
  terminateThread(index: number): Promise<void>;
  /** Stops every thread; fetches still running fail as cancelled. Idempotent. */
  close(): Promise<void>;
}

interface Pending {
  resolve: (o: DataOutcome) => void;
  job: DataJob;
  region: string;
  t0: number;
}

interface Thread {
  index: number;
  worker: Worker;
  pending: Map<number, Pending>;
  closes: Map<number, (error: string | undefined) => void>;
  dead: boolean;
}

/**
 * Starts a data plane (threads start lazily, on the first job). Our own long-lived workers rather than a task
 * pool such as piscina: a fetch is tens of ms of I/O, each thread runs dozens at once over connections and
 * file descriptors it keeps between fetches, and one fetch among them must be cancellable (piscina cancels a
 * running task by terminating its worker, which would drop every connection and fetch on it). Throws
 * PORTAL_INVALID_ARGUMENT for a bad thread count.
 */
export function createDataPlane(opts: DataPlaneOptions = {}): DataPlane {
  const n = opts.threads ?? DEFAULT_DATA_THREADS;
  if (!Number.isInteger(n) || n < 1 || n > 64)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `threads: expected an integer in 1..64, got ${String(opts.threads)}`,
    );
  const cap = opts.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT_BYTES;
  if (!Number.isSafeInteger(cap) || cap < 1)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `maxInFlightBytes: expected a positive integer, got ${String(opts.maxInFlightBytes)}`,
    );
  const log = opts.logger ?? createSilentLogger();
  let data: DataWorkerData | undefined;
  const workerData = (): DataWorkerData =>
    (data ??= {
      http: (typeof opts.http === 'function' ? opts.http() : opts.http) ?? {},
      streamWrites: opts.streamWrites ?? true,
      gcEveryBytes: DATA_GC_EVERY_BYTES,
      keepPartialChunks: opts.keepPartialChunks ?? true,
      ...(opts.outputRoot === undefined ? {} : { outputRoot: opts.outputRoot }),
    });
  const slots: (Thread | undefined)[] = new Array<Thread | undefined>(n).fill(undefined);
  /** Thread and number of running attempts of each (output, chunk). */
  const regions = new Map<string, { thread: number; count: number }>();
  let nextId = 1;
  let rr = 0;
  let inFlight = 0;
  let keptBytes = 0;
  /** Fetches waiting for room under the cap, oldest first. */
  const waiting: { job: DataJob; start: () => void; cancel: (detail: string) => void }[] = [];
  let crashes = 0;
  let closed = false;

  const fail = (p: Pending, detail: string, reason: 'io' | 'cancelled'): void =>
    p.resolve({
      ok: false,
      reason,
      fault: reason,
      detail,
      firstByteMs: 0,
      elapsedMs: performance.now() - p.t0,
    });

  const release = (region: string): void => {
    const r = regions.get(region);
    if (r && --r.count <= 0) regions.delete(region);
  };

  const onDeath = (t: Thread, why: string): void => {
    if (t.dead) return;
    t.dead = true;
    if (slots[t.index] === t) slots[t.index] = undefined;
    if (!closed) {
      crashes++;
      log.error(
        { thread: t.index, why, fetches: t.pending.size },
        'data-plane thread stopped; its fetches fail',
      );
    }
    for (const [, p] of t.pending) {
      release(p.region);
      if (closed) fail(p, 'the data plane closed', 'cancelled');
      else fail(p, `data-plane thread ${t.index} stopped (${why}) while fetching chunk ${p.job.chunk}`, 'io');
    }
    t.pending.clear();
    for (const [, done] of t.closes) done(undefined);
    t.closes.clear();
  };

  const spawn = (index: number): Thread => {
    const url = opts.workerUrl ?? defaultDataWorkerUrl();
    // a thread the process started before this plane existed (data-thread-prestart.ts) has loaded its modules
    // already; it takes its configuration as its first message
    const adopted = takePrestartedDataThread(url);
    const worker =
      adopted ?? new Worker(url, { workerData: workerData(), resourceLimits: DATA_WORKER_LIMITS });
    if (adopted) adopted.postMessage({ t: 'init', data: workerData() } satisfies ToDataWorker);
    const t: Thread = { index, worker, pending: new Map(), closes: new Map(), dead: false };
    worker.on('message', (m: FromDataWorker) => {
      if (m.t === 'done') {
        const p = t.pending.get(m.id);
        if (!p) return;
        t.pending.delete(m.id);
        if (t.pending.size === 0) worker.unref();
        release(p.region);
        p.resolve(m.outcome);
      } else {
        const done = t.closes.get(m.id);
        t.closes.delete(m.id);
        done?.(m.error);
      }
    });
    worker.on('error', (err) => onDeath(t, err?.message ?? String(err)));
    worker.on('exit', (code) => onDeath(t, `exit code ${code}`));
    // An idle thread does not keep the process alive; one with fetches in flight does (ref'd in run).
    worker.unref();
    slots[index] = t;
    return t;
  };

  const pick = (region: string): Thread => {
    const r = regions.get(region);
    if (r) {
      r.count++;
      return slots[r.thread] ?? spawn(r.thread);
    }
    // The least busy thread (started ones first, then a new one), round-robin among equals.
    let best = -1;
    let bestLoad = Infinity;
    for (let k = 0; k < n; k++) {
      const i = (rr + k) % n;
      const load = slots[i]?.pending.size ?? 0;
      if (load < bestLoad) {
        best = i;
        bestLoad = load;
      }
    }
    rr = (best + 1) % n;
    regions.set(region, { thread: best, count: 1 });
    return slots[best] ?? spawn(best);
  };

  const send = (t: Thread, m: ToDataWorker): void => t.worker.postMessage(m);

  /** Starts the waiting fetches that now fit under the cap (the oldest first; one at least when none runs). */
  const admit = (): void => {
    while (waiting.length > 0 && !closed && (inFlight === 0 || inFlight + waiting[0].job.length <= cap))
      waiting.shift()!.start();
  };

  return {
    threads: n,
    start() {
      if (closed) return;
      for (let i = 0; i < n; i++) if (!slots[i]) spawn(i);
    },
    run(job, signal) {
      return new Promise<DataOutcome>((resolve) => {
        const t0 = performance.now();
        const cancelled = (detail: string): void =>
          resolve({
            ok: false,
            reason: 'cancelled',
            fault: 'cancelled',
            detail,
            firstByteMs: 0,
            elapsedMs: performance.now() - t0,
          });
        if (closed) return cancelled('the data plane closed');
        const start = (): void => {
          inFlight += job.length;
          const done = (o: DataOutcome): void => {
            inFlight -= job.length;
            if (o.ok && o.keptBytes) keptBytes += o.keptBytes;
            resolve(o);
            admit();
          };
          const region = `${job.output}\u0000${job.chunk}`;
          const t = pick(region);
          const id = nextId++;
          t.pending.set(id, { resolve: done, job, region, t0 });
          if (t.pending.size === 1) t.worker.ref();
          if (signal) {
            const onAbort = (): void => {
              const reason = signal.reason as Error | undefined;
              if (t.pending.has(id) && !t.dead)
                send(t, { t: 'cancel', id, detail: reason?.message ?? 'cancelled' });
            };
            if (signal.aborted) queueMicrotask(onAbort);
            else signal.addEventListener('abort', onAbort, { once: true });
          }
          send(t, { t: 'job', id, job });
        };
        if (waiting.length === 0 && (inFlight === 0 || inFlight + job.length <= cap)) return start();
        if (signal?.aborted) return cancelled('cancelled before it started');
        const w = { job, start, cancel: cancelled };
        waiting.push(w);
        signal?.addEventListener(
          'abort',
          () => {
            const i = waiting.indexOf(w);
            if (i < 0) return;
            waiting.splice(i, 1);
            cancelled(`cancelled while waiting for room under ${cap} bytes in flight`);
            admit();
          },
          { once: true },
        );
      });
    },
    async closeFile(output, o = {}) {
      const errors: string[] = [];
      await Promise.all(
        slots.map((t) =>
          !t || t.dead
            ? Promise.resolve()
            : new Promise<void>((res) => {
                const id = nextId++;
                t.closes.set(id, (e) => {
                  if (e) errors.push(e);
                  res();
                });
                send(t, { t: 'close-file', id, output, sync: o.sync ?? false });
              }),
        ),
      );
      if (errors.length > 0)
        throw new PortalError('PORTAL_TRANSFER_FAILED', `cannot close ${output}: ${errors[0]}`);
      // every thread has closed its partial-chunk log: once the transfer is over, nothing is left to resume
      if (o.keepPartials !== true) await rm(partialChunkLogPath(output), { force: true });
    },
    stats() {
      let r = 0;
      for (const t of slots) r += t?.pending.size ?? 0;
      return {
        threads: n,
        started: slots.filter((t) => t !== undefined && !t.dead).length,
        running: r,
        crashes,
        keptBytes,
        inFlightBytes: inFlight,
        waiting: waiting.length,
        maxInFlightBytes: cap,
      };
    },
    async terminateThread(index) {
      const t = slots[index];
      if (!t) return;
      await t.worker.terminate();
      onDeath(t, 'terminated');
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const w of waiting.splice(0)) w.cancel('the data plane closed');
      await Promise.all(
        slots.map(async (t) => {
          if (!t) return;
          await t.worker.terminate();
          onDeath(t, 'closed');
        }),
      );
    },
  };
}
