import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { freePort } from '../../common/net.js';
import { encodeActorId } from '../../runtime/state-keys.js';

/** The built CLI (tests run after `npm run build`). */
export const PORTAL_MAIN = path.resolve('dist/cli/main.js');

/** How a CLI run ended. */
export interface PortalRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, ms. */
  ms: number;
}

/**
 * Runs `portal <args>` as a real process; resolves when it exits (rejects after `timeoutMs`, after
 * killing it). `onLine` sees each stdout line and may kill the process or start something else.
 */
export function runPortal(
  args: string[],
  opts: {
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    timeoutMs?: number;
    onLine?: (line: string, child: ChildProcess) => void;
  } = {},
): Promise<PortalRun> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [PORTAL_MAIN, ...args], {
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PORTAL_LOG_LEVEL: 'warn', ...opts.env },
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`portal ${args.join(' ')} did not exit within ${opts.timeoutMs ?? 120_000} ms`));
    }, opts.timeoutMs ?? 120_000);
    createInterface({ input: child.stdout }).on('line', (l) => {
      stdout += `${l}\n`;
      opts.onLine?.(l, child);
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    // settled at 'close' (stdout and stderr read to their end), not a fixed 20 ms after 'exit': the pipes may still
    // hold bytes when the child exits (a loaded machine; process.exit right after its last write). 2 s after 'exit'
    // at most, for a grandchild that keeps a pipe open.
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const ms = Date.now() - t0;
      const done = (): void => resolve({ code, signal, stdout, stderr, ms });
      child.once('close', done);
      setTimeout(done, 2000).unref();
    });
  });
}

/** The last JSON line a `--json` run printed. */
export function lastJson(r: PortalRun): Record<string, unknown> {
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

/** A `portal serve --runtime embedded` process started by startEmbeddedServe. */
export interface EmbeddedServe {
  child: ChildProcess;
  /** Port of its actor API. */
  port: number;
  /** `http://127.0.0.1:<port>/v1.0/actors`. */
  base: string;
  /** Its dashboard's URL, when `--dashboard-port` was given. */
  dashboard?: string;
  /** What it printed so far (stdout and stderr). */
  output: () => string;
}

/**
 * `serve --runtime embedded --backend cpu <args>`: the command line of a short-lived test serve (new serve tests pass
 * --backend cpu: under PORTAL_REQUIRE_GPU=1 `auto` opens the GPU at start, and Dawn's warnings join the output).
 */
export const embeddedServeArgs = (...args: string[]): string[] => [
  'serve',
  '--runtime',
  'embedded',
  '--backend',
  'cpu',
  ...args,
];

/**
 * Starts `portal serve --runtime embedded --app-port <free port> --backend <backend: cpu> --json <args>` as a real process
 * (environment: this process's, with `env` over it; working folder `cwd`, default this one's) and resolves at its ready line; rejects with what it printed when
 * it exits first. The caller kills it.
 */
export async function startEmbeddedServe(
  args: string[],
  env?: NodeJS.ProcessEnv,
  backend: 'cpu' | 'auto' | 'webgpu' = 'cpu',
  cwd?: string,
): Promise<EmbeddedServe> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      PORTAL_MAIN,
      'serve',
      '--runtime',
      'embedded',
      '--app-port',
      String(port),
      '--backend',
      backend,
      '--json',
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, cwd },
  );
  let out = '';
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const ready = await new Promise<{ dashboard?: string }>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (l) => {
      out += `${l}\n`;
      if (l.includes('"ready"')) resolve(JSON.parse(l) as { dashboard?: string });
    });
    child.once('exit', (c) => reject(new Error(`serve exited ${c}: ${out}`)));
  });
  return {
    child,
    port,
    base: `http://127.0.0.1:${port}/v1.0/actors`,
    dashboard: ready.dashboard,
    output: () => out,
  };
}

/** Stops a serve that startEmbeddedServe started (SIGTERM: it stops its actors, writing their journals) and waits for its exit. */
export async function stopEmbeddedServe(serve: EmbeddedServe | undefined): Promise<void> {
  const child = serve?.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** Resident memory of process `pid` in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

/**
 * POSTs `body` (JSON) to SchedulerActor `id`'s `method` on an embedded serve's actor API (`base`, as
 * EmbeddedServe.base); answers the status and the parsed JSON body (undefined when empty).
 */
export async function schedulerCall(
  base: string,
  id: string,
  method: string,
  body?: unknown,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}/SchedulerActor/${encodeActorId(id)}/method/${method}`, {
    method: 'POST',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}
