/**
 * `GET /v1/transfers` on `portal serve --runtime embedded` (a real process): the paged list of its transfers by
 * state (trial finding #18: no endpoint listed them, as aria2's tellActive/tellWaiting/tellStopped do), behind the
 * API's token and browser guards, never showing a credential.
 */
import http from 'node:http';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import { startEmbeddedServe, type EmbeddedServe } from '../helpers/portal-cli.js';
import { postJson, until } from '../helpers/post-json.js';
import type { TransferListPage, TransferStatus } from '../../actors/index.js';

/** A GET with node:http (so the Host header is ours to set): status and body text. */
function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      })
      .on('error', reject);
  });
}

describe('portal serve: GET /v1/transfers', () => {
  let mesh: Mesh;
  let mirror: BadMirror | undefined;
  const serves: EmbeddedServe[] = [];
  beforeEach(async () => {
    mesh = await createMesh(8 * 16384, 16384, [{}]);
    await mkdir(path.join(mesh.dir, 'root'));
  });
  afterEach(async () => {
    for (const s of serves.splice(0)) if (s.child.exitCode === null) s.child.kill('SIGKILL');
    await mirror?.close();
    mirror = undefined;
    await mesh.close();
  });
  const serve = async (args: string[] = []) => {
    const s = await startEmbeddedServe(['--output-root', path.join(mesh.dir, 'root'), ...args], {
      PORTAL_LOG_LEVEL: 'warn',
      NATS_URL: '',
    });
    serves.push(s);
    return s;
  };

  test('pages by transfer id, filters by state, shows no credential and refuses an unknown state', async () => {
    const s = await serve();
    const list = `http://127.0.0.1:${s.port}/v1/transfers`;
    const status = async (id: string) =>
      (await postJson(`${s.base}/SchedulerActor/${id}/method/status`)).json as unknown as TransferStatus;
    // three transfers that end done, from the edge
    for (const id of ['t-3', 't-1', 't-2']) {
      const r = await postJson(`${s.base}/SchedulerActor/${id}/method/start`, {
        transferId: id,
        manifest: mesh.manifest,
        output: path.join(mesh.dir, 'root', `${id}.bin`),
        edges: mesh.edges,
      });
      expect(r.status).toBe(200);
    }
    for (const id of ['t-1', 't-2', 't-3'])
      await until(
        id,
        () => status(id),
        (st) => st.state === 'done',
      );
    // one that runs from a mirror whose URL carries credentials and never answers, then is cancelled
    mirror = await startBadMirror(await readFile(mesh.source), () => ({
      kind: 'late',
      ms: 600_000,
      then: { kind: 'ok' },
    }));
    const secretUrl = mirror.url.replace('http://', 'http://alice:S3cretPW@');
    expect(
      (
        await postJson(`${s.base}/SchedulerActor/m-1/method/start`, {
          transferId: 'm-1',
          manifest: mesh.manifest,
          output: path.join(mesh.dir, 'root', 'm-1.bin'),
          edges: [{ id: 'alice', config: { url: secretUrl, kind: 'mirror', flags: 0, maxParallel: 1 } }],
        })
      ).status,
    ).toBe(200);

    const page = async (q: string) => {
      const r = await get(`${list}${q}`);
      expect(r.status).toBe(200);
      expect(r.text).not.toContain('S3cretPW');
      return JSON.parse(r.text) as TransferListPage;
    };
    const all = await page('');
    expect(all.transfers.map((t) => [t.transferId, t.state])).toEqual([
      ['m-1', 'running'],
      ['t-1', 'done'],
      ['t-2', 'done'],
      ['t-3', 'done'],
    ]);
    expect(all.next).toBeUndefined();
    const size = mesh.manifest.fileSize;
    expect(all.transfers[1]).toEqual({
      transferId: 't-1',
      state: 'done',
      bytesDone: size,
      fileSize: size,
      output: path.join(mesh.dir, 'root', 't-1.bin'),
      createdAt: expect.any(Number),
      finishedAt: expect.any(Number),
    });
    expect(all.transfers[1].finishedAt!).toBeGreaterThanOrEqual(all.transfers[1].createdAt);
    expect(all.transfers[0].finishedAt).toBeUndefined();

    // pages of two: the first says where the next starts; the second is the last
    const p1 = await page('?limit=2');
    expect(p1.transfers.map((t) => t.transferId)).toEqual(['m-1', 't-1']);
    expect(p1.next).toBe('t-1');
    const p2 = await page(`?limit=2&after=${p1.next}`);
    expect(p2.transfers.map((t) => t.transferId)).toEqual(['t-2', 't-3']);
    expect(p2.next).toBeUndefined();

    expect((await page('?state=done')).transfers.map((t) => t.transferId)).toEqual(['t-1', 't-2', 't-3']);
    expect((await page('?state=running,queued')).transfers.map((t) => t.transferId)).toEqual(['m-1']);
    expect((await postJson(`${s.base}/SchedulerActor/m-1/method/cancel`)).status).toBe(200);
    expect((await page('?state=cancelled')).transfers.map((t) => [t.transferId, t.state])).toEqual([
      ['m-1', 'cancelled'],
    ]);
    expect((await page('?state=running')).transfers).toEqual([]);
    // forget takes it off the list
    expect((await postJson(`${s.base}/SchedulerActor/t-2/method/forget`)).status).toBe(200);
    expect((await page('?state=done')).transfers.map((t) => t.transferId)).toEqual(['t-1', 't-3']);

    const bad = await get(`${list}?state=finished`);
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text)).toMatchObject({
      error: { code: 'PORTAL_INVALID_ARGUMENT', message: expect.stringContaining('"finished"') },
    });
    for (const q of ['?limit=1001', '?limit=0', '?limit=ten', '?status=done']) {
      const r = await get(`${list}${q}`);
      expect({ q, status: r.status }).toEqual({ q, status: 400 });
    }
    // the browser guard: a page that rebinds its own name to 127.0.0.1 does not read the list
    const rebound = await get(list, { host: 'evil.example' });
    expect(rebound.status).toBe(403);
    expect(rebound.text).toContain('PORTAL_CROSS_SITE_REFUSED');
    // the list is read with GET
    const post = await postJson(list, {});
    expect(post.status).toBe(405);
  }, 180_000);

  test('with --api-token the list needs the token, as every actor call', async () => {
    const s = await serve(['--api-token', 'list-token-1']);
    const list = `http://127.0.0.1:${s.port}/v1/transfers`;
    expect((await get(list)).status).toBe(401);
    expect((await get(list, { authorization: 'Bearer wrong' })).status).toBe(401);
    const ok = await get(list, { authorization: 'Bearer list-token-1' });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.text)).toEqual({ transfers: [] });
  }, 60_000);
});
