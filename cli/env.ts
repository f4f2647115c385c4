/**
 * The environment variables the engine and stream layers honour, read here at the entry points
 * (the CLI, the benchmarks, the tests): library code takes them as options and never touches
 * `process.env`.
 */
import { mkdirSync } from 'node:fs';
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

/**
 * Sets XDG_RUNTIME_DIR to a private folder under the OS temp dir (mode 0700) when it is unset, so
 * Mesa's Vulkan drivers (lavapipe) under Dawn do not warn about it on every device. Call once at
 * process start, before the first GPU device is created; an existing value is kept.
 */
export function ensureXdgRuntimeDir(env: NodeJS.ProcessEnv = process.env): void {
  if (env.XDG_RUNTIME_DIR) return;
  const dir = path.join(os.tmpdir(), `portal-xdg-${process.getuid?.() ?? 'u'}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  env.XDG_RUNTIME_DIR = dir;
}
