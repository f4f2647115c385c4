/**
 * Task executors of a coordinator peer (`portal peer`, and the forked peers of `portal
 * coord-demo`): what runs one task and produces its result. Three kinds:
 *
 * - **kernels** (built in): the demo's real kernels (cli/coord/kernels.ts): `render` renders a
 *   Mandelbrot tile (payload `{ view, x, y, w, h }`, output `{ pixels: base64, checksum }`),
 *   `physics` and `audio` run `work` units (output `{ checksum }`). Given a peer profile
 *   (cli/coord/profiles.ts) it emulates that peer's speed and failures (see createKernelExecutor).
 * - **module**: a JavaScript module of the user's exporting `execute(task)` (docs/coord-service.md).
 * - **command**: a command of the user's, run once per task with the task as JSON on stdin and
 *   the result on stdout.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { PortalError } from '../../common/errors.js';
import { createPrng } from '../../transfer/index.js';
import { renderTile, physics, audio, type FrameView } from './kernels.js';
import {
  DEMO_TYPES,
  trueMultiplier,
  EMULATION_PACE,
  type Contention,
  type DemoType,
  type PeerProfile,
} from './profiles.js';

/** One task as a peer's executor sees it. `payload` is the submitter's JSON value, passed through. */
export interface PeerTaskInput {
  taskId: string;
  attempt: number;
  type: string;
  /** Work units (what the coordinator predicts time per unit of). */
  work: number;
  /** The coordinator's hour of day, 0..23, when it dispatched the task. */
  hour: number;
  payload?: unknown;
}

/** What an executor answers: a JSON-serializable output, or a failure with its reason. */
export interface ExecResult {
  ok: boolean;
  output?: unknown;
  error?: string;
  /** CPU ms the computation took (emulating kernels only). */
  cpuMs?: number;
  /** Wall ms the computation took, before the emulated hold (emulating kernels only). */
  computeMs?: number;
}

/** Where a task stands in the peer when it starts (the worker fills it in). */
export interface ExecContext {
  /** Tasks queued or running on the peer when this one arrived (itself not counted). */
  backlogAtArrival: number;
  /** Tasks waiting behind this one when it starts. */
  queuedBehind: number;
}

/** Runs tasks of the types it lists. */
export interface TaskExecutor {
  /** For logs: `kernels`, `module:<path>`, `command:<cmd>`. */
  readonly name: string;
  /** Task types it runs (what the peer advertises). */
  readonly taskTypes: string[];
  /** Runs one task; a rejection counts as a failed attempt with the error's message. */
  run(task: PeerTaskInput, ctx: ExecContext): Promise<ExecResult>;
  /**
   * The resource pressure of the machine it emulates, 0..1 each, when it emulates one (a peer
   * profile): the worker reports these instead of this machine's load average and memory use.
   */
  resourcePressure?(): { cpu: number; memory: number };
}

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object';

/** The tile a render task's payload names, checked (PORTAL_INVALID_ARGUMENT naming the field). */
function renderPayload(p: unknown): { view: FrameView; x: number; y: number; w: number; h: number } {
  if (!isObj(p) || !isObj(p.view))
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      'payload: expected { view, x, y, w, h } for a render task',
    );
  const v = p.view;
  for (const k of ['width', 'height', 'cx', 'cy', 'scale', 'maxIter'])
    if (typeof v[k] !== 'number' || !Number.isFinite(v[k]))
      throw new PortalError('PORTAL_INVALID_ARGUMENT', `payload.view.${k}: expected a number`);
  for (const k of ['x', 'y', 'w', 'h'])
    if (!Number.isInteger(p[k]) || (p[k] as number) < 0 || (p[k] as number) > 16384)
      throw new PortalError('PORTAL_INVALID_ARGUMENT', `payload.${k}: expected an integer in [0, 16384]`);
  return p as unknown as { view: FrameView; x: number; y: number; w: number; h: number };
}

/** Does a kernel task's real computation at `fraction` of its size (a failing emulated attempt dies halfway). */
function computeKernel(t: PeerTaskInput, fraction: number): { pixels?: string; checksum: number } {
  if (t.type === 'render') {
    const { view, x, y, w, h } = renderPayload(t.payload);
    const rows = Math.max(1, Math.round(h * fraction));
    const out = renderTile(view, x, y, w, rows);
    return {
      pixels: fraction >= 1 ? Buffer.from(out.pixels).toString('base64') : undefined,
      checksum: out.iters,
    };
  }
  const units = Math.min(t.work, 1e6) * fraction;
  if (t.type === 'physics') return { checksum: physics(units) };
  if (t.type === 'audio') return { checksum: audio(units) };
  throw new PortalError(
    'PORTAL_INVALID_ARGUMENT',
    `type: the kernels run ${DEMO_TYPES.join(', ')}, not ${JSON.stringify(t.type)}`,
  );
}

