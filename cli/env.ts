/**
 * The environment variables the engine and stream layers honour, read here at the entry points
 * (the CLI, the benchmarks, the tests): library code takes them as options and never touches
 * `process.env`.
 */
import { lstatSync, mkdirSync, mkdtempSync, type Stats } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PortalError } from '../common/errors.js';

/**
 * PORTAL_CPU_THREADS as a thread count for `createTickEngine({ cpuThreads })`, or undefined when
 * unset or empty (the engine's default: the machine's parallelism, at most 8). Throws PortalError
 * PORTAL_CONFIG_INVALID naming the variable when it is not an integer in [1, 256].
 */
export function cpuThreadsFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const v = env.PORTAL_CPU_THREADS;
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 256)
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `PORTAL_CPU_THREADS: expected an integer in [1, 256], got ${JSON.stringify(v)}`,
    );
  return n;
}

/** True when PORTAL_REQUIRE_GPU=1: tick engines fail instead of falling back to the CPU without an adapter. */
export function requireGpuFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.PORTAL_REQUIRE_GPU === '1';
}

/**
 * True when CI=true or PORTAL_REQUIRE_GPU=1: stream kernel executors (`createKernelExecutor({ requireGpu })`,
 * GpuStreamActor's `services.streamRequireGpu`) fail instead of running the CPU reference without an adapter.
 */
export function streamRequireGpuFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.CI === 'true' || env.PORTAL_REQUIRE_GPU === '1';
}

/** Whether ensureXdgRuntimeDir has warned in this process (once is enough). */
let xdgWarned = false;

/**
 * Sets XDG_RUNTIME_DIR to a private folder under the OS temp dir (mode 0700) when it is unset, so
 * Mesa's Vulkan drivers (lavapipe) under Dawn do not warn about it on every device. Call once at
 * process start, before the first GPU device is created; an existing value is kept.
 * Only cosmetic: when the temp dir is missing, not a folder or not writable (a read-only root file
 * system), XDG_RUNTIME_DIR stays unset and nothing is created (a missing TMPDIR is never made).
 * The folder's name is predictable (`portal-xdg-<uid>`), so another local user may have made it first: one
 * that exists is used only when it is a real folder (lstat: not a symbolic link) owned by `uid` with mode 0700;
 * otherwise XDG_RUNTIME_DIR stays unset (this process and its children put nothing where another user can
 * reach) and `warn` is told once per process (default: a `portal: warning:` line on stderr).
 */
export function ensureXdgRuntimeDir(
  env: NodeJS.ProcessEnv = process.env,
  opts: { uid?: number; warn?: (message: string) => void } = {},
): void {
  if (env.XDG_RUNTIME_DIR) return;
  const uid = opts.uid ?? process.getuid?.();
  const dir = path.join(tempRoot(env), `portal-xdg-${uid ?? 'u'}`);
  try {
    // not recursive: the temp dir itself must already exist
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return;
    let st: Stats;
    try {
      st = lstatSync(dir);
    } catch {
      return;
    }
    const why = !st.isDirectory()
      ? st.isSymbolicLink()
        ? 'a symbolic link'
        : 'not a folder'
      : uid !== undefined && st.uid !== uid
        ? `owned by uid ${st.uid}, not ${uid}`
        : uid !== undefined && (st.mode & 0o777) !== 0o700
          ? `mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, not 0700`
          : undefined;
    if (why !== undefined) {
      if (!xdgWarned || opts.warn) {
        xdgWarned = true;
        (opts.warn ?? ((m: string) => process.stderr.write(`portal: warning: ${m}\n`)))(
          `${dir} is ${why}: not used as XDG_RUNTIME_DIR (another user may have made it; remove it, or set XDG_RUNTIME_DIR to a private folder)`,
        );
      }
      return;
    }
  }
  env.XDG_RUNTIME_DIR = dir;
}

/** The OS temp dir as `env` names it (os.tmpdir()'s rule: TMPDIR, TMP, TEMP, else /tmp; Windows: os.tmpdir()). */
function tempRoot(env: NodeJS.ProcessEnv): string {
  if (process.platform === 'win32') return os.tmpdir();
  const d = env.TMPDIR || env.TMP || env.TEMP || '/tmp';
  return d.length > 1 && d.endsWith('/') ? d.slice(0, -1) : d;
}

/** Why a folder could not be made in the temp dir, by error code. */
const TEMP_WHY: Record<string, string> = {
  ENOENT: 'it does not exist',
  ENOTDIR: 'it is not a folder',
  EROFS: 'it is on a read-only file system',
  EACCES: 'it is not writable',
  EPERM: 'it is not writable',
  ENOSPC: 'its file system is full',
  EDQUOT: 'the disk quota is exceeded',
};

/**
 * Makes a new private folder `<temp dir>/<prefix>XXXXXX` (mkdtemp: mode 0700, never the temp dir
 * itself) for `purpose`. Throws PortalError PORTAL_CONFIG_INVALID (exit 2) naming the temp dir and
 * why it cannot be used (missing, not a folder, read-only) instead of a bare system error.
 */
export function makeTempDir(prefix: string, purpose: string, env: NodeJS.ProcessEnv = process.env): string {
  const base = tempRoot(env);
  try {
    return mkdtempSync(path.join(base, prefix));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `TMPDIR ${base}: cannot create a temporary folder for ${purpose}: ${TEMP_WHY[code] ?? (err as Error).message} (${code}); set TMPDIR to a writable folder`,
      { cause: err },
    );
  }
}
