import { request } from 'node:http';
import {
  createManifest,
  createEdgeServer,
  fetchChunk,
  chunkRange,
  decodeHaveBitmap,
  createHttpClient,
  ChunkFetchError,
  type EdgeServer,
  type Manifest,
} from '../../transfer/index.js';
import { makeTempDir, writeRandomFile, rejectionOf } from './fixtures.js';

const CHUNK = 64 * 1024;
const SIZE = 9 * CHUNK + 12345; // 10 chunks, odd last

let tmp: { dir: string; cleanup: () => Promise<void> };
let file: { path: string; bytes: Buffer };
let m: Manifest;
const servers: EdgeServer[] = [];
const client = createHttpClient();

async function edge(opts: Partial<Parameters<typeof createEdgeServer>[0]> = {}): Promise<EdgeServer> {
  const s = await createEdgeServer({ source: { path: file.path, manifest: m }, ...opts });
  servers.push(s);
  return s;
}

function get(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const slice = (i: number): Buffer => {
  const r = chunkRange(m, i);
  return file.bytes.subarray(r.offset, r.offset + r.length);
};
const fetchReq = (
  s: EdgeServer,
  i: number,
  extra: Partial<Parameters<typeof fetchChunk>[0]> = {},
): Parameters<typeof fetchChunk>[0] => ({
  edgeUrl: s.url,
  edgeKind: 'portal',
  cid: m.chunks[i],
  ...chunkRange(m, i),
  timeoutMs: 10_000,
  client,
  ...extra,
});

beforeAll(async () => {
  tmp = await makeTempDir('edge');
  file = await writeRandomFile(tmp.dir, 'src.bin', SIZE, 3);
  m = await createManifest(file.path, { chunkSize: CHUNK });
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await client.close();
  await tmp.cleanup();
});

describe('edge server', () => {
  test('edge server: answers /health with its id', async () => {
    const s = await edge({ id: 'e1' });
    expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const r = await get(`${s.url}/health`);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body.toString())).toEqual({ ok: true, id: 'e1' });
  });

  test('edge server: serves a held chunk by CID with its content length', async () => {
    const s = await edge();
    const r = await get(`${s.url}/v1/chunks/${m.chunks[9]}`);
    expect(r.status).toBe(200);
    expect(Number(r.headers['content-length'])).toBe(12345);
    expect(r.body.equals(slice(9))).toBe(true);
    const f = await fetchChunk(fetchReq(s, 2));
    expect(f.bytes.equals(slice(2))).toBe(true);
    expect(f.transferMs).toBeGreaterThanOrEqual(f.firstByteMs);
    expect(s.stats().bytesServed).toBe(12345 + CHUNK);
  });

  test('edge server: slice buffers are reused across responses, with every body intact, with async and sync reads', async () => {
    for (const syncReads of [false, true]) {
      const s = await edge({ syncReads });
      for (let round = 0; round < 3; round++)
        for (let i = 0; i < m.chunks.length; i++) {
          const r = await get(`${s.url}/v1/chunks/${m.chunks[i]}`);
          expect(r.body.equals(slice(i))).toBe(true);
        }
      // 30 responses one after another: each slice's buffer is free again before the next request
      expect(s.stats().sliceBuffersAllocated).toBeLessThanOrEqual(2);
      // 10 at once need up to 10 buffers, and their bytes must not mix
      const all = await Promise.all(m.chunks.map((cid) => get(`${s.url}/v1/chunks/${cid}`)));
      all.forEach((r, i) => expect(r.body.equals(slice(i))).toBe(true));
      expect(s.stats().sliceBuffersAllocated).toBeLessThanOrEqual(m.chunks.length + 2);
      const whole = await get(`${s.url}/file`);
      expect(whole.body.equals(file.bytes)).toBe(true);
    }
  });

  test('edge server: a Range of a chunk is answered 206 with the rest of the chunk, so a kept prefix can be finished', async () => {
    const s = await edge();
    const r = await get(`${s.url}/v1/chunks/${m.chunks[3]}`, { range: 'bytes=1000-' });
    expect(r.status).toBe(206);
    expect(r.headers['content-range']).toBe(`bytes 1000-${CHUNK - 1}/${CHUNK}`);
    expect(r.body.equals(slice(3).subarray(1000))).toBe(true);
    const beyond = await get(`${s.url}/v1/chunks/${m.chunks[3]}`, { range: `bytes=${CHUNK}-` });
    expect(beyond.status).toBe(416);
  });

  test('edge server: fetchChunk with a kept prefix asks only for the rest and verifies the whole chunk', async () => {
    const s = await edge();
    const { createHash } = await import('node:crypto');
    const before = s.stats().bytesServed;
    const got = await fetchChunk({
      ...fetchReq(s, 4),
      prefix: { length: 5000, hash: createHash('sha256').update(slice(4).subarray(0, 5000)) },
    });
    expect(s.stats().bytesServed - before).toBe(CHUNK - 5000);
    expect(got.bytes.subarray(5000).equals(slice(4).subarray(5000))).toBe(true);
    const wrong = createHash('sha256').update(Buffer.alloc(5000));
    const err = await rejectionOf(() =>
      fetchChunk({ ...fetchReq(s, 4), prefix: { length: 5000, hash: wrong } }),
    );
    expect(err).toBeInstanceOf(ChunkFetchError);
    expect((err as ChunkFetchError).reason).toBe('corrupt');
  });

  test('edge server: answers 404 for a chunk it does not hold', async () => {
    const s = await edge({ holds: new Set([0, 1]) });
    expect((await get(`${s.url}/v1/chunks/${m.chunks[1]}`)).status).toBe(200);
    expect((await get(`${s.url}/v1/chunks/${m.chunks[5]}`)).status).toBe(404);
    expect((await get(`${s.url}/v1/chunks/${'0'.repeat(64)}`)).status).toBe(404);
    const err = await rejectionOf(() => fetchChunk(fetchReq(s, 5)));
    expect(err).toBeInstanceOf(ChunkFetchError);
    expect(err).toMatchObject({ reason: 'http', status: 404 });
  });

  test('edge server: have bitmap marks exactly the held chunks, 404 for other manifests', async () => {
    const s = await edge({ holds: new Set([0, 3, 8, 9]) });
    const r = await get(`${s.url}/v1/have/${m.id}`);
    expect(r.status).toBe(200);
    const body = JSON.parse(r.body.toString()) as { manifestId: string; chunks: number; bitmap: string };
    expect(body.manifestId).toBe(m.id);
    expect(body.chunks).toBe(10);
    expect(Buffer.from(body.bitmap, 'base64')).toEqual(Buffer.from([0b0000_1001, 0b0000_0011]));
    expect(decodeHaveBitmap(body.bitmap, 10)).toEqual([0, 3, 8, 9]);
    expect((await get(`${s.url}/v1/have/ffffffffffffffff`)).status).toBe(404);
  });

  test('edge server: /file honours a Range with 206 and Content-Range', async () => {
    const s = await edge();
    const r = await get(`${s.url}/file`, { range: 'bytes=100-70099' });
    expect(r.status).toBe(206);
    expect(r.headers['content-range']).toBe(`bytes 100-70099/${SIZE}`);
    expect(r.body.equals(file.bytes.subarray(100, 70100))).toBe(true);
    const tail = await get(`${s.url}/file`, { range: 'bytes=-10' });
    expect(tail.body.equals(file.bytes.subarray(SIZE - 10))).toBe(true);
    expect((await get(`${s.url}/file`, { range: `bytes=${SIZE}-` })).status).toBe(416);
    const whole = await get(`${s.url}/file`);
    expect(whole.status).toBe(200);
    expect(whole.body.equals(file.bytes)).toBe(true);
  });

  test('edge server: mirror fetches use Range and verify the chunk', async () => {
    const s = await edge();
    const f = await fetchChunk(fetchReq(s, 9, { edgeUrl: `${s.url}/file`, edgeKind: 'mirror' }));
    expect(f.bytes.equals(slice(9))).toBe(true);
    const bad = await rejectionOf(() =>
      fetchChunk(fetchReq(s, 4, { edgeUrl: `${s.url}/file`, edgeKind: 'mirror', cid: m.chunks[5] })),
    );
    expect(bad).toMatchObject({ reason: 'corrupt' });
  });

  test('edge server: the bandwidth cap limits throughput (512 KiB at 1 MiB/s)', async () => {
    const s = await edge({ bandwidthBytesPerSec: 1024 * 1024 });
    const t0 = performance.now();
    const parts = await Promise.all([0, 1, 2, 3].map((i) => fetchChunk(fetchReq(s, i))));
    const r = await get(`${s.url}/file`, { range: `bytes=${4 * CHUNK}-${8 * CHUNK - 1}` });
    const secs = (performance.now() - t0) / 1000;
    expect(parts.every((p, i) => p.bytes.equals(slice(i)))).toBe(true);
    expect(r.body.length).toBe(4 * CHUNK);
    // 512 KiB less the 64 KiB initial burst at 1 MiB/s = 0.4375 s minimum.
    expect(secs).toBeGreaterThanOrEqual(0.43);
  });

  test('edge server: rttMs delays the first byte', async () => {
    const s = await edge({ rttMs: 150 });
    const f = await fetchChunk(fetchReq(s, 0));
    expect(f.firstByteMs).toBeGreaterThanOrEqual(140);
  });

  test('edge server: failRate 1 answers 503, surfacing as ChunkFetchError reason http', async () => {
    const s = await edge({ faults: { failRate: 1, seed: 1 } });
    const err = await rejectionOf(() => fetchChunk(fetchReq(s, 0)));
    expect(err).toBeInstanceOf(ChunkFetchError);
    expect(err).toMatchObject({ reason: 'busy', status: 503, code: 'PORTAL_EDGE_HTTP' });
    expect(s.stats().failedInjected).toBe(1);
    expect((await get(`${s.url}/health`)).status).toBe(200);
  });

  test('edge server: a corrupt chunk keeps its headers and fails verification with reason corrupt', async () => {
    const s = await edge({ faults: { corruptChunks: new Set([1]) } });
    const raw = await get(`${s.url}/v1/chunks/${m.chunks[1]}`);
    expect(raw.status).toBe(200);
    expect(raw.body.length).toBe(CHUNK);
    expect(raw.body.equals(slice(1))).toBe(false);
    const err = await rejectionOf(() => fetchChunk(fetchReq(s, 1)));
    expect(err).toMatchObject({ reason: 'corrupt', code: 'PORTAL_CHUNK_CORRUPT' });
    expect((await fetchChunk(fetchReq(s, 2))).bytes.equals(slice(2))).toBe(true);
    expect(s.stats().corruptServed).toBe(2);
  });

  test('edge server: corruptRate with a seed corrupts deterministically', async () => {
    const a = await edge({ faults: { corruptRate: 0.5, seed: 42 } });
    const b = await edge({ faults: { corruptRate: 0.5, seed: 42 } });
    const outcome = async (s: EdgeServer): Promise<boolean[]> => {
      const out: boolean[] = [];
      for (let i = 0; i < 10; i++)
        out.push(
          await fetchChunk(fetchReq(s, i)).then(
            () => true,
            () => false,
          ),
        );
      return out;
    };
    const ra = await outcome(a);
    expect(await outcome(b)).toEqual(ra);
    expect(ra.some((x) => x)).toBe(true);
    expect(ra.some((x) => !x)).toBe(true);
  });

  test('edge server: after goOffline fetches fail with reason unreachable', async () => {
    const s = await edge();
    await fetchChunk(fetchReq(s, 0)); // leaves a keep-alive connection in the client
    await s.goOffline();
    expect(s.isOffline()).toBe(true);
    const err = await rejectionOf(() => fetchChunk(fetchReq(s, 1)));
    expect(err).toMatchObject({ reason: 'unreachable', code: 'PORTAL_EDGE_UNREACHABLE' });
  });

  test('edge server: offlineAtMs takes the edge offline by itself', async () => {
    const s = await edge({ faults: { offlineAtMs: 50 } });
    await new Promise((r) => setTimeout(r, 120));
    expect(s.isOffline()).toBe(true);
    await expect(fetchChunk(fetchReq(s, 0))).rejects.toMatchObject({ reason: 'unreachable' });
  });

  test('edge server: going offline mid-body fails the fetch in flight', async () => {
    const s = await edge({ bandwidthBytesPerSec: 256 * 1024 });
    const p = fetchChunk(fetchReq(s, 0, { length: CHUNK }));
    const q = fetchChunk(fetchReq(s, 1));
    setTimeout(() => {
      void s.goOffline();
    }, 100);
    const results = await Promise.allSettled([p, q]);
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(failed.length).toBeGreaterThanOrEqual(1);
    for (const f of failed) expect(['unreachable', 'short']).toContain((f.reason as ChunkFetchError).reason);
  });

  test('edge server: rejects a source whose size differs from the manifest', async () => {
    const other = await writeRandomFile(tmp.dir, 'other.bin', 100);
    await expect(createEdgeServer({ source: { path: other.path, manifest: m } })).rejects.toMatchObject({
      code: 'PORTAL_MANIFEST_MISMATCH',
    });
    await expect(
      createEdgeServer({ source: { path: file.path, manifest: m }, faults: { failRate: 2 } }),
    ).rejects.toThrow(/failRate/);
  });
});

