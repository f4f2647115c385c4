/**
 * `portal serve --backend cpu` (a real process) never loads the `webgpu` module (Dawn) nor requests an adapter: not
 * for a transfer, not for a GpuStreamActor. Trial finding #16: a stream started with its default backend (auto)
 * loaded Dawn and opened an adapter on a host the user had told to stay on the CPU. The process is watched with
 * Node's own module hooks (test/helpers/modules-loaded.ts) installed through NODE_OPTIONS, so every module it loads,
 * by import or require, on any thread, is named on its stderr.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { loadedUrls, writeModuleHooks } from '../helpers/modules-loaded.js';
import { startEmbeddedServe, type EmbeddedServe } from '../helpers/portal-cli.js';
import { postJson, until } from '../helpers/post-json.js';
import type { TransferStatus } from '../../actors/index.js';

/** `n` edge-telemetry samples (5 little-endian u32: edge, ok, bytes, firstByteUs, transferUs), base64. */
function samples(n: number): string {
  const b = Buffer.alloc(n * 20);
  for (let i = 0; i < n; i++) {
    b.writeUInt32LE(0, i * 20);
    b.writeUInt32LE(1, i * 20 + 4);
    b.writeUInt32LE(65536, i * 20 + 8);
    b.writeUInt32LE(1000, i * 20 + 12);
    b.writeUInt32LE(5000, i * 20 + 16);
  }
  return b.toString('base64');
}

describe('portal serve --backend cpu', () => {
  let mesh: Mesh;
  let hooks: string;
  let serve: EmbeddedServe | undefined;
  beforeEach(async () => {
    mesh = await createMesh(8 * 16384, 16384, [{}]);
    await mkdir(path.join(mesh.dir, 'root'));
    hooks = mkdtempSync(path.join(tmpdir(), 'portal-hooks-'));
  });
  afterEach(async () => {
    if (serve && serve.child.exitCode === null) serve.child.kill('SIGKILL');
    serve = undefined;
    rmSync(hooks, { recursive: true, force: true });
    await mesh.close();
  });

  /** Starts a serve with the module probe on `backend`, runs a transfer of the mesh's 8 chunks to done. */
  const serveAndTransfer = async (backend: 'cpu' | 'auto') => {
    serve = await startEmbeddedServe(
      ['--output-root', path.join(mesh.dir, 'root')],
      {
        PORTAL_LOG_LEVEL: 'warn',
        NATS_URL: '',
        // as on CI, where streams would otherwise require a GPU: --backend cpu still runs them on the CPU
        CI: 'true',
        // auto: a host without PORTAL_REQUIRE_GPU=1 (which .ci/run sets, and which makes auto open the GPU at start);
        // cpu: the variable stays as the runner has it, and still no Dawn
        ...(backend === 'auto' ? { PORTAL_REQUIRE_GPU: '' } : {}),
        NODE_OPTIONS: [process.env.NODE_OPTIONS ?? '', ...writeModuleHooks(hooks)].join(' ').trim(),
      },
      backend,
    );
    const s = serve;
    const id = mesh.manifest.id;
    const start = await postJson(`${s.base}/SchedulerActor/${id}/method/start`, {
      transferId: id,
      manifest: mesh.manifest,
      output: path.join(mesh.dir, 'root', 'out.bin'),
      edges: mesh.edges,
    });
    expect(start.status).toBe(200);
    const done = await until(
      'the transfer ends',
      async () =>
        (await postJson(`${s.base}/SchedulerActor/${id}/method/status`)).json as unknown as TransferStatus,
      (st) => st.state === 'done' || st.state === 'failed',
    );
    expect(done).toMatchObject({ state: 'done', backend: expect.stringMatching(/^cpu/) });
    return s;
  };
  /** Stops `s` and returns the modules it loaded whose path names webgpu or Dawn (after checking the probe works). */
  const gpuModulesOf = async (s: EmbeddedServe) => {
    const exited = new Promise((r) => s.child.once('exit', r));
    s.child.kill('SIGTERM');
    await exited;
    await new Promise((r) => setTimeout(r, 50)); // the last stderr lines
    const loaded = loadedUrls(s.output());
    // the probe sees the process's modules at all: the serve command and the CommonJS files it required
    expect(loaded.some((u) => u.includes('/dist/cli/'))).toBe(true);
    expect(loaded.some((u) => u.includes('/node_modules/') && u.endsWith('.js'))).toBe(true);
    return loaded.filter((u) => /\/node_modules\/webgpu\//.test(u) || /dawn/i.test(u));
  };

  test('runs a transfer and a GpuStreamActor without ever loading the webgpu module', async () => {
    const s = await serveAndTransfer('cpu');
    // a stream with its default backend (auto), and one asking for the GPU outright
    const stream = await postJson(`${s.base}/GpuStreamActor/telemetry/method/start`, {
      kernel: { type: 'edge-telemetry', edges: 4 },
      source: 'direct',
    });
    expect(stream).toMatchObject({ status: 200, json: { backend: 'cpu', kernel: 'edge-telemetry' } });
    expect(
      (await postJson(`${s.base}/GpuStreamActor/telemetry/method/push`, { records: samples(100) })).status,
    ).toBe(200);
    const drained = await postJson(`${s.base}/GpuStreamActor/telemetry/method/drain`);
    expect(drained).toMatchObject({ status: 200, json: { totalItemsProcessed: 100 } });
    const gpu = await postJson(`${s.base}/GpuStreamActor/on-gpu/method/start`, {
      kernel: { type: 'edge-telemetry', edges: 4 },
      source: 'direct',
      backend: 'gpu',
    });
    expect(gpu.status).toBe(503);
    expect(gpu.json).toMatchObject({
      error: { code: 'PORTAL_GPU_UNAVAILABLE', message: expect.stringContaining('--backend cpu') },
    });
    expect(await gpuModulesOf(s)).toEqual([]);
  }, 120_000);

  // issue 15's fast start on the serve host: a transfer far below GPU_MIN_CHUNKS does not open an adapter
  test('--backend auto runs a small transfer without loading the webgpu module', async () => {
    const s = await serveAndTransfer('auto');
    expect(await gpuModulesOf(s)).toEqual([]);
  }, 120_000);
});
