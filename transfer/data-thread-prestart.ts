import { existsSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { PortalError } from '../common/errors.js';

/**
 * Data-plane threads started before the data plane exists, so that a thread boots (node's worker start, the
 * data-worker bundle: undici, hashing, the writer) while the process still loads the CLI, reads the manifest and
 * starts the scheduler, instead of after the first dispatch. `portal fetch` starts them first thing
 * (cli/launch.ts, cli/main.ts); createDataPlane adopts them (takePrestartedDataThread) and sends each its
 * configuration as the first message (`init`, see data-protocol.ts). Measured on the throttled-mirrors bench
 * (BENCHMARKS.md, "Throttled mirrors: the data thread started with the process"): a thread started by the plane
 * ran its first line 80–150 ms after the first dispatch.
 *
 * This module loads nothing heavy (the launcher imports it before the CLI bundle is compiled).
 */

/**
 * Heap limits of a data thread (fixed when the thread starts, so shared with the prestart). Its heap holds small
 * objects only (chunk bytes are Buffers outside the heap), so a small young generation costs a few more
 * scavenges but keeps V8 from growing the semi-spaces to their default 16 MiB each per thread: part of the
 * bounded-memory goal (RSS = a constant + bytes in flight). 2 MiB rather than 4: with DATA_GC_EVERY_BYTES at
 * 2 MiB, 2–5 MB less peak RSS on a 512 MiB fetch at the same CPU time (BENCHMARKS.md, "The data plane").
 */
export const DATA_WORKER_LIMITS = { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 64 };

/**
 * Where the built worker script is: the CommonJS bundle (data-worker.cjs: scripts/bundle-cli.mjs; a thread
 * boots it faster than an ES module) or else tsc's data-worker.js (a build without esbuild), next to this module
 * in dist/, or in dist/ of the project when running from source (jest). Throws PORTAL_CONFIG_INVALID when
 * neither is built.
 */
export function defaultDataWorkerUrl(): URL {
  const candidates = [
    new URL('./data-worker.cjs', import.meta.url),
    new URL('./data-worker.js', import.meta.url),
    new URL('../dist/transfer/data-worker.cjs', import.meta.url),
    new URL('../dist/transfer/data-worker.js', import.meta.url),
  ];
  for (const u of candidates) if (u.protocol === 'file:' && existsSync(fileURLToPath(u))) return u;
  throw new PortalError(
    'PORTAL_CONFIG_INVALID',
    `the data-plane worker is not built (looked for ${candidates.map((u) => fileURLToPath(u)).join(', ')}); run npm run build`,
  );
}

/**
 * Data-plane threads of a local transfer (`portal fetch`, the demo): one core fewer than the machine has, 1 to
 * 2. The process's other busy thread, the main thread (ticks, reports, the journal, and here the whole-file
 * hash), needs the remaining core. Measured on the 2-core dev machine, 512 MiB from 4 nginx mirrors
 * (BENCHMARKS.md, "The data plane"): one data thread against two, peak RSS 115–123 MB against 135–140 MB at
 * the same CPU time (3.3–4.6 s against 3.2–4.3 s) and no slower; a `portal serve` keeps DEFAULT_DATA_THREADS.
 */
export const LOCAL_DATA_THREADS = Math.max(1, Math.min(2, os.availableParallelism() - 1));

/**
 * Below this many bytes a transfer moves its bytes on the main thread: starting the data-plane threads (each
 * loads undici and opens its own connections, ~0.1–0.2 s) costs more than hashing a few MiB (sha256 runs at
 * ~1.7 GB/s per core on this machine kind).
 */
export const SMALL_TRANSFER_BYTES = 16 * 1024 * 1024;

/** The `workerData` of a prestarted thread: it waits for an `init` message before its first job. */
export interface PrestartedWorkerData {
  awaitInit: true;
}

interface Prestarted {
  url: string;
  worker: Worker;
  exited: boolean;
}

/**
 * The prestarted threads, on globalThis: the launcher (dist/cli/main.js) and the CLI bundle it runs
 * (dist/cli/portal.cjs) each hold their own copy of this module.
 */
const REGISTRY = Symbol.for('portal.prestartedDataThreads');
type Registry = { started: boolean; threads: Prestarted[]; unusedTimer?: NodeJS.Timeout };
const registry = (): Registry =>
  ((globalThis as { [REGISTRY]?: Registry })[REGISTRY] ??= { started: false, threads: [] });

/**
 * Starts `count` data threads of `url` now (default: the built data-worker script) for a data plane created later
 * in this process. Once: later calls do nothing until discardPrestartedDataThreads. The threads do not keep the process alive, and any
 * not adopted within `unusedMs` (default 30 s) are stopped. Throws PORTAL_INVALID_ARGUMENT for a count outside
 * 1..64, PORTAL_CONFIG_INVALID when the worker script is not built.
 */
export function prestartDataThreads(count: number, url?: URL | string, unusedMs = 30_000): void {
  if (!Number.isInteger(count) || count < 1 || count > 64)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `count: expected an integer in 1..64, got ${String(count)}`,
    );
  const r = registry();
  if (r.started) return;
  r.started = true;
  const script = url ?? defaultDataWorkerUrl();
  for (let i = 0; i < count; i++) {
    const workerData: PrestartedWorkerData = { awaitInit: true };
    const worker = new Worker(script, { workerData, resourceLimits: DATA_WORKER_LIMITS });
    const p: Prestarted = { url: String(script), worker, exited: false };
    // a thread that fails to start is simply not adopted: the plane starts its own and reports that one's error
    worker.once('error', () => undefined);
    worker.once('exit', () => {
      p.exited = true;
      const k = r.threads.indexOf(p);
      if (k >= 0) r.threads.splice(k, 1);
    });
    worker.unref();
    r.threads.push(p);
  }
  r.unusedTimer = setTimeout(() => discardPrestartedDataThreads(), unusedMs);
  r.unusedTimer.unref();
}

/**
 * A prestarted thread of `url` that has not exited, taken out of the registry (the caller owns it and must send it
 * its `init` message before any job), or undefined when there is none.
 */
export function takePrestartedDataThread(url: URL | string): Worker | undefined {
  const r = registry();
  const k = r.threads.findIndex((p) => p.url === String(url) && !p.exited);
  if (k < 0) return undefined;
  const [p] = r.threads.splice(k, 1);
  if (r.threads.length === 0) clearUnusedTimer(r);
  p.worker.removeAllListeners('error');
  p.worker.removeAllListeners('exit');
  return p.worker;
}

/**
 * Stops the prestarted threads nobody adopted (a transfer small enough for the main thread, a failed start);
 * prestartDataThreads may start threads again after it.
 */
export function discardPrestartedDataThreads(): void {
  const r = registry();
  clearUnusedTimer(r);
  r.started = false;
  for (const p of r.threads.splice(0)) void p.worker.terminate();
}

/**
 * Stops the timer that would discard unadopted threads: nothing is left for it once they are adopted or
 * discarded, and a timer left running would touch the registry long after (in a test runner, after the test
 * file that started the threads was torn down).
 */
function clearUnusedTimer(r: Registry): void {
  if (r.unusedTimer !== undefined) clearTimeout(r.unusedTimer);
  r.unusedTimer = undefined;
}

/** Prestarted threads not adopted yet (tests). */
export function prestartedDataThreadCount(): number {
  return registry().threads.length;
}
