/**
 * How `portal serve --runtime embedded` and `portal fetch` (real processes) take the edges a transfer names, against
 * real HTTP mirrors (test/helpers/bad-mirror.ts): `maxParallel: 0` is "no limit" (api/schemas/EdgeActor.json); a
 * transfer whose every source is dead from the start (connection refused) fails at once naming them (docs/api.md); an
 * edge id names one edge: a start naming it twice is refused (400), as is one naming with another URL an id another
 * transfer uses now (409), and fetch refuses an id given twice (exit 2).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
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
/** A loopback URL nothing listens on (a port a server had, then closed): every connection is refused. */
let deadUrl: string;

beforeAll(async () => {
  mesh = await createMesh(12 * 16384 + 77, 16384, []);
  await mkdir(path.join(mesh.dir, 'root'));
  mirror = await startBadMirror(await readFile(mesh.source));
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  deadUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/gone.bin`;
  await new Promise((r) => closed.close(r));
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
const start = (id: string, edges: TransferEdge[], extra: Record<string, unknown> = {}) =>
  postJson(`${serve.base}/SchedulerActor/${id}/method/start`, {
    transferId: id,
    manifest: mesh.manifest,
    output: path.join(mesh.dir, 'root', `${id}.bin`),
    edges,
    ...extra,
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

// trial finding #7: a source refusing connections from the start was waited on for the whole 60 s source budget
// (serve, and fetch <manifest> --edge URL#mirror), while URL mode fails in 1 s
describe('every source dead from the start: the transfer fails at once, naming them', () => {
  // budget and stall timeout of 10 min: only the dead-from-the-start rule can end these within the test's wait
  const patient = { edgeBudgetMs: 600_000, stallTimeoutMs: 600_000 };
  const DEAD =
    /every source is unreachable since the transfer started \(connection refused or no such host\)/;

  test('serve: two sources, both refused: failed naming each, long before their budget', async () => {
    const id = fresh();
    const dead2 = deadUrl.replace('gone.bin', 'also-gone.bin');
    const edges = [mirrorEdge(`dead-a-${id}`, deadUrl), mirrorEdge(`dead-b-${id}`, dead2)];
    expect((await start(id, edges, patient)).status).toBe(200);
    const s = await until(
      `transfer ${id} fails`,
      () => status(id),
      (x) => x.state !== 'running' && x.state !== 'queued',
      60_000,
    );
    expect(s.state).toBe('failed');
    expect(s.error).toMatch(DEAD);
    expect(s.error).toContain(`${deadUrl} (dead-a-${id}): unreachable: connection refused`);
    expect(s.error).toContain(`${dead2} (dead-b-${id}): unreachable: connection refused`);
  }, 90_000);

  test('serve: one source refused, one alive: the transfer completes from the live one', async () => {
    const id = fresh();
    const edges = [mirrorEdge(`dead-${id}`, deadUrl), mirrorEdge(`live-${id}`, mirror.url)];
    expect((await start(id, edges, patient)).status).toBe(200);
    const s = await ended(id);
    expect(s.state).toBe('done');
    expect(await sha256(path.join(mesh.dir, 'root', `${id}.bin`))).toBe(mesh.manifest.fileSha256);
  }, 120_000);

  test('serve: a source that answers 503 (there, but busy) is not taken for dead: the transfer waits for it', async () => {
    const id = fresh();
    let busy = true;
    const busyMirror = await startBadMirror(await readFile(mesh.source), () =>
      busy ? { kind: 'status', status: 503 } : { kind: 'ok' },
    );
    try {
      const edges = [mirrorEdge(`dead-${id}`, deadUrl), mirrorEdge(`busy-${id}`, busyMirror.url)];
      expect((await start(id, edges, patient)).status).toBe(200);
      await until(
        'the busy mirror answered 503',
        async () => busyMirror.requests.length,
        (k) => k >= 2,
      );
      expect((await status(id)).state).toBe('running');
      busy = false;
      const s = await ended(id);
      expect(s.state).toBe('done');
    } finally {
      await busyMirror.close();
    }
  }, 120_000);

  test('fetch <manifest> --edge URL#mirror of a refused port: exit 3 naming it, not after the 60 s budget', async () => {
    const o = path.join(mesh.dir, `fetch-${fresh()}.bin`);
    const r = await runPortal(
      ['fetch', mesh.manifestPath, '--edge', `${deadUrl}#mirror`, '--out', o, '--source-budget', '600'],
      { env: { PORTAL_BACKEND: 'cpu' }, timeoutMs: 60_000 },
    );
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(DEAD);
    expect(r.stderr).toContain(`${deadUrl} (`);
    expect(r.stderr).toContain('unreachable: connection refused');
  }, 90_000);
});

