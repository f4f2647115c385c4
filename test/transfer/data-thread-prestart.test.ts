import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createManifest, chunkRange, type Manifest } from '../../transfer/index.js';
import { createDataPlane, type DataPlane } from '../../transfer/data-plane.js';
import {
  discardPrestartedDataThreads,
  prestartDataThreads,
  prestartedDataThreadCount,
} from '../../transfer/data-thread-prestart.js';
import { makeTempDir, writeRandomFile } from './fixtures.js';

const CHUNK = 64 * 1024;
const SIZE = 3 * CHUNK;

let tmp: { dir: string; cleanup: () => Promise<void> };
let file: { path: string; bytes: Buffer };
let m: Manifest;
let mirror: Server;
let mirrorUrl: string;
/** The headers of every request the mirror got. */
const seen: IncomingHttpHeaders[] = [];
const planes: DataPlane[] = [];

beforeAll(async () => {
  tmp = await makeTempDir('prestart');
  file = await writeRandomFile(tmp.dir, 'src.bin', SIZE, 7);
  m = await createManifest(file.path, { chunkSize: CHUNK });
  // a Range mirror on loopback
  mirror = createServer((req, res) => {
    seen.push(req.headers);
    const [, a, b] = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '') ?? [];
    const start = Number(a);
    const end = Number(b);
    res.writeHead(206, {
      'content-length': String(end - start + 1),
      'content-range': `bytes ${start}-${end}/${SIZE}`,
    });
    res.end(file.bytes.subarray(start, end + 1));
  });
  await new Promise<void>((r) => mirror.listen(0, '127.0.0.1', r));
  mirrorUrl = `http://127.0.0.1:${(mirror.address() as AddressInfo).port}/src.bin`;
});
afterEach(() => discardPrestartedDataThreads());
afterAll(async () => {
  await Promise.all(planes.map((p) => p.close()));
  await new Promise((r) => mirror.close(r));
  await tmp.cleanup();
});

function job(output: string, chunk: number) {
  return {
    output,
    fileSize: SIZE,
    chunk,
    edgeUrl: mirrorUrl,
    edgeKind: 'mirror' as const,
    cid: m.chunks[chunk],
    ...chunkRange(m, chunk),
    timeoutMs: 10_000,
  };
}

describe('data threads started before their plane', () => {
  test('a plane adopts the prestarted thread, configures it by its first message (its client sends the plane’s headers), and every chunk lands verified', async () => {
    prestartDataThreads(1);
    expect(prestartedDataThreadCount()).toBe(1);
    const plane = createDataPlane({ threads: 1, http: { headers: { 'x-portal-test': 'from-init' } } });
    planes.push(plane);
    const output = join(tmp.dir, 'adopted.bin');
    seen.length = 0;
    const outcomes = await Promise.all([0, 1, 2].map((c) => plane.run(job(output, c))));
    expect(outcomes.map((o) => o.ok)).toEqual([true, true, true]);
    // adopted, not started beside it: the plane's one thread is the prestarted one
    expect(prestartedDataThreadCount()).toBe(0);
    expect(plane.stats().threads).toBe(1);
    expect(seen.map((h) => h['x-portal-test'])).toEqual(['from-init', 'from-init', 'from-init']);
    await plane.closeFile(output);
    expect((await readFile(output)).equals(file.bytes)).toBe(true);
  });

  test('a second prestart in the same process starts nothing; discarding stops the threads nobody adopted', async () => {
    prestartDataThreads(2);
    prestartDataThreads(2);
    expect(prestartedDataThreadCount()).toBe(2);
    discardPrestartedDataThreads();
    expect(prestartedDataThreadCount()).toBe(0);
    // a plane after the discard starts its own thread, configured by its workerData
    const plane = createDataPlane({ threads: 1, http: { headers: { 'x-portal-test': 'own' } } });
    planes.push(plane);
    const output = join(tmp.dir, 'own.bin');
    seen.length = 0;
    expect((await plane.run(job(output, 1))).ok).toBe(true);
    expect(seen.map((h) => h['x-portal-test'])).toEqual(['own']);
  });

  test('a discard stops the unused-thread timer: it never discards the threads of a later prestart, nor touches the registry after', async () => {
    prestartDataThreads(1, undefined, 100);
    discardPrestartedDataThreads();
    prestartDataThreads(1, undefined, 10_000);
    // the first prestart's timer (100 ms) would have stopped the second prestart's thread
    await new Promise((r) => setTimeout(r, 400));
    expect(prestartedDataThreadCount()).toBe(1);
  });

  test('an unadopted thread is stopped after unusedMs', async () => {
    prestartDataThreads(1, undefined, 100);
    expect(prestartedDataThreadCount()).toBe(1);
    await new Promise((r) => setTimeout(r, 400));
    expect(prestartedDataThreadCount()).toBe(0);
  });

  test('a thread count outside 1..64 is refused with a message naming it', () => {
    expect(() => prestartDataThreads(0)).toThrow(/count: expected an integer in 1\.\.64, got 0/);
  });
});
