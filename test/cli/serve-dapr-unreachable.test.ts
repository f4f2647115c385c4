import { createServer } from 'node:net';
import { freePort } from '../../common/net.js';
import { runPortal } from '../helpers/portal-cli.js';

// `portal serve --runtime dapr` with no daprd at --dapr-http-port waited the SDK's 60 s, then printed
// DAPR_SIDECAR_COULD_NOT_BE_STARTED with a stack (exit 4). A port that refuses connections now fails after
// DAPR_REFUSED_WAIT_MS with one line naming the address, the flag and --runtime embedded.

test('serve --runtime dapr with nothing at --dapr-http-port: one line naming daprd, the address and --runtime embedded', async () => {
  // a port that was free a moment ago and is closed again: connections to it are refused
  const probe = createServer();
  const closed = await new Promise<number>((resolve) =>
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    }),
  );
  const r = await runPortal(
    [
      'serve',
      '--runtime',
      'dapr',
      '--backend',
      'cpu',
      '--app-port',
      String(await freePort()),
      '--dapr-http-port',
      String(closed),
    ],
    { timeoutMs: 45_000 },
  );
  expect(r.code).toBe(4);
  expect(r.stderr).toBe(
    `portal: daprd is not reachable at 127.0.0.1:${closed} (connection refused for 10 s; --dapr-http-port, DAPR_HTTP_PORT): start daprd for this app, or run without Dapr with --runtime embedded [PORTAL_HOST_UNAVAILABLE]\n`,
  );
}, 60_000);
