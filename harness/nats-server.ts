import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../common/net.js';

/** A nats-server with JetStream that a test started on a free loopback port, with its own store folder. */
export interface TestNatsServer {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** Kills the server (SIGKILL: no clean shutdown) and waits for it to exit. */
  kill(): Promise<void>;
  /** Starts it again on the same port and store folder. */
  start(): Promise<void>;
  /** Kills it and removes the store folder. */
  stop(): Promise<void>;
}

/** Path of the nats-server binary: $NATS_SERVER_BIN, /usr/sbin/nats-server, or `nats-server` on PATH. */
export function natsServerBin(): string {
  if (process.env.NATS_SERVER_BIN) return process.env.NATS_SERVER_BIN;
  for (const p of ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'])
    if (existsSync(p)) return p;
  return 'nats-server';
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = tcpConnect({ port, host: '127.0.0.1' }, () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(`nats-server did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Options of startNatsServer. */
export interface TestNatsServerOptions {
  /** More command-line flags. */
  args?: string[];
  /**
   * Server configuration text (e.g. an `authorization { … }` or `tls { … }` block), written to `server.conf`
   * in the store folder and passed with `-c`; the flags for JetStream, store, address and port still win.
   */
  config?: string;
}

/** Starts a nats-server with JetStream (`-js`) on a free port of 127.0.0.1 with a temp store; never the system one on 4222. */
export async function startNatsServer(opts: TestNatsServerOptions = {}): Promise<TestNatsServer> {
  const storeDir = await mkdtemp(join(tmpdir(), 'portal-nats-'));
  const configArgs: string[] = [];
  if (opts.config !== undefined) {
    const file = join(storeDir, 'server.conf');
    await writeFile(file, opts.config);
    configArgs.push('-c', file);
  }
  const port = await freePort();
  let proc: ChildProcess | undefined;
  let log = '';
  const start = async (): Promise<void> => {
    log = '';
    const p = spawn(
      natsServerBin(),
      [...configArgs, '-js', '-sd', storeDir, '-a', '127.0.0.1', '-p', String(port), ...(opts.args ?? [])],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    p.stderr.on('data', (d: Buffer) => {
      log = (log + d.toString()).slice(-4000);
    });
    proc = p;
    const exited = new Promise<never>((_, reject) =>
      p.once('exit', (code) => reject(new Error(`nats-server exited (${code}): ${log}`))),
    );
    exited.catch(() => undefined);
    await Promise.race([waitForPort(port, 15_000), exited]);
    // JetStream is ready once the server logs it; the port opens a little before.
    const deadline = Date.now() + 10_000;
    while (!/Server is ready/.test(log) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  };
  const kill = async (): Promise<void> => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  };
  try {
    await start();
  } catch (err) {
    await kill();
    await rm(storeDir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    kill,
    start,
    async stop() {
      await kill();
      await rm(storeDir, { recursive: true, force: true });
    },
  };
}
