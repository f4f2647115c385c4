import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { PortalError } from '../common/errors.js';
import { hashFile } from './chunk-writer.js';

/** Main thread → hash thread. */
export type ToHashWorker =
  | { t: 'open'; id: number; path: string }
  | { t: 'advance'; id: number; to: number }
  | { t: 'digest'; id: number; size: number; datasync?: boolean }
  | { t: 'dispose'; id: number };

/**
 * Hash thread → main thread: the digest of a session, how much of it was hashed before it was asked for, and
 * whether the file's data was flushed (fdatasync) first.
 */
export type FromHashWorker =
  { id: number; sha256: string; hashedBefore: number; synced: boolean } | { id: number; error: string };

/** The result of PrefixHasher.digest. */
export interface PrefixDigest {
  /** sha256 hex of the whole file. */
  sha256: string;
  /** Bytes hashed while the transfer ran (the rest was read at the end). */
  hashedBefore: number;
  /**
   * True when the hasher flushed the file's data to disk (fdatasync, which flushes the dirty pages whichever
   * descriptor wrote them) before it answered, as digest's `datasync` asked: only the hash thread does. False
   * when the caller still has to (a hasher on the calling thread, or the fallback to hashFile).
   */
  synced: boolean;
}

/**
 * The sha256 of a file being downloaded, advanced over its contiguous verified prefix while the download runs
 * (on a shared hash thread that reads the prefix back, from the page cache), so that the end of a transfer
 * reads only what is left instead of the whole file. A transfer resumed from its journal starts at byte 0
 * (a hash state cannot be stored), which is the re-read of the prefix, overlapped with the rest.
 */
export interface PrefixHasher {
  /** Bytes [0, `to`) of the file are final (verified chunks): hash them when the thread gets to it. Never throws. */
  advance(to: number): void;
  /**
   * Hashes what is left up to `size` and resolves to the whole file's sha256. Falls back to reading the whole
   * file on the calling thread (hashFile) when the hash thread cannot run or failed to read; rejects
   * PORTAL_TRANSFER_FAILED only when the file cannot be read at all. Ends the hasher.
   */
  digest(size: number, opts?: { datasync?: boolean }): Promise<PrefixDigest>;
  /** Ends the hasher without a digest (a failed or cancelled transfer); idempotent. */
  dispose(): void;
}

/**
 * Files smaller than this are hashed once at the end on the calling thread (16 MiB: ~10 ms of sha256 from
 * the page cache) instead of starting the hash thread, whose start-up (an isolate, ~30 ms and ~20 MB)
 * costs more than it saves.
 */
export const PREFIX_HASH_MIN_BYTES = 16 * 1024 * 1024;

/** Where the compiled hash thread is: next to this module in dist/, or dist/ of the project when running from source (jest). */
function hashWorkerUrl(): URL | undefined {
  const here = new URL('./hash-worker.js', import.meta.url);
  if (here.protocol === 'file:' && existsSync(fileURLToPath(here))) return here;
  const built = fileURLToPath(new URL('../dist/transfer/hash-worker.js', import.meta.url));
  return existsSync(built) ? pathToFileURL(built) : undefined;
}

/** Where the hashing runs: the shared hash thread, or the calling thread (see setPrefixHashThread). */
let useThread = true;

/**
 * Chooses where hashers created from now on run: on the process's hash thread (true, the default: a host running
 * many transfers keeps its main thread for its actors), or on the calling thread (false), in slices of
 * INLINE_SLICE_BYTES between its other work. A process that runs one transfer (`portal fetch`) uses the calling
 * thread: its main thread has little else to do while a data thread moves the bytes, and the hash thread's
 * isolate would cost ~8 MB of RSS (BENCHMARKS.md, "The data plane").
 */
export function setPrefixHashThread(enabled: boolean): void {
  useThread = enabled;
}

/** True when hashers created now run on the process's hash thread (setPrefixHashThread; the default). */
export function prefixHashOnThread(): boolean {
  return useThread;
}

/** Bytes hashed per turn of the event loop by a hasher on the calling thread: ~1 ms of sha256 from the page cache. */
export const INLINE_SLICE_BYTES = 1024 * 1024;
/** One read buffer for every hasher on the calling thread (they take turns on one event loop). */
let inlineBuffer: Buffer | undefined;

/**
 * A PrefixHasher on the calling thread: `advance` queues the reads, which run one INLINE_SLICE_BYTES slice per
 * event-loop turn (setImmediate), so timers and I/O of the same thread wait at most one slice.
 */
