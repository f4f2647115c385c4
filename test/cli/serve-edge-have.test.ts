/**
 * A start on `portal serve`'s actor API (a real process) whose `portal` edge omits `holds`: Portal asks the edge's
 * `/v1/have/<manifestId>` and fetches from it only the chunks it holds (trial finding #7: it took "all" and asked
 * the edge for chunks it does not hold, 404 after 404); an edge that does not answer `/v1/have` (a plain HTTP
 * server) is taken as holding every chunk, as before. The edges are real edge servers (`portal edge`'s), behind a
 * proxy that records the paths asked for.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { startEmbeddedServe, type EmbeddedServe } from '../helpers/portal-cli.js';
import { postJson, until } from '../helpers/post-json.js';
import type { TransferStatus } from '../../actors/index.js';

/** A proxy in front of `target` recording each path; `noHave`: answers /v1/have itself with 404, as a plain server. */
async function recordingProxy(target: string, noHave = false) {
  const paths: string[] = [];
  const server = http.createServer((req, res) => {
    paths.push(req.url ?? '');
    if (noHave && (req.url ?? '').startsWith('/v1/have/')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const up = http.request(
      `${target}${req.url ?? '/'}`,
      { method: req.method, headers: req.headers },
      (u) => {
        res.writeHead(u.statusCode ?? 502, u.headers);
        u.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    paths,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('portal serve: a portal edge whose holds are omitted', () => {
  let mesh: Mesh;
  let serve: EmbeddedServe | undefined;
  let proxy: Awaited<ReturnType<typeof recordingProxy>> | undefined;
  afterEach(async () => {
    if (serve && serve.child.exitCode === null) serve.child.kill('SIGKILL');
    serve = undefined;
    await proxy?.close();
    proxy = undefined;
    await mesh.close();
  });
  const run = async (holds: number[] | 'all', noHave: boolean) => {
    mesh = await createMesh(8 * 16384, 16384, [{ holds }]);
    await mkdir(path.join(mesh.dir, 'root'));
    proxy = await recordingProxy(mesh.servers[0].url, noHave);
    serve = await startEmbeddedServe(['--output-root', path.join(mesh.dir, 'root')], {
      PORTAL_LOG_LEVEL: 'warn',
      NATS_URL: '',
    });
    const s = serve;
    const id = mesh.manifest.id;
    const start = await postJson(`${s.base}/SchedulerActor/${id}/method/start`, {
      transferId: id,
      manifest: mesh.manifest,
      output: path.join(mesh.dir, 'root', 'out.bin'),
      edges: [{ id: 'edge-a', config: { url: proxy.url, kind: 'portal', flags: 0, maxParallel: 8 } }],
    });
    expect(start.status).toBe(200);
    const status = async () =>
      (await postJson(`${s.base}/SchedulerActor/${id}/method/status`)).json as unknown as TransferStatus;
    return { id, status };
  };
  /** The chunk indices the edge was asked for, in order. */
  const chunksAsked = () =>
    proxy!.paths.flatMap((p) => {
      const m = /^\/v1\/chunks\/([0-9a-f]{64})/.exec(p);
      return m ? [mesh.manifest.chunks.indexOf(m[1])] : [];
    });

  test("the edge's /v1/have answer is used: chunks it does not hold are never asked of it", async () => {
    const { id, status } = await run([0, 1], false);
    await until('the two chunks the edge holds', status, (st) => st.complete >= 2);
    expect(proxy!.paths).toContain(`/v1/have/${id}`);
    // every chunk it was asked for is one it holds (the old start took "all" and asked for all 8 at once)
    expect(new Set(chunksAsked())).toEqual(new Set([0, 1]));
    // and no request came for the others since
    await new Promise((r) => setTimeout(r, 500));
    expect(new Set(chunksAsked())).toEqual(new Set([0, 1]));
  }, 120_000);

  test('an edge that does not answer /v1/have (a plain HTTP server there) is taken as holding every chunk', async () => {
    const { id, status } = await run('all', true);
    const end = await until('the end', status, (st) => st.state === 'done' || st.state === 'failed');
    expect(end.state).toBe('done');
    expect(proxy!.paths).toContain(`/v1/have/${id}`);
    expect(new Set(chunksAsked())).toEqual(new Set([0, 1, 2, 3, 4, 5, 6, 7]));
  }, 120_000);
});