/** A kernel executor with an emulated profile; `reset` reseeds its failure generator and restarts its contention episodes. */
export interface KernelExecutor extends TaskExecutor {
  reset(seed: number): void;
}

/**
 * The contention episodes of a profile (PeerProfile.contention) as a two-state process in wall
 * time: inside an episode for Exp(meanMs), outside for Exp(meanMs × (1 − share) / share), so the
 * long-run share of time inside is `share`. Its own generator, so the failure draws do not move.
 */
function contentionEpisodes(
  c: Contention | undefined,
  seed: number,
  now: () => number,
): { contended(): boolean } {
  if (!c) return { contended: () => false };
  const rnd = createPrng(seed ^ 0x5bd1e995);
  const draw = (mean: number): number => -Math.log(1 - rnd()) * mean;
  let inside = rnd() < c.share;
  let switchAt = now() + draw(inside ? c.meanMs : (c.meanMs * (1 - c.share)) / c.share);
  return {
    contended() {
      const t = now();
      while (t >= switchAt) {
        inside = !inside;
        switchAt += draw(inside ? c.meanMs : (c.meanMs * (1 - c.share)) / c.share);
      }
      return inside;
    },
  };
}

/**
 * The built-in kernels. Without a profile a task runs at this machine's speed. With one, the
 * executor emulates that peer: it does the task's real computation, measures the CPU time that
 * took, and holds the answer until `pace` × the profile's multiplier (speed for the type, peak
 * hours, load) × that CPU time has passed since it started, the way a throttled CPU would be busy
 * that long; an attempt that arrives on an overloaded peer (or draws a random failure) fails
 * after computing half of it. Measuring CPU time rather than wall time keeps the emulated speed
 * independent of how many peers share this machine's cores (up to `pace` × multiplier of them
 * per core), while a peer's time still follows the real cost of the task. Failures are drawn from
 * a PRNG seeded with `seed`, so runs repeat.
 */
export function createKernelExecutor(
  opts: { profile?: PeerProfile; pace?: number; seed?: number; types?: string[] } = {},
): KernelExecutor {
  const profile = opts.profile;
  const pace = opts.pace ?? EMULATION_PACE;
  let rnd = createPrng(opts.seed ?? 1);
  const clock = (): number => performance.now();
  let episodes = contentionEpisodes(profile?.contention, opts.seed ?? 1, clock);
  const taskTypes = profile ? Object.keys(profile.speed) : (opts.types ?? [...DEMO_TYPES]);
  for (const t of taskTypes)
    if (!(DEMO_TYPES as readonly string[]).includes(t))
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `--types: the kernels run ${DEMO_TYPES.join(', ')}, not ${t}`,
      );
  return {
    name: profile ? `kernels(as ${profile.id})` : 'kernels',
    taskTypes,
    reset(seed: number) {
      rnd = createPrng(seed);
      episodes = contentionEpisodes(profile?.contention, seed, clock);
    },
    // an emulated machine: CPU pressure is its contention (1 inside an episode), memory unused
    ...(profile ? { resourcePressure: () => ({ cpu: episodes.contended() ? 1 : 0, memory: 0 }) } : {}),
    async run(t, ctx) {
      if (!taskTypes.includes(t.type))
        return { ok: false, error: `this peer does not run ${JSON.stringify(t.type)} tasks` };
      if (!profile) {
        const out = computeKernel(t, 1);
        return { ok: true, output: out };
      }
      // draws from the generator only where a failure is possible, so a profile without random
      // failures sees the same sequence as before they existed
      const failing =
        (ctx.backlogAtArrival >= profile.overloadAt && rnd() < profile.failProb) ||
        ((profile.baseFailProb ?? 0) > 0 && rnd() < profile.baseFailProb!);
      const mult = trueMultiplier(
        profile,
        t.type as DemoType,
        t.hour,
        ctx.queuedBehind,
        episodes.contended(),
      );
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const out = computeKernel(t, failing ? 0.5 : 1);
      const c = process.cpuUsage(c0);
      const computeMs = performance.now() - t0;
      const cpuMs = (c.user + c.system) / 1000;
      // held until the deadline by performance.now(): a timer may fire a little early (libuv measures it from
      // the loop's cached time, taken before the computation), so it sleeps again for what is left
      const until = t0 + pace * mult * cpuMs;
      for (let left = until - performance.now(); left > 0; left = until - performance.now())
        await sleep(left);
      if (failing)
        return {
          ok: false,
          error: `${profile.id} failed (${ctx.backlogAtArrival} tasks ahead)`,
          cpuMs,
          computeMs,
        };
      return { ok: true, output: out, cpuMs, computeMs };
    },
  };
}

