import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../common/net.js';
export { freePort };

const run = promisify(execFile);

/** Resolves when `port` on 127.0.0.1 accepts connections; rejects after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs = 30_000, what = `port ${port}`): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not open within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Kills a child started with `detached: true` and its whole process group; resolves when it has exited. */
export async function killGroup(
  child: ChildProcess | undefined,
  signal: NodeJS.Signals = 'SIGKILL',
  graceMs = 5000,
): Promise<void> {
  if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

/** A Redis server of this test run. */
export interface TestRedis {
  readonly port: number;
  readonly host: string;
  /** Runs redis-cli against it; resolves with its stdout. */
  cli(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Starts Debian's redis-server on a free port with its data in a temp folder (no persistence), never the system
 * Redis on 6379. Needs `redis-server` (scripts/setup.d/35-redis.sh installs it).
 */
export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'portal-redis-'));
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--protected-mode',
      'no',
    ],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
      detached: true,
    },
  );
  child.once('error', () => undefined);
  try {
    await waitForPort(port, 15_000, `redis-server on ${port}`);
  } catch (err) {
    await killGroup(child);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    port,
    host: '127.0.0.1',
    async cli(...args) {
      const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), '--raw', ...args]);
      return stdout;
    },
    async stop() {
      await killGroup(child, 'SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
