import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import { embeddedServeArgs, runPortal } from '../helpers/portal-cli.js';
import { freePort } from '../../common/net.js';

/**
 * A port flag naming a port in use is one line naming the flag and the address, exit 2, before any work: `fetch
 * --serve` failed after the transfer had started (a stack, exit 4, its journal left) and `--dashboard-port` exited 4
 * without naming the flag.
 */
describe('port flags on a busy port (real CLI, a real listener holding the port)', () => {
  let dir: string;
  let mirror: BadMirror;
  let busy: Server;
  let port: number;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'portal-port-busy-'));
    mirror = await startBadMirror(randomBytes(2 ** 20));
    busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    port = (busy.address() as { port: number }).port;
  });
  afterAll(async () => {
    busy?.close();
    await mirror?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const cases: [string, (p: number) => string[], string][] = [
    ['fetch --serve', (p) => ['fetch', 'MIRROR', '--out', 'x.bin', '--serve', String(p)], 'serve'],
    [
      'fetch --dashboard-port',
      (p) => ['fetch', 'MIRROR', '--out', 'x.bin', '--dashboard', '--dashboard-port', String(p)],
      'dashboard-port',
    ],
    ['demo --dashboard-port', (p) => ['demo', '--dashboard-port', String(p)], 'dashboard-port'],
    [
      'serve --dashboard-port',
      // (embeddedServeArgs passes --backend cpu: Dawn's warnings would join the one line this test expects)
      (p) => embeddedServeArgs('--app-port', 'FREE', '--dashboard-port', String(p)),
      'dashboard-port',
    ],
    [
      // was an unhandled EADDRINUSE with a stack (exit 1): the Dapr SDK's app server has no listen error handler
      'serve --runtime dapr --app-port',
      (p) => [...'serve --runtime dapr --backend cpu --dapr-http-port FREE --app-port'.split(' '), String(p)],
      'app-port',
    ],
  ];
  test.each(cases)(
    '%s: one line naming the flag and port, exit 2, nothing written',
    async (_, argv, flag) => {
      const free = String(await freePort());
      const args = argv(port).map((a) => (a === 'MIRROR' ? mirror.url : a === 'FREE' ? free : a));
      const r = await runPortal(args, { cwd: dir, timeoutMs: 60_000 });
      expect(r.stderr.trim()).toBe(
        `portal: --${flag} ${port}: 127.0.0.1:${port} is already in use (EADDRINUSE); choose another port [PORTAL_CONFIG_INVALID]`,
      );
      expect(r.code).toBe(2);
      expect(await readdir(dir)).toEqual([]);
    },
    70_000,
  );

  test('serve --dashboard-port with the auto backend under PORTAL_REQUIRE_GPU=1: the port is checked before the GPU is opened, so its driver prints nothing before the one line', async () => {
    const free = String(await freePort());
    const r = await runPortal(
      ['serve', '--runtime', 'embedded', '--app-port', free, '--dashboard-port', String(port)],
      { cwd: dir, timeoutMs: 60_000, env: { PORTAL_REQUIRE_GPU: '1', PORTAL_BACKEND: 'auto' } },
    );
    expect(r.stderr).toBe(
      `portal: --dashboard-port ${port}: 127.0.0.1:${port} is already in use (EADDRINUSE); choose another port [PORTAL_CONFIG_INVALID]\n`,
    );
    expect(r.code).toBe(2);
    expect(await readdir(dir)).toEqual([]);
  }, 70_000);
});
