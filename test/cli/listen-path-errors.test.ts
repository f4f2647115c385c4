import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { createManifest, saveManifest } from '../../transfer/index.js';
import { freePort } from '../../common/net.js';
import { embeddedServeArgs, runPortal, type PortalRun } from '../helpers/portal-cli.js';

/** One line naming the cause, no stack trace. */
const oneLine = (r: PortalRun): void => {
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).not.toMatch(/\n\s+at /);
};

describe('listen and folder errors name their flag (real processes)', () => {
  let dir: string;
  let busy: Server;
  let port: number;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'portal-listen-err-'));
    busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    port = (busy.address() as { port: number }).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => busy.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  test('portal edge --port <in use>: names --port and the address, exit 2', async () => {
    const file = path.join(dir, 'f.bin');
    await writeFile(file, randomBytes(65536));
    const manifest = path.join(dir, 'f.manifest.json');
    await saveManifest(manifest, await createManifest(file, { chunkSize: 65536 }));
    const r = await runPortal(['edge', '--file', file, '--manifest', manifest, '--port', String(port)]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `portal: --port ${port}: 127.0.0.1:${port} is already in use (EADDRINUSE); choose another port [PORTAL_CONFIG_INVALID]`,
    );
    oneLine(r);
  });

  test('portal serve --app-port <in use>: names --app-port and the address, exit 2', async () => {
    const r = await runPortal(embeddedServeArgs('--app-port', String(port)));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `portal: --app-port ${port}: 127.0.0.1:${port} is already in use (EADDRINUSE)`,
    );
    oneLine(r);
  });

  test('portal serve --state-dir <a file>: names --state-dir and the file in the way, exit 2', async () => {
    const file = path.join(dir, 'not-a-folder');
    await writeFile(file, 'x');
    const r = await runPortal(embeddedServeArgs('--app-port', String(await freePort()), '--state-dir', file));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `portal: --state-dir ${file}: cannot create the folder ${file}: a file (not a folder) is in the way (EEXIST)`,
    );
    oneLine(r);
  });
});