describe('http fetch', () => {
  test('http fetch: a slow edge fails with reason timeout', async () => {
    const s = await edge({ rttMs: 2000 });
    const t0 = performance.now();
    const err = await rejectionOf(() => fetchChunk(fetchReq(s, 0, { timeoutMs: 150 })));
    expect(err).toMatchObject({ reason: 'timeout', code: 'PORTAL_EDGE_TIMEOUT' });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
  });

  test('http fetch: aborting the signal fails with reason cancelled', async () => {
    const s = await edge({ rttMs: 2000 });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    await expect(fetchChunk(fetchReq(s, 0, { signal: ac.signal }))).rejects.toMatchObject({
      reason: 'cancelled',
      code: 'PORTAL_CANCELLED',
    });
    await expect(fetchChunk(fetchReq(s, 0, { signal: ac.signal }))).rejects.toMatchObject({
      reason: 'cancelled',
    });
  });

  test('http fetch: a wrong expected length fails with reason short', async () => {
    const s = await edge();
    await expect(fetchChunk(fetchReq(s, 9, { length: 20000 }))).rejects.toMatchObject({ reason: 'short' });
  });

  test('http fetch: an unreachable port fails with reason unreachable', async () => {
    const s = await edge();
    const url = s.url;
    await s.close();
    await expect(
      fetchChunk({
        edgeUrl: url,
        edgeKind: 'portal',
        cid: m.chunks[0],
        offset: 0,
        length: CHUNK,
        timeoutMs: 5000,
      }),
    ).rejects.toMatchObject({ reason: 'unreachable' });
  });

  test('http fetch: bad arguments are rejected naming the argument', async () => {
    await expect(
      fetchChunk({
        edgeUrl: 'nope',
        edgeKind: 'portal',
        cid: m.chunks[0],
        offset: 0,
        length: 1,
        timeoutMs: 1,
      }),
    ).rejects.toThrow(/edgeUrl/);
    await expect(
      fetchChunk({
        edgeUrl: 'http://127.0.0.1:1',
        edgeKind: 'portal',
        cid: 'x',
        offset: 0,
        length: 1,
        timeoutMs: 1,
      }),
    ).rejects.toThrow(/cid/);
    await expect(
      fetchChunk({
        edgeUrl: 'http://127.0.0.1:1',
        edgeKind: 'portal',
        cid: m.chunks[0],
        offset: 0,
        length: 1,
        timeoutMs: 0,
      }),
    ).rejects.toThrow(/timeoutMs/);
  });
});
