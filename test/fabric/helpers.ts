import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { request } from 'undici';
import type { Mesh } from '../helpers/mesh.js';

/** The built CLI (tests of real processes run dist/, as the CLI tests do). */
export const MAIN = path.resolve('dist/cli/main.js');

/** A running `portal …` process: its stdout lines as they come, and its end. */
export interface PortalProcess {
  child: ChildProcess;
  lines: string[];
  /** Resolves with the first stdout line `pick` accepts (rejects when the process ends first). */
  line<T>(pick: (l: string) => T | undefined): Promise<T>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  kill(): void;
}

/** Starts the built CLI with `args`, killed with SIGKILL after `timeoutMs`. */
export function startPortal(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): PortalProcess {
  const child = spawn(process.execPath, [MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PORTAL_LOG_LEVEL: 'warn', ...opts.env },
  });
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  let stderr = '';
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
  createInterface({ input: child.stdout }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters.splice(0)) w();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  let ended = false;
  const exit = new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
  }>((resolve) =>
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      setTimeout(() => {
        ended = true;
        for (const w of waiters.splice(0)) w();
        resolve({ code, signal, stdout: lines.join('\n'), stderr });
      }, 20);
    }),
  );
  return {
    child,
    lines,
    exit,
    kill: () => child.kill('SIGKILL'),
    line<T>(pick: (l: string) => T | undefined): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        let seen = 0;
        const check = (): void => {
          for (; seen < lines.length; seen++) {
            const v = pick(lines[seen]);
            if (v !== undefined) {
              resolve(v);
              return;
            }
          }
          if (ended) reject(new Error(`portal ${args.join(' ')} ended first:\n${stderr}`));
          else waiters.push(check);
        };
        check();
      });
    },
  };
}

/** `portal serve --runtime embedded --output-root <outputRoot>` on `port`, once it printed its ready line. */
export async function startServe(port: number, outputRoot: string): Promise<PortalProcess> {
  const serve = startPortal([
    'serve',
    '--runtime',
    'embedded',
    '--app-port',
    String(port),
    '--output-root',
    outputRoot,
    '--json',
  ]);
  await serve.line((l) => (json(l)?.type === 'ready' ? true : undefined));
  return serve;
}

/** Parses a JSON line, or undefined. */
export function json(l: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(l);
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Runs a command to its end; resolves with its exit code and stdout as bytes (`onStdout` sees them as they come). */
export function run(
  cmd: string,
  args: string[],
  opts: { onStdout?: (d: Buffer) => void } = {},
): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      out.push(d);
      opts.onStdout?.(d);
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
  });
}

/** `portal fetch --serve 0 --progress-json` of the mesh's file into `name` in its folder, and its content URL. */
export async function servingFetch(mesh: Mesh, name: string): Promise<{ fetch: PortalProcess; url: string }> {
  const fetch = startPortal([
    'fetch',
    mesh.manifestPath,
    ...mesh.servers.flatMap((s) => ['--edge', s.url]),
    '--out',
    path.join(mesh.dir, name),
    '--serve',
    '0',
    '--progress-json',
  ]);
  const url = await fetch.line((l) => {
    const m = json(l);
    return m?.type === 'serving' ? String(m.url) : undefined;
  });
  return { fetch, url };
}

/** POSTs `body` (JSON) to actor method `method` under `api` (`…/actors/<type>/<id>/method`); its status and JSON answer. */
export async function call(
  api: string,
  method: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const r = await request(`${api}/${method}`, {
    method: 'POST',
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: r.statusCode, json: await r.body.json() };
}
