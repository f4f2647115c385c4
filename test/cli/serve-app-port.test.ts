/**
 * `portal serve --app-port 0` (a real process): embedded, the actor API takes any free port and the ready line
 * (text and --json) names the port it got, as `--dashboard-port 0` does with its URL; with the dapr runtime 0 is
 * refused saying why (daprd must be started with the port), before anything starts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { embeddedServeArgs, runPortal } from '../helpers/portal-cli.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'portal-serve-app-port-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs `portal serve <args>` until its ready line, asks /healthz on `port(line)`, then stops it (SIGTERM). */
async function serveUntilReady(
  args: string[],
  port: (line: string) => number | undefined,
): Promise<{ code: number | null; stdout: string; stderr: string; port: number; health: number }> {
  let got: { port: number; health: Promise<number> } | undefined;
  const r = await runPortal(embeddedServeArgs(...args), {
    cwd: dir,
    timeoutMs: 60_000,
    onLine: (line, child) => {
      const p = port(line);
      if (got || p === undefined) return;
      const health = request(`http://127.0.0.1:${p}/healthz`).then(async (res) => {
        await res.body.dump();
        return res.statusCode;
      });
      got = { port: p, health };
      void health.finally(() => child.kill('SIGTERM'));
    },
  });
  expect(got).toBeDefined();
  return { ...r, port: got!.port, health: await got!.health };
}

describe('portal serve --app-port 0', () => {
  test('embedded --json: the ready record names the port the actor API got (not 0), and the API answers there', async () => {
    const r = await serveUntilReady(['--app-port', '0', '--json'], (line) => {
      const j = JSON.parse(line) as { type?: string; appPort?: number };
      return j.type === 'ready' ? j.appPort : undefined;
    });
    expect(r.port).toBeGreaterThan(0);
    expect(r.health).toBe(200); // /healthz: liveness, 200 with the bus state (common/health.ts)
    expect(r.code).toBe(0);
  }, 70_000);

  test('embedded, text: the ready line names the port the actor API got, and the API answers there', async () => {
    const r = await serveUntilReady(['--app-port', '0'], (line) => {
      const m = /^portal serve: embedded actor host ready on port (\d+)$/.exec(line);
      return m ? Number(m[1]) : undefined;
    });
    expect(r.port).toBeGreaterThan(0);
    expect(r.health).toBe(200); // /healthz: liveness, 200 with the bus state (common/health.ts)
  }, 70_000);

  test('dapr: refused before anything starts, one line saying why (daprd must be started with the port), exit 2', async () => {
    const r = await runPortal(['serve', '--runtime', 'dapr', '--backend', 'cpu', '--app-port', '0'], {
      cwd: dir,
      timeoutMs: 60_000,
    });
    expect(r.stderr).toBe(
      'portal: --app-port 0 (any free port) cannot be used with --runtime dapr: daprd calls the actors on the port it was started with (daprd --app-port), so it must be known in advance: give that port [PORTAL_CONFIG_INVALID]\n',
    );
    expect(r.code).toBe(2);
  }, 70_000);
});

test('the ready record says the data-plane threads and the hash thread started with the host', async () => {
  let ready: { dataThreads?: number; hashThread?: boolean } | undefined;
  await serveUntilReady(['--app-port', '0', '--json'], (line) => {
    const j = JSON.parse(line) as {
      type?: string;
      appPort?: number;
      dataThreads?: number;
      hashThread?: boolean;
    };
    if (j.type !== 'ready') return undefined;
    ready = j;
    return j.appPort;
  });
  // DEFAULT_DATA_THREADS: 2, or 1 on a single core
  expect(ready?.dataThreads).toBe(Math.max(1, Math.min(2, availableParallelism())));
  expect(ready?.hashThread).toBe(true);
}, 70_000);
