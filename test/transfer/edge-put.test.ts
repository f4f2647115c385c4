import { join } from 'node:path';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { request } from 'undici';
import {
  createManifest,
  createEdgeServer,
  chunkRange,
  edgePutCredentialFromEnv,
  decodeHaveBitmap,
  type EdgeServer,
  type Manifest,
} from '../../transfer/index.js';
import { createMemoryBus, subjects } from '../../bus/index.js';
import type { EdgeHaveEvent, EdgeTelemetryEvent } from '../../common/index.js';
import { ManualClock } from '../../common/clock.js';
import { makeTempDir, writeRandomFile } from './fixtures.js';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { openPutWriter } from '../../transfer/chunk-put.js';

const CHUNK = 64 * 1024;
const SIZE = 5 * CHUNK + 999; // 6 chunks, odd last

let tmp: { dir: string; cleanup: () => Promise<void> };
let src: { path: string; bytes: Buffer };
let m: Manifest;
const servers: EdgeServer[] = [];

const slice = (i: number): Buffer => {
  const r = chunkRange(m, i);
  return src.bytes.subarray(r.offset, r.offset + r.length);
};

async function put(
  edge: EdgeServer,
  cid: string,
  body: Buffer,
  token?: string,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await request(`${edge.url}/v1/chunks/${cid}`, {
    method: 'PUT',
    body,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function get(url: string): Promise<{ status: number; body: Buffer }> {
  const res = await request(url);
  return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) };
}

async function haveOf(edge: EdgeServer): Promise<number[]> {
  const res = await request(`${edge.url}/v1/have/${m.id}`);
  const j = (await res.body.json()) as { bitmap: string; chunks: number };
  return decodeHaveBitmap(j.bitmap, j.chunks);
}

beforeAll(async () => {
  tmp = await makeTempDir('edge-put');
  src = await writeRandomFile(tmp.dir, 'src.bin', SIZE, 7);
  m = await createManifest(src.path, { chunkSize: CHUNK });
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await tmp.cleanup();
});

async function acceptingEdge(name: string, extra: Partial<Parameters<typeof createEdgeServer>[0]> = {}) {
  const s = await createEdgeServer({
    source: { path: join(tmp.dir, name), manifest: m },
    holds: new Set(),
    accept: {},
    ...extra,
  });
  servers.push(s);
  return s;
}

describe('edge accepting chunks (PUT /v1/chunks/<cid>)', () => {
  test('a PUT body that hashes to its CID is stored and served; a corrupt one is refused with 422 and nothing is kept', async () => {
    const e = await acceptingEdge('store1.bin');
    expect((await stat(join(tmp.dir, 'store1.bin'))).size).toBe(SIZE); // created sparse at the manifest's size
    expect(await haveOf(e)).toEqual([]);

    const good = await put(e, m.chunks[2], slice(2));
    expect(good.status).toBe(201);
    const bad = Buffer.from(slice(4));
    bad[100] ^= 0xff;
    const corrupt = await put(e, m.chunks[4], bad);
    expect(corrupt.status).toBe(422);
    expect(corrupt.json.error).toMatch(/does not hash to the CID/);

    expect(await haveOf(e)).toEqual([2]);
    const served = await get(`${e.url}/v1/chunks/${m.chunks[2]}`);
    expect(served.status).toBe(200);
    expect(served.body.equals(slice(2))).toBe(true);
    expect((await get(`${e.url}/v1/chunks/${m.chunks[4]}`)).status).toBe(404);
    // nothing of the corrupt body reached the file
    const onDisk = await readFile(join(tmp.dir, 'store1.bin'));
    const r4 = chunkRange(m, 4);
    expect(onDisk.subarray(r4.offset, r4.offset + r4.length).every((b) => b === 0)).toBe(true);
    expect(e.stats()).toMatchObject({ chunksAccepted: 1, putsRefused: 1 });
  });

  test('a PUT of the same chunk again answers 200 without storing; an unknown CID is 404; a body of the wrong length is refused', async () => {
    const e = await acceptingEdge('store2.bin');
    expect((await put(e, m.chunks[0], slice(0))).status).toBe(201);
    expect(await put(e, m.chunks[0], slice(0))).toMatchObject({ status: 200, json: { stored: false } });
    expect((await put(e, 'ab'.repeat(32), slice(0))).status).toBe(404);
    expect((await put(e, m.chunks[1], Buffer.concat([slice(1), Buffer.alloc(10)]))).status).toBe(413);
    expect((await put(e, m.chunks[1], slice(1).subarray(0, 100))).status).toBe(422);
    expect(await haveOf(e)).toEqual([0]);
  });

  test('a PUT on a full disk (a 256 KiB tmpfs with 32 KiB free) answers 507 naming ENOSPC and the file, keeps none of the chunk, and the edge serves on', async () => {
    // a real full file system: mount needs root (CAP_SYS_ADMIN), as test/cli/fetch-local-io.test.ts does
    const small = join(tmp.dir, 'full');
    await mkdir(small);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', small]);
    let e: EdgeServer | undefined;
    try {
      const file = join(small, 'store-full.bin');
      e = await acceptingEdge(join('full', 'store-full.bin')); // sparse: takes no space yet
      await writeFile(join(small, 'filler'), Buffer.alloc(256 * 1024 - 32 * 1024));
      const full = await put(e, m.chunks[1], slice(1)); // 64 KiB: the first 32 KiB fit, the rest does not
      expect(full.status).toBe(507);
      expect(full.json).toMatchObject({ code: 'PORTAL_NO_SPACE', cid: m.chunks[1] });
      expect(full.json.error).toBe(`no space left on device: cannot write ${file} (ENOSPC)`);
      expect(await haveOf(e)).toEqual([]);
      expect((await get(`${e.url}/v1/chunks/${m.chunks[1]}`)).status).toBe(404);
      // the bytes that did fit were zeroed again: no part of the chunk is left in the file
      const r1 = chunkRange(m, 1);
      const onDisk = await readFile(file);
      expect(onDisk.subarray(r1.offset, r1.offset + r1.length).every((b) => b === 0)).toBe(true);
      // the edge keeps serving, and takes the same chunk once there is room
      expect((await get(`${e.url}/health`)).status).toBe(200);
      await rm(join(small, 'filler'));
      expect((await put(e, m.chunks[1], slice(1))).status).toBe(201);
      expect((await get(`${e.url}/v1/chunks/${m.chunks[1]}`)).body.equals(slice(1))).toBe(true);
      expect(e.stats()).toMatchObject({ chunksAccepted: 1 });
    } finally {
      await e?.close(); // the open source file would keep the mount busy
      execFileSync('umount', [small]);
    }
  });

  test('with a token, a PUT without it or with a wrong one is refused with 401 and nothing is stored', async () => {
    const e = await acceptingEdge('store3.bin', { accept: { token: 's3cret' } });
    expect((await put(e, m.chunks[3], slice(3))).status).toBe(401);
    expect((await put(e, m.chunks[3], slice(3), 'wrong')).status).toBe(401);
    expect(await haveOf(e)).toEqual([]);
    expect((await put(e, m.chunks[3], slice(3), 's3cret')).status).toBe(201);
    expect(await haveOf(e)).toEqual([3]);
  });

  test('the host PUT token goes only to the origins of PORTAL_EDGE_PUT_ORIGINS: an output URL chosen by a caller never receives it', async () => {
    const e = await acceptingEdge('store-put-origins.bin', { accept: { token: 'host-token' } });
    // a server that records what it is sent: a caller of `start` could name it as the output
    const seen: Array<string | undefined> = [];
    const catcher = createServer((req, res) => {
      seen.push(req.headers.authorization);
      req.resume();
      req.on('end', () => res.writeHead(201).end());
    });
    await new Promise<void>((r) => catcher.listen(0, '127.0.0.1', r));
    const catcherUrl = `http://127.0.0.1:${(catcher.address() as AddressInfo).port}`;
    try {
      const put = edgePutCredentialFromEnv({
        PORTAL_EDGE_PUT_TOKEN: 'host-token',
        PORTAL_EDGE_PUT_ORIGINS: ` ${e.url}/ , http://edge.example:8080/some/path`,
      })!;
      expect([...put.origins]).toEqual([new URL(e.url).origin, 'http://edge.example:8080']);
      // the listed edge gets the token and holds the chunk
      const r0 = chunkRange(m, 2);
      await openPutWriter(e.url, { fileSize: m.fileSize, put }).write(r0.offset, slice(2));
      expect(await haveOf(e)).toEqual([2]);
      // another origin gets the PUT without the token
      await openPutWriter(catcherUrl, { fileSize: m.fileSize, put }).write(r0.offset, slice(2));
      expect(seen).toEqual([undefined]);
      // the listed edge's origin with another port is another origin: its 401 names the list
      const other = await acceptingEdge('store-put-origins2.bin', { accept: { token: 'host-token' } });
      await expect(
        openPutWriter(other.url, { fileSize: m.fileSize, put }).write(r0.offset, slice(2)),
      ).rejects.toThrow(/refused the PUT: 401 \(put token missing or wrong: .*PORTAL_EDGE_PUT_ORIGINS/);
      expect(await haveOf(other)).toEqual([]);
      // no list: the token goes nowhere
      const none = edgePutCredentialFromEnv({ PORTAL_EDGE_PUT_TOKEN: 'host-token' })!;
      expect(none.origins.size).toBe(0);
      await openPutWriter(catcherUrl, { fileSize: m.fileSize, put: none }).write(r0.offset, slice(2));
      expect(seen).toEqual([undefined, undefined]);
      expect(edgePutCredentialFromEnv({ PORTAL_EDGE_PUT_ORIGINS: e.url })).toBeUndefined();
      expect(() =>
        edgePutCredentialFromEnv({ PORTAL_EDGE_PUT_TOKEN: 't', PORTAL_EDGE_PUT_ORIGINS: 'file:///etc' }),
      ).toThrow(/PORTAL_EDGE_PUT_ORIGINS: "file:\/\/\/etc" is not an http\(s\) URL/);
    } finally {
      await new Promise((r) => catcher.close(r));
    }
  });

  test('an edge that does not accept chunks answers a PUT with 405 and allows only GET and HEAD', async () => {
    const s = await createEdgeServer({ source: { path: src.path, manifest: m } });
    servers.push(s);
    const res = await request(`${s.url}/v1/chunks/${m.chunks[0]}`, { method: 'PUT', body: slice(0) });
    await res.body.dump();
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toBe('GET, HEAD');
  });

  test('an announcing edge publishes its URL, then a have bitmap that grows only with verified chunks', async () => {
    const bus = createMemoryBus();
    const tel: EdgeTelemetryEvent[] = [];
    const haves: EdgeHaveEvent[] = [];
    bus.subscribe<EdgeTelemetryEvent>(subjects.edgeTelemetry('acc'), (ev) => void tel.push(ev));
    bus.subscribe<EdgeHaveEvent>(subjects.edgeHave('acc'), (ev) => void haves.push(ev));
    const e = await acceptingEdge('store4.bin', {
      id: 'acc',
      announce: { bus, announceCoalesceMs: 5, announceEveryMs: 60_000 },
    });
    expect(tel[0]).toMatchObject({ edgeId: 'acc', url: e.url, online: true, kind: 'portal' });
    expect(haves).toHaveLength(1);
    const bad = Buffer.from(slice(1));
    bad[0] ^= 1;
    expect((await put(e, m.chunks[1], bad)).status).toBe(422);
    expect((await put(e, m.chunks[5], slice(5))).status).toBe(201);
    await new Promise((r) => setTimeout(r, 50));
    const last = haves.at(-1)!;
    expect(last.kind).toBe('full');
    if (last.kind !== 'full') return;
    expect(decodeHaveBitmap(Buffer.from(last.bitmap).toString('base64'), m.chunks.length)).toEqual([5]);
    expect(last.seq).toBeGreaterThan(haves[0].seq);
    await e.goOffline();
    expect(tel.at(-1)).toMatchObject({ edgeId: 'acc', online: false });
    await bus.close();
  });

  test('a change of holdings announces the have bitmap alone; telemetry goes at start, every announceEveryMs and offline', async () => {
    const bus = createMemoryBus();
    const clock = new ManualClock();
    const tel: EdgeTelemetryEvent[] = [];
    const haves: EdgeHaveEvent[] = [];
    bus.subscribe<EdgeTelemetryEvent>(subjects.edgeTelemetry('tl'), (ev) => void tel.push(ev));
    bus.subscribe<EdgeHaveEvent>(subjects.edgeHave('tl'), (ev) => void haves.push(ev));
    const flush = (): Promise<void> => new Promise((r) => setImmediate(r));
    const e = await acceptingEdge('store7.bin', {
      id: 'tl',
      clock,
      announce: { bus, announceCoalesceMs: 5, announceEveryMs: 1000 },
    });
    await flush();
    expect([tel.length, haves.length]).toEqual([1, 1]);
    for (const i of [1, 2, 3]) {
      e.holdVerified([i]);
      clock.advance(5);
      await flush();
    }
    expect(haves).toHaveLength(4); // one per change
    expect(tel).toHaveLength(1); // the URL and hints did not change
    clock.advance(1000 - 15);
    await flush();
    expect([tel.length, haves.length]).toEqual([2, 5]); // the periodic announcement, for late joiners
    await e.goOffline();
    await flush();
    expect(tel).toHaveLength(3);
    expect(tel.at(-1)).toMatchObject({ edgeId: 'tl', online: false });
    await bus.close();
  });

  test('addHoldings declares only chunks whose bytes in the file match their CID', async () => {
    const e = await acceptingEdge('store5.bin');
    const { open } = await import('node:fs/promises');
    const fh = await open(join(tmp.dir, 'store5.bin'), 'r+');
    await fh.write(slice(1), 0, slice(1).length, chunkRange(m, 1).offset);
    await fh.close();
    expect(await e.addHoldings([1, 2])).toBe(1); // chunk 2 is zeros: not its CID
    expect(await haveOf(e)).toEqual([1]);
  });

  test('holdVerified declares chunks without reading them back, skips bad indices and held chunks, and announces', async () => {
    const bus = createMemoryBus();
    const haves: EdgeHaveEvent[] = [];
    bus.subscribe<EdgeHaveEvent>(subjects.edgeHave('hv'), (h) => {
      haves.push(h);
    });
    // the file holds zeros: addHoldings would refuse every chunk; the caller vouches for these
    const e = await acceptingEdge('store6.bin', {
      id: 'hv',
      announce: { bus, announceEveryMs: 60_000, announceCoalesceMs: 5 },
    });
    expect(e.holdVerified([1, 3, 3, -1, 2.5, m.chunks.length])).toBe(2);
    expect(e.holdVerified([1])).toBe(0);
    expect(await haveOf(e)).toEqual([1, 3]);
    await new Promise((r) => setTimeout(r, 50));
    const last = haves.at(-1)!;
    expect(last.kind).toBe('full');
    if (last.kind !== 'full') return;
    expect(decodeHaveBitmap(Buffer.from(last.bitmap).toString('base64'), m.chunks.length)).toEqual([1, 3]);
    await bus.close();
  });
});
