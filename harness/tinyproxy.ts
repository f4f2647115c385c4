import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, killGroup, waitForPort } from './redis.js';

/** A tinyproxy of this test run. */
export interface TestProxy {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** The proxy's log so far (each request it relayed is a line). */
  log(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Starts Debian's tinyproxy in the foreground on a free port, allowing loopback clients and CONNECT to any
 * port. Needs `tinyproxy` (scripts/setup.d/45-mirrors.sh installs it).
 */
export async function startTinyproxy(): Promise<TestProxy> {
  const dir = await mkdtemp(join(tmpdir(), 'portal-proxy-'));
  const port = await freePort();
  const logFile = join(dir, 'tinyproxy.log');
  await writeFile(
    join(dir, 'tinyproxy.conf'),
    [
      `Port ${port}`,
      'Listen 127.0.0.1',
      'Timeout 60',
      `LogFile "${logFile}"`,
      'LogLevel Info',
      'MaxClients 50',
      'Allow 127.0.0.1',
      '',
    ].join('\n'),
  );
  const bin = existsSync('/usr/bin/tinyproxy') ? '/usr/bin/tinyproxy' : 'tinyproxy';
  const child: ChildProcess = spawn(bin, ['-d', '-c', join(dir, 'tinyproxy.conf')], {
    stdio: ['ignore', 'ignore', 'inherit'],
    detached: true,
  });
  child.once('error', () => undefined);
  try {
    await waitForPort(port, 15_000, `tinyproxy on ${port}`);
  } catch (err) {
    await killGroup(child);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: `http://127.0.0.1:${port}`,
    log: () => readFile(logFile, 'utf8').catch(() => ''),
    async stop() {
      await killGroup(child, 'SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