// trial finding #3: edge ids are global; a second transfer (or a second edge of one start, or fetch --edges-file)
// naming an existing id with another URL reconfigured the edge for everyone, and the first transfer stalled
describe('edge ids name one edge', () => {
  test('serve: a start naming one edge id twice is refused 400 naming the id; the transfer id stays unknown', async () => {
    const id = fresh();
    const r = await start(id, [mirrorEdge(`d-${id}`, mirror.url), mirrorEdge(`d-${id}`, deadUrl)]);
    expect(r.status).toBe(400);
    expect(r.json).toEqual({
      error: {
        code: 'PORTAL_INVALID_ARGUMENT',
        message: `edges[1].id: edge id "d-${id}" is named twice (edges[0] and edges[1]); an edge id names one edge: give each source its own id`,
      },
    });
    expect((await postJson(`${serve.base}/SchedulerActor/${id}/method/status`)).status).toBe(404);
  });

  test('serve: another transfer naming a used edge id with another URL gets 409 naming the id, the transfer and its URL; the first completes; once it ended the id may take a new URL', async () => {
    const a = fresh();
    const b = fresh();
    const shared = `m9-${a}`;
    // a mirror slow enough that transfer a is still running while b starts (1 KiB per 50 ms: ~0.8 s a chunk)
    const slow = await startBadMirror(await readFile(mesh.source), () => ({
      kind: 'trickle',
      bytes: 1024,
      everyMs: 50,
    }));
    try {
      expect((await start(a, [mirrorEdge(shared, slow.url, 2)])).status).toBe(200);
      const r = await start(b, [mirrorEdge(shared, deadUrl, 2)]);
      expect(r.status).toBe(409);
      expect(r.json.error).toEqual({
        code: 'PORTAL_TRANSFER_CONFLICT',
        message: `edge id "${shared}" is in use by transfer "${a}" as mirror ${slow.url}, not mirror ${deadUrl}: an edge id names one edge for every transfer on this host (its EdgeActor learns that edge's bandwidth, RTT and health for all of them); give this source another id, or name the same url and kind`,
      });
      expect((await postJson(`${serve.base}/SchedulerActor/${b}/method/status`)).status).toBe(404);
      // the same URL under the same id is the same edge: shared, accepted
      const c = fresh();
      expect((await start(c, [mirrorEdge(shared, slow.url, 2)])).status).toBe(200);
      const sa = await ended(a);
      expect(sa.state).toBe('done');
      expect(sa.edges?.[0]).toMatchObject({ id: shared, url: slow.url });
      expect(await sha256(path.join(mesh.dir, 'root', `${a}.bin`))).toBe(mesh.manifest.fileSha256);
      expect((await ended(c)).state).toBe('done');
      // no transfer uses the id any more: a new URL is taken (this one is dead: it fails at once, naming it)
      expect((await start(b, [mirrorEdge(shared, deadUrl, 2)], { edgeBudgetMs: 600_000 })).status).toBe(200);
      const sb = await ended(b);
      expect(sb.state).toBe('failed');
      expect(sb.error).toContain(`${deadUrl} (${shared}): unreachable: connection refused`);
    } finally {
      await slow.close();
    }
  }, 120_000);

  test('fetch --edges-file naming one id twice, or --edge twice with one URL: exit 2 naming the id and both places; nothing written', async () => {
    const file = path.join(mesh.dir, `edges-${fresh()}.json`);
    await writeFile(
      file,
      JSON.stringify(
        [mirrorEdge('d', mirror.url), mirrorEdge('d', deadUrl)].map((e) => ({ ...e, holds: 'all' })),
      ),
    );
    const o = path.join(mesh.dir, `dup-${fresh()}.bin`);
    const r = await runPortal(['fetch', mesh.manifestPath, '--edges-file', file, '--out', o], {
      env: { PORTAL_BACKEND: 'cpu' },
      timeoutMs: 60_000,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `edge id "d" is given twice (--edges-file ${file}: edge [0] "d" and --edges-file ${file}: edge [1] "d"): an edge id names one edge; give each source its own id (--edge URL#id=NAME, "id" in --edges-file) [PORTAL_CONFIG_INVALID]`,
    );
    const twice = await runPortal(
      [
        'fetch',
        mesh.manifestPath,
        '--edge',
        `${mirror.url}#mirror`,
        '--edge',
        `${mirror.url}#mirror,max=2`,
        '--out',
        o,
      ],
      { env: { PORTAL_BACKEND: 'cpu' }, timeoutMs: 60_000 },
    );
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain(
      `is given twice (--edge ${mirror.url}#mirror and --edge ${mirror.url}#mirror,max=2)`,
    );
    expect(existsSync(o)).toBe(false);
    expect(existsSync(`${o}.portal-part`)).toBe(false);
  }, 90_000);
});

describe('edge ids name one edge: queued transfers', () => {
  let q: EmbeddedServe;
  beforeAll(async () => {
    await mkdir(path.join(mesh.dir, 'rootq'), { recursive: true });
    q = await startEmbeddedServe(['--output-root', path.join(mesh.dir, 'rootq'), '--max-running', '2'], {
      PORTAL_LOG_LEVEL: 'warn',
      NATS_URL: '',
    });
  });
  afterAll(async () => {
    await stopEmbeddedServe(q);
  });
  const qcall = (id: string, method: string, body?: unknown) =>
    postJson(`${q.base}/SchedulerActor/${id}/method/${method}`, body);
  const qstart = (id: string, edges: TransferEdge[]) =>
    qcall(id, 'start', {
      transferId: id,
      manifest: mesh.manifest,
      output: path.join(mesh.dir, 'rootq', `${id}.bin`),
      edges,
    });
  const qstate = (id: string, ok: (s: TransferStatus) => boolean) =>
    until(
      `transfer ${id}`,
      async () => (await qcall(id, 'status')).json as unknown as TransferStatus,
      ok,
      90_000,
    );

  test('a queued transfer whose edge id another transfer took with another URL meanwhile fails naming it when it is admitted', async () => {
    const hang = await startBadMirror(await readFile(mesh.source), () => ({ kind: 'stall' }));
    try {
      const [x1, x2, a, b] = [fresh(), fresh(), fresh(), fresh()];
      const shared = `q9-${a}`;
      for (const x of [x1, x2])
        expect((await qstart(x, [mirrorEdge(`hang-${x}`, hang.url)])).status).toBe(200);
      // both queued (2 running): neither uses the id yet, so both starts are accepted
      expect((await qstart(a, [mirrorEdge(shared, mirror.url)])).json).toMatchObject({ state: 'queued' });
      expect((await qstart(b, [mirrorEdge(shared, deadUrl)])).json).toMatchObject({ state: 'queued' });
      expect((await qcall(x1, 'cancel')).status).toBe(200);
      await qstate(a, (s) => s.state !== 'queued');
      expect((await qcall(x2, 'cancel')).status).toBe(200);
      const sb = await qstate(b, (s) => s.state !== 'queued' && s.state !== 'running');
      expect(sb.state).toBe('failed');
      expect(sb.error).toContain(`edge id "${shared}" is in use by transfer "${a}" as mirror ${mirror.url}`);
      expect((await qstate(a, (s) => s.state === 'done' || s.state === 'failed')).state).toBe('done');
    } finally {
      await hang.close();
    }
  }, 120_000);
});
