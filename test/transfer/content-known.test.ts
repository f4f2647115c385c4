import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { createContentServer, OutputFiles, type ContentSource } from '../../transfer/content-server.js';
import { createManifest, type Manifest } from '../../transfer/manifest.js';
import { createVerifiedChunkEvents, transferContentSource } from '../../actors/content-source.js';
import type { ActorRefSource } from '../../actors/api.js';
import { BufferPool } from '../../common/buffer-pool.js';

// A read of a chunk the source knows verified (ContentSource.known) is served at once: its `read` call (the
// reader's position for read-ahead) goes out beside the bytes instead of before them. The source's `read` here
// answers only when the test lets it, after the response has ended: a server that waited for it would never
// answer. One module against a real HTTP server and a real output file.
const CHUNK = 4096;
let dir: string;
let file: string;
let manifest: Manifest;
let bytes: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'portal-content-known-'));
  file = path.join(dir, 'out.bin');
  bytes = randomBytes(CHUNK * 8);
  await writeFile(file, bytes);
  manifest = await createManifest(file, { chunkSize: CHUNK });
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

function heldSource(known: (chunk: number) => boolean): {
  source: ContentSource;
  reads: number[];
  release: () => void;
} {
  const reads: number[] = [];
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const source: ContentSource = {
    info: async () => ({ manifest, output: file, state: 'running' }),
    read: async (q) => {
      reads.push(q.offset);
      await released;
      const first = Math.floor(q.offset / CHUNK);
      return { state: 'running', first, last: first, complete: [first] };
    },
    known,
  };
  return { source, reads, release };
}

test('a Range of chunks known verified is answered while their read calls are still pending, with the right bytes', async () => {
  const { source, reads, release } = heldSource((c) => c >= 2 && c <= 4);
  const buffers = new BufferPool(4);
  const server = await createContentServer({ sources: () => source, defaultTransfer: 't', buffers });
  try {
    const res = await request(`${server.url}/content`, {
      headers: { range: `bytes=${2 * CHUNK + 10}-${5 * CHUNK - 1}` },
    });
    const body = Buffer.from(await res.body.arrayBuffer());
    expect(res.statusCode).toBe(206);
    expect(body.equals(bytes.subarray(2 * CHUNK + 10, 5 * CHUNK))).toBe(true);
    // the scheduler still heard where the reader is (one call per chunk started, none answered yet)
    expect(reads).toEqual([2 * CHUNK + 10, 3 * CHUNK, 4 * CHUNK]);
    // counted as an answer from verified bytes, with the server's own time; no stall
    const stats = server.stats();
    expect(stats.stalls).toBe(0);
    expect(stats.readyAnswers.counts.reduce((a, b) => a + b, 0)).toBe(1);
    expect(stats.readyAnswers.maxMs).toBeGreaterThan(0);
    expect(stats.eventLoopDelayMs?.max).toBeGreaterThanOrEqual(0);
    // the three chunks were read into pooled buffers, given back once written: the pool holds them for reuse
    for (let i = 0; i < 100 && buffers.size === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(buffers.size).toBeGreaterThanOrEqual(1);
  } finally {
    release();
    await server.close();
  }
});

test('a chunk not known verified waits for the read call', async () => {
  const { source, reads, release } = heldSource(() => false);
  const server = await createContentServer({ sources: () => source, defaultTransfer: 't' });
  try {
    let answered = false;
    const pending = request(`${server.url}/content`, { headers: { range: `bytes=0-${CHUNK - 1}` } }).then(
      async (res) => {
        const body = Buffer.from(await res.body.arrayBuffer());
        answered = true;
        return body;
      },
    );
    while (reads.length === 0) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 100));
    expect(answered).toBe(false);
    release();
    expect((await pending).equals(bytes.subarray(0, CHUNK))).toBe(true);
    // a response that waited for its read call is not an answer from known-verified bytes
    expect(server.stats().readyAnswers.counts.reduce((a, b) => a + b, 0)).toBe(0);
  } finally {
    release();
    await server.close();
  }
});

test('transferContentSource with remember knows the chunks its events and read answers said were verified, until closed', async () => {
  const events = createVerifiedChunkEvents();
  const calls: unknown[] = [];
  const host = {
    proxy: () => ({
      invoke: async (method: string, arg?: unknown) => {
        calls.push([method, arg]);
        return { state: 'running', first: 9, last: 10, complete: [10] };
      },
    }),
  } as unknown as ActorRefSource;
  const source = transferContentSource(host, 't', events, { remember: true });
  events.emit('t', 3);
  events.emit('t', 5000);
  events.emit('other', 4);
  expect([3, 4, 5000, 10].map((c) => source.known!(c))).toEqual([true, false, true, false]);
  await source.read({ readerId: 'r', offset: 0, length: 1 });
  expect(source.known!(10)).toBe(true);
  source.close();
  events.emit('t', 7);
  expect(source.known!(7)).toBe(false);
  expect(events.listenerCount('t')).toBe(0);
  // without remember nothing is kept: every read asks the scheduler
  expect('known' in transferContentSource(host, 't', events)).toBe(false);
});

test('OutputFiles: responses share one open handle of an output, closed once unused for idleMs', async () => {
  const files = new OutputFiles(50);
  const a = await files.acquire(file);
  const b = await files.acquire(file);
  expect(b.handle).toBe(a.handle);
  a.release();
  a.release(); // a second release of the same acquisition changes nothing
  b.release();
  const c = await files.acquire(file); // within idleMs: still the same handle
  expect(c.handle).toBe(a.handle);
  c.release();
  await new Promise((r) => setTimeout(r, 150));
  expect(a.handle.fd).toBe(-1); // closed
  const d = await files.acquire(file);
  expect(d.handle).not.toBe(a.handle);
  d.release();
  await files.close();
  expect(d.handle.fd).toBe(-1);
  // a missing file rejects with open's error and is not kept
  await expect(files.acquire(path.join(dir, 'missing'))).rejects.toThrow(/ENOENT/);
  await writeFile(path.join(dir, 'missing'), 'x');
  const e = await files.acquire(path.join(dir, 'missing'));
  e.release();
  await files.close();
});