/**
 * A user's module as executor. The module (a path, resolved against the working directory, or a
 * package name) exports `execute(task)` — or a default function — taking a PeerTaskInput and
 * returning (or resolving to) the task's output, any JSON value; throwing fails the attempt with
 * the error's message. It may export `taskTypes` (string array); `types` (the --types flag)
 * overrides it, and one of them is required. Throws PORTAL_CONFIG_INVALID when the module cannot
 * be loaded or exports no function.
 */
export async function loadModuleExecutor(spec: string, types?: string[]): Promise<TaskExecutor> {
  const url = spec.startsWith('.') || path.isAbsolute(spec) ? pathToFileURL(path.resolve(spec)).href : spec;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `--exec-module: cannot load ${spec}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const fn = (typeof mod.execute === 'function' ? mod.execute : mod.default) as
    ((t: PeerTaskInput) => unknown) | undefined;
  if (typeof fn !== 'function')
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `--exec-module: ${spec} exports neither execute(task) nor a default function`,
    );
  const exported = Array.isArray(mod.taskTypes) ? (mod.taskTypes as unknown[]).map(String) : undefined;
  const taskTypes = types && types.length > 0 ? types : exported;
  if (!taskTypes || taskTypes.length === 0)
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `--types: required, since ${spec} exports no taskTypes array`,
    );
  return {
    name: `module:${spec}`,
    taskTypes,
    async run(t) {
      try {
        return { ok: true, output: await fn(t) };
      } catch (err) {
        return { ok: false, error: err instanceof Error ? err.message : String(err) };
      }
    },
  };
}

/** Most stdout a command executor keeps (the result), bytes; more fails the attempt. */
export const COMMAND_MAX_OUTPUT = 512 * 1024;

/**
 * A user's command as executor: `command` runs through `/bin/sh -c` once per task, with the task
 * (a PeerTaskInput) as one JSON object on stdin. Exit 0 succeeds, and stdout is the output —
 * parsed as JSON when it is JSON, else kept as a string; any other exit (or a signal, or running
 * past `timeoutMs`, when it is killed) fails the attempt with the last KiB of stderr. `types` is
 * required. The command is the operator's own configuration, so running it through a shell
 * (pipes, arguments) is intended.
 */
export function createCommandExecutor(command: string, types: string[], timeoutMs = 600_000): TaskExecutor {
  if (!command) throw new PortalError('PORTAL_CONFIG_INVALID', '--exec-command: expected a command');
  if (types.length === 0)
    throw new PortalError('PORTAL_CONFIG_INVALID', '--types: required with --exec-command');
  return {
    name: `command:${command}`,
    taskTypes: types,
    run(t) {
      return new Promise<ExecResult>((resolve) => {
        const child = spawn('/bin/sh', ['-c', command], { stdio: ['pipe', 'pipe', 'pipe'] });
        const out: Buffer[] = [];
        let outBytes = 0,
          err = '',
          tooMuch = false;
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        child.stdout.on('data', (d: Buffer) => {
          outBytes += d.length;
          if (outBytes > COMMAND_MAX_OUTPUT) {
            tooMuch = true;
            child.kill('SIGKILL');
          } else out.push(d);
        });
        child.stderr.on('data', (d: Buffer) => {
          err = (err + d.toString()).slice(-1024);
        });
        child.stdin.on('error', () => {}); // a command that does not read its stdin
        child.on('error', (e) => {
          clearTimeout(timer);
          resolve({ ok: false, error: `cannot run ${command}: ${e.message}` });
        });
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          if (tooMuch) return resolve({ ok: false, error: `output above ${COMMAND_MAX_OUTPUT} bytes` });
          if (code !== 0)
            return resolve({
              ok: false,
              error: `exited ${signal ? `on ${signal}` : code}${err ? `: ${err.trim()}` : ''}`,
            });
          const text = Buffer.concat(out).toString('utf8').trim();
          let output: unknown = text;
          try {
            output = text === '' ? null : JSON.parse(text);
          } catch {
            // not JSON: the output is the text
          }
          resolve({ ok: true, output });
        });
        child.stdin.end(JSON.stringify(t));
      });
    },
  };
}
