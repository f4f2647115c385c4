/**
 * A private CA trusted without replacing the system bundle, against a real nginx over TLS: NODE_EXTRA_CA_CERTS
 * (plain Node https honours it; `portal fetch` built its CA list from tls.rootCertificates, which omits it) and
 * `portal serve --ca` (serve had no --ca: its executors could trust a private CA only through SSL_CERT_FILE).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { makeTestCa, type TestCa } from '../../harness/tls-ca.js';
import { startNginx, type TestNginx } from '../../harness/nginx.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { runPortal, startEmbeddedServe, type EmbeddedServe } from '../helpers/portal-cli.js';
import { postJson, until } from '../helpers/post-json.js';
import type { TransferStatus } from '../../actors/index.js';

let ca: TestCa;
let nginx: TestNginx;
let mesh: Mesh;
let serve: EmbeddedServe | undefined;

beforeAll(async () => {
  mesh = await createMesh(16 * 16384, 16384, []);
  ca = await makeTestCa();
  nginx = await startNginx({ root: mesh.dir, tls: { certFile: ca.certFile, keyFile: ca.keyFile } });
});
afterAll(async () => {
  if (serve?.child.exitCode === null) serve.child.kill('SIGKILL');
  await nginx?.stop();
  await ca?.cleanup();
  await mesh?.close();
});

const sha256 = async (file: string) =>
  createHash('sha256')
    .update(await readFile(file))
    .digest('hex');

describe('a private CA besides the system store', () => {
  test('portal fetch trusts the CA that NODE_EXTRA_CA_CERTS names', async () => {
    const out = path.join(mesh.dir, 'extra-ca.bin');
    const r = await runPortal(
      [
        'fetch',
        `${nginx.httpsUrl}/source.bin`,
        '--out',
        out,
        '--checksum',
        `sha-256=${mesh.manifest.fileSha256}`,
      ],
      { env: { NODE_EXTRA_CA_CERTS: ca.caFile } },
    );
    expect(r.stderr).not.toMatch(/TLS|portal: /);
    expect(r.code).toBe(0);
    expect(await sha256(out)).toBe(mesh.manifest.fileSha256);
  });

  test('portal serve --ca: a transfer from an https mirror signed by that CA completes', async () => {
    const root = path.join(mesh.dir, 'root');
    await mkdir(root);
    await mkdir(path.join(mesh.dir, 'state'));
    serve = await startEmbeddedServe(
      ['--output-root', root, '--state-dir', path.join(mesh.dir, 'state'), '--ca', ca.caFile],
      { PORTAL_LOG_LEVEL: 'warn', NATS_URL: '', NODE_EXTRA_CA_CERTS: '', SSL_CERT_FILE: '' },
    );
    const output = path.join(root, 'out.bin');
    const base = `${serve.base}/SchedulerActor/${mesh.manifest.id}/method`;
    const started = await postJson(`${base}/start`, {
      transferId: mesh.manifest.id,
      manifest: mesh.manifest,
      output,
      edges: [
        {
          id: 'tls-mirror',
          config: { url: `${nginx.httpsUrl}/source.bin`, kind: 'mirror', flags: 0, maxParallel: 2 },
        },
      ],
    });
    expect(started.status).toBe(200);
    const end = await until(
      'the end',
      async () => (await postJson(`${base}/status`, { edges: true })).json as unknown as TransferStatus,
      (st) => st.state === 'done' || st.state === 'failed',
      60_000,
    );
    expect(end.state).toBe('done');
    expect(await sha256(output)).toBe(mesh.manifest.fileSha256);
  }, 90_000);
});