function createInlineHasher(path: string): PrefixHasher {
  const hash = createHash('sha256');
  let pos = 0;
  let target = 0;
  let fd: number | undefined;
  let error: string | undefined;
  let ended = false;
  let pumping = false;
  const buf = (inlineBuffer ??= Buffer.allocUnsafeSlow(INLINE_SLICE_BYTES));
  const close = (): void => {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
  };
  /** Hashes one slice towards `target`; records the error instead of throwing. */
  const slice = (): void => {
    try {
      fd ??= openSync(path, 'r');
      const n = readSync(fd, buf, 0, Math.min(buf.length, target - pos), pos);
      if (n <= 0) throw new Error(`${path} ends at byte ${pos}, before ${target}`);
      hash.update(buf.subarray(0, n));
      pos += n;
    } catch (err) {
      error = (err as Error)?.message ?? String(err);
    }
  };
  const pump = (): void => {
    pumping = false;
    if (ended || error !== undefined || pos >= target) return;
    slice();
    if (error === undefined && pos < target) {
      pumping = true;
      setImmediate(pump);
    }
  };
  return {
    advance(to) {
      if (ended || !(to > target)) return;
      target = to;
      if (!pumping) {
        pumping = true;
        setImmediate(pump);
      }
    },
    async digest(size) {
      if (ended) throw new PortalError('PORTAL_INVALID_ARGUMENT', `the hash of ${path} has ended`);
      ended = true;
      const before = pos;
      if (size < pos) error ??= `the file was hashed to byte ${pos} but is said to have ${size}`;
      target = size;
      while (error === undefined && pos < target) {
        slice();
        await new Promise<void>((r) => setImmediate(r));
      }
      close();
      if (error !== undefined) return { sha256: await hashFile(path), hashedBefore: 0, synced: false };
      return { sha256: hash.digest('hex'), hashedBefore: before, synced: false };
    },
    dispose() {
      ended = true;
      close();
    },
  };
}

let thread:
  { worker: Worker; waiting: Map<number, (r: FromHashWorker) => void>; online: boolean } | undefined | null;
let nextId = 1;

/**
 * Starts the process's hash thread now instead of at the first hasher (a long-lived host does at start-up, so the
 * first transfers do not wait for its boot). Resolves to true once the thread runs its script; false when hashing
 * runs on the calling thread (setPrefixHashThread(false)), the worker is not built, or the thread failed to
 * start. Never rejects.
 */
export function startPrefixHashThread(): Promise<boolean> {
  if (!useThread) return Promise.resolve(false);
  const t = hashThread();
  if (!t) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const ok = (): void => resolve(thread === t);
    t.worker.once('online', ok);
    t.worker.once('error', () => resolve(false));
    t.worker.once('exit', () => resolve(false)); // gone before it came online: no answer would ever come
    // already online (started by an earlier hasher): 'online' has fired before this listener
    if (t.online) ok();
  });
}

/** The process's hash thread, started on first use; null when it cannot start (then callers hash on their thread). */
function hashThread(): typeof thread {
  if (thread !== undefined) return thread;
  const url = hashWorkerUrl();
  if (!url) return (thread = null);
  // a heap of a few objects: the read buffer is outside it (see DATA_WORKER_LIMITS)
  const worker = new Worker(url, {
    resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 },
  });
  const waiting = new Map<number, (r: FromHashWorker) => void>();
  const t = { worker, waiting, online: false };
  worker.once('online', () => (t.online = true));
  worker.on('message', (r: FromHashWorker) => {
    const done = waiting.get(r.id);
    waiting.delete(r.id);
    if (waiting.size === 0) worker.unref();
    done?.(r);
  });
  const die = (why: string): void => {
    if (thread === t) thread = undefined;
    for (const [id, done] of waiting) done({ id, error: `the hash thread stopped (${why})` });
    waiting.clear();
  };
  worker.on('error', (err) => die(err?.message ?? String(err)));
  worker.on('exit', (code) => die(`exit code ${code}`));
  worker.unref();
  return (thread = t);
}

/**
 * Starts the whole-file hash of `path` (see PrefixHasher), on the hash thread or, after
 * `setPrefixHashThread(false)`, on the calling thread. Throws PORTAL_INVALID_ARGUMENT for an empty path.
 */
export function createPrefixHasher(path: string): PrefixHasher {
  if (typeof path !== 'string' || path === '')
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'path: expected a non-empty string');
  if (!useThread) return createInlineHasher(path);
  const t = hashThread();
  const id = nextId++;
  let ended = false;
  let advanced = 0;
  t?.worker.postMessage({ t: 'open', id, path } satisfies ToHashWorker);
  const onThread = (m: ToHashWorker): boolean => {
    if (!t || thread !== t) return false;
    t.worker.postMessage(m);
    return true;
  };
  const fallback = async (): Promise<PrefixDigest> => ({
    sha256: await hashFile(path),
    hashedBefore: 0,
    synced: false,
  });
  return {
    advance(to) {
      if (ended || !(to > advanced)) return;
      advanced = to;
      onThread({ t: 'advance', id, to });
    },
    async digest(size, opts) {
      if (ended) throw new PortalError('PORTAL_INVALID_ARGUMENT', `the hash of ${path} has ended`);
      ended = true;
      if (!t || thread !== t) return fallback();
      const r = await new Promise<FromHashWorker>((resolve) => {
        t.waiting.set(id, resolve);
        t.worker.ref();
        onThread({ t: 'digest', id, size, ...(opts?.datasync ? { datasync: true } : {}) });
      });
      return 'sha256' in r ? r : fallback();
    },
    dispose() {
      if (ended) return;
      ended = true;
      onThread({ t: 'dispose', id });
    },
  };
}
