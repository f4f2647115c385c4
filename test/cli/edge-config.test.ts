/**
 * How `portal serve --runtime embedded` and `portal fetch` (real processes) take the edges a transfer names, against
 * real HTTP mirrors (test/helpers/bad-mirror.ts): `maxParallel: 0` is "no limit" (api/schemas/EdgeActor.json).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import {
  runPortal,
  startEmbeddedServe,
  stopEmbeddedServe,
  type EmbeddedServe,
} from '../helpers/portal-cli.js';
import type { TransferEdge, TransferStatus } from '../../actors/index.js';
import { postJson, until } from '../helpers/post-json.js';

let mesh: Mesh;
let mirror: BadMirror;
let serve: EmbeddedServe;
let n = 0;

beforeAll(async () => {
  mesh = await createMesh(12 * 16384 + 77, 16384, []);
  await mkdir(path.join(mesh.dir, 'root'));
  mirror = await startBadMirror(await readFile(mesh.source));
  serve = await startEmbeddedServe(['--output-root', path.join(mesh.dir, 'root')], {
    PORTAL_LOG_LEVEL: 'warn',
    NATS_URL: '',
  });
});
afterAll(async () => {
  await stopEmbeddedServe(serve);
  await mirror.close();
  await mesh.close();
});

const sha256 = async (file: string): Promise<string> =>
  createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
const start = (id: string, edges: TransferEdge[]) =>
  postJson(`${serve.base}/SchedulerActor/${id}/method/start`, {
    transferId: id,
    manifest: mesh.manifest,
    output: path.join(mesh.dir, 'root', `${id}.bin`),
    edges,
  });
const status = async (id: string): Promise<TransferStatus> =>
  (await postJson(`${serve.base}/SchedulerActor/${id}/method/status`, { edges: true }))
    .json as unknown as TransferStatus;
const ended = (id: string) =>
  until(
    `transfer ${id} ends`,
    () => status(id),
    (s) => s.state === 'done' || s.state === 'failed' || s.state === 'cancelled',
    90_000,
  );
const mirrorEdge = (id: string, url: string, maxParallel = 4): TransferEdge => ({
  id,
  config: { url, kind: 'mirror', flags: 0, maxParallel },
});
const fresh = (): string => `t${++n}`;

describe('maxParallel 0 is "no limit"', () => {
  // trial finding #6: an edge with maxParallel 0 was never asked; the transfer failed after ~62 s "stalled: …
  // wait for edges that are offline"
  test('serve: a start whose only edge has maxParallel 0 completes from it', async () => {
    const id = fresh();
    const before = mirror.requests.length;
    expect((await start(id, [mirrorEdge(`mp0-${id}`, mirror.url, 0)])).status).toBe(200);
    const s = await ended(id);
    expect(s.state).toBe('done');
    expect(await sha256(path.join(mesh.dir, 'root', `${id}.bin`))).toBe(mesh.manifest.fileSha256);
    expect(mirror.requests.length - before).toBeGreaterThanOrEqual(mesh.manifest.chunks.length);
  }, 120_000);

  test('fetch: --edge URL#mirror,max=0 completes (0 = no limit, as in the edges file and the API)', async () => {
    const o = path.join(mesh.dir, `fetch-${fresh()}.bin`);
    const r = await runPortal(
      ['fetch', mesh.manifestPath, '--edge', `${mirror.url}#mirror,max=0`, '--out', o],
      {
        env: { PORTAL_BACKEND: 'cpu' },
        timeoutMs: 90_000,
      },
    );
    expect(r.stderr).not.toMatch(/error|max expects/);
    expect(r.code).toBe(0);
    expect(await sha256(o)).toBe(mesh.manifest.fileSha256);
  }, 120_000);
});
