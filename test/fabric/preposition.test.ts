import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { request } from 'undici';
import { freePort, startNatsServer } from '../../harness/index.js';
import { createBusFromEnv, subjects } from '../../bus/index.js';
import { chunkRange, decodeHaveBitmap } from '../../transfer/index.js';
import type { TransferRequest, TransferStatus } from '../../actors/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { startPortal, startServe, json, type PortalProcess } from './helpers.js';

const CHUNK = 16384;
const CHUNKS = 40;

describe('pre-position tasks', () => {
  let mesh: Mesh | undefined;
  const procs: PortalProcess[] = [];
  afterEach(async () => {
    for (const p of procs.splice(0)) {
      p.child.kill('SIGTERM');
      await p.exit;
    }
    await mesh?.close();
    mesh = undefined;
  });

  test('an accepting edge process receives a pre-position task through the actor API of portal serve, then serves exactly those chunks', async () => {
    mesh = await createMesh(CHUNKS * CHUNK, CHUNK, [{ holds: 'all', bandwidthBytesPerSec: 2_000_000 }]);
    const source = await readFile(mesh.source);
    const token = 'pp-token';
    const target = startPortal(
      [
        'edge',
        '--file',
        path.join(mesh.dir, 'target.bin'),
        '--manifest',
        mesh.manifestPath,
        '--accept',
        '--id',
        'target',
        '--json',
      ],
      { env: { PORTAL_EDGE_PUT_TOKEN: token } },
    );
    procs.push(target);
    const targetUrl = await target.line((l) => {
      const m = json(l);
      return typeof m?.url === 'string' ? m.url : undefined;
    });
    const port = await freePort();
    const serve = startPortal(['serve', '--runtime', 'embedded', '--app-port', String(port), '--json'], {
      env: { PORTAL_EDGE_PUT_TOKEN: token, PORTAL_EDGE_PUT_ORIGINS: targetUrl },
    });
    procs.push(serve);
    await serve.line((l) => (json(l)?.type === 'ready' ? true : undefined));
    const api = `http://127.0.0.1:${port}/v1.0/actors/SchedulerActor/pp1/method`;
    const req: TransferRequest = {
      transferId: 'pp1',
      manifest: mesh.manifest,
      output: targetUrl,
      edges: [
        {
          id: 'origin',
          config: { url: mesh.servers[0].url, kind: 'portal', flags: 0, maxParallel: 4 },
          holds: 'all',
        },
      ],
      prePosition: { chunks: [[5, 9], 30], byteRange: { offset: 20 * CHUNK + 1, length: CHUNK } },
    };
    const started = await request(`${api}/start`, { method: 'POST', body: JSON.stringify(req) });
    expect(started.statusCode).toBe(200);
    await started.body.dump();
    let status: TransferStatus | undefined;
    for (let i = 0; i < 200; i++) {
      const r = await request(`${api}/status`, { method: 'POST' });
      status = (await r.body.json()) as TransferStatus;
      if (status.state === 'done' || status.state === 'failed') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(status).toMatchObject({ state: 'done', verified: true });
    const want = [5, 6, 7, 8, 9, 20, 21, 30];
    const have = await request(`${targetUrl}/v1/have/${mesh.manifest.id}`);
    const h = (await have.body.json()) as { bitmap: string; chunks: number };
    expect(decodeHaveBitmap(h.bitmap, h.chunks)).toEqual(want);
    for (const c of [...want, 0, 10]) {
      const res = await request(`${targetUrl}/v1/chunks/${mesh.manifest.chunks[c]}`);
      const body = Buffer.from(await res.body.arrayBuffer());
      if (!want.includes(c)) {
        expect(res.statusCode).toBe(404);
        continue;
      }
      expect(res.statusCode).toBe(200);
      const r = chunkRange(mesh.manifest, c);
      expect(body.equals(source.subarray(r.offset, r.offset + r.length))).toBe(true);
    }
    // the origin served the task's chunks once each (no more: the target had none of them)
    expect(mesh.servers[0].stats().bytesServed).toBe(want.length * CHUNK);
  }, 60_000);

  test('a pre-position task published on portal.preposition.<id>.start (NATS) is started by portal serve, and the edge then serves the chunks', async () => {
    const nats = await startNatsServer();
    try {
      mesh = await createMesh(CHUNKS * CHUNK, CHUNK, [{ holds: 'all', bandwidthBytesPerSec: 4_000_000 }]);
      const source = await readFile(mesh.source);
      const env = { NATS_URL: nats.url };
      const target = startPortal(
        [
          'edge',
          '--file',
          path.join(mesh.dir, 'target2.bin'),
          '--manifest',
          mesh.manifestPath,
          '--accept',
          '--json',
        ],
        { env },
      );
      procs.push(target);
      const targetUrl = await target.line((l) => {
        const m = json(l);
        return typeof m?.url === 'string' ? m.url : undefined;
      });
      const port = await freePort();
      const serve = startPortal(['serve', '--runtime', 'embedded', '--app-port', String(port), '--json'], {
        env,
      });
      procs.push(serve);
      await serve.line((l) => (json(l)?.type === 'ready' ? true : undefined));
      const bus = await createBusFromEnv({ env });
      const req: TransferRequest = {
        transferId: 'pp2',
        manifest: mesh.manifest,
        output: targetUrl,
        edges: [
          {
            id: 'origin2',
            config: { url: mesh.servers[0].url, kind: 'portal', flags: 0, maxParallel: 4 },
            holds: 'all',
          },
        ],
        prePosition: { byteRange: { offset: 0, length: 10 * CHUNK } },
      };
      await bus.publish(subjects.prePosition('pp2'), { taskId: 'pp2', request: req });
      await bus.close();
      const api = `http://127.0.0.1:${port}/v1.0/actors/SchedulerActor/pp2/method`;
      let status: TransferStatus | undefined;
      for (let i = 0; i < 200; i++) {
        const r = await request(`${api}/status`, { method: 'POST' });
        status = (await r.body.json()) as TransferStatus;
        if (status.state === 'done' || status.state === 'failed') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(status).toMatchObject({ state: 'done', verified: true });
      const have = await request(`${targetUrl}/v1/have/${mesh.manifest.id}`);
      const h = (await have.body.json()) as { bitmap: string; chunks: number };
      expect(decodeHaveBitmap(h.bitmap, h.chunks)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      const res = await request(`${targetUrl}/v1/chunks/${mesh.manifest.chunks[7]}`);
      const body = Buffer.from(await res.body.arrayBuffer());
      const r7 = chunkRange(mesh.manifest, 7);
      expect(body.equals(source.subarray(r7.offset, r7.offset + r7.length))).toBe(true);
    } finally {
      for (const p of procs.splice(0)) {
        p.child.kill('SIGTERM');
        await p.exit;
      }
      await nats.stop();
    }
  }, 60_000);
  test.each([
    ['its start request names', 'start'],
    ['a content read names (x-portal-location)', 'read'],
  ] as const)(
    'a transfer read from a location where no edge holds the file (%s) makes portal serve replicate it to the accepting edge there, in the background',
    async (_, how) => {
      mesh = await createMesh(CHUNKS * CHUNK, CHUNK, [{ holds: 'all', bandwidthBytesPerSec: 4_000_000 }]);
      const source = await readFile(mesh.source);
      const target = startPortal([
        'edge',
        '--file',
        path.join(mesh.dir, 'near.bin'),
        '--manifest',
        mesh.manifestPath,
        '--accept',
        '--location',
        'near',
        '--id',
        'near-1',
        '--json',
      ]);
      procs.push(target);
      const started = await target.line((l) => {
        const m = json(l);
        return typeof m?.url === 'string' ? (m as { url: string; location?: string }) : undefined;
      });
      expect(started.location).toBe('near');
      const health = await request(`${started.url}/health`);
      expect(await health.body.json()).toMatchObject({ id: 'near-1', location: 'near' });
      const port = await freePort();
      procs.push(await startServe(port, mesh.dir));
      const api = `http://127.0.0.1:${port}/v1.0/actors/SchedulerActor/reader1/method`;
      const none = Buffer.alloc(Math.ceil(CHUNKS / 8)).toString('base64');
      const req: TransferRequest = {
        transferId: 'reader1',
        manifest: mesh.manifest,
        output: path.join(mesh.dir, 'reader1.bin'),
        ...(how === 'start' ? { location: 'near' } : {}),
        edges: [
          {
            id: 'origin3',
            config: { url: mesh.servers[0].url, kind: 'portal', flags: 0, maxParallel: 4, location: 'far' },
            holds: 'all',
          },
          {
            id: 'near-1',
            config: {
              url: started.url,
              kind: 'portal',
              flags: 0,
              maxParallel: 4,
              location: 'near',
              accepts: true,
            },
            holds: none,
          },
        ],
      };
      const res = await request(`${api}/start`, { method: 'POST', body: JSON.stringify(req) });
      expect(res.statusCode).toBe(200);
      await res.body.dump();
      if (how === 'read') {
        // a reader at 'near' reads the first chunk of the content; a label longer than 256 characters is refused
        const content = `http://127.0.0.1:${port}/v1/transfers/reader1/content`;
        const bad = await request(content, {
          headers: { 'x-portal-location': 'x'.repeat(300), range: 'bytes=0-0' },
        });
        expect(bad.statusCode).toBe(400);
        expect(await bad.body.text()).toMatch(/x-portal-location/);
        const read = await request(content, {
          headers: { 'x-portal-location': 'near', range: `bytes=0-${CHUNK - 1}` },
        });
        expect(read.statusCode).toBe(206);
        expect(Buffer.from(await read.body.arrayBuffer()).equals(source.subarray(0, CHUNK))).toBe(true);
      }
      // the reader's transfer finishes, and the accepting edge near the reader comes to hold every chunk
      let held: number[] = [];
      for (let i = 0; i < 600 && held.length < CHUNKS; i++) {
        const have = await request(`${started.url}/v1/have/${mesh.manifest.id}`);
        const h = (await have.body.json()) as { bitmap: string; chunks: number };
        held = decodeHaveBitmap(h.bitmap, h.chunks);
        if (held.length < CHUNKS) await new Promise((r) => setTimeout(r, 50));
      }
      expect(held).toHaveLength(CHUNKS);
      const s = (await (await request(`${api}/status`, { method: 'POST' })).body.json()) as TransferStatus;
      expect(s).toMatchObject({ state: 'done', verified: true });
      const c = 17;
      const body = Buffer.from(
        await (await request(`${started.url}/v1/chunks/${mesh.manifest.chunks[c]}`)).body.arrayBuffer(),
      );
      const r = chunkRange(mesh.manifest, c);
      expect(body.equals(source.subarray(r.offset, r.offset + r.length))).toBe(true);
      // the origin served the file twice: once to the reader, once to the replica task (one task, not more)
      const served = mesh.servers[0].stats().bytesServed;
      expect(served).toBeGreaterThanOrEqual(2 * CHUNKS * CHUNK);
      expect(served).toBeLessThan(3 * CHUNKS * CHUNK);
    },
    90_000,
  );
});
