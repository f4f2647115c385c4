import { join } from 'node:path';
import {
  createManifest,
  createEdgeServer,
  createExecutor,
  chunkRange,
  hashFile,
  createHttpClient,
  fetchChunk,
  type EdgeServer,
  type Manifest,
  type Executor,
  type FetchChunkFn,
} from '../../transfer/index.js';
import { createMemoryBus, subjects, type Bus } from '../../bus/index.js';
import type { ChunkReport, DispatchBatch, DispatchItem, CancelRequest } from '../../common/index.js';
import { makeTempDir, writeRandomFile } from './fixtures.js';
import { startBadMirror } from '../helpers/bad-mirror.js';

const CHUNK = 16 * 1024;
const SIZE = 9 * CHUNK + 777; // 10 chunks

let tmp: { dir: string; cleanup: () => Promise<void> };
let file: { path: string; bytes: Buffer };
let m: Manifest;
const servers: EdgeServer[] = [];
const executors: Executor[] = [];
const buses: Bus[] = [];
const client = createHttpClient();
const fetchWithAgent: FetchChunkFn = (r) => fetchChunk({ ...r, client });

beforeAll(async () => {
  tmp = await makeTempDir('executor');
  file = await writeRandomFile(tmp.dir, 'src.bin', SIZE, 11);
  m = await createManifest(file.path, { chunkSize: CHUNK });
});
afterAll(async () => {
  await Promise.all(executors.map((e) => e.close()));
  await Promise.all(buses.map((b) => b.close()));
  await Promise.all(servers.map((s) => s.close()));
  await client.close();
  await tmp.cleanup();
});

function item(i: number, edgeIndex: number, s: EdgeServer, extra: Partial<DispatchItem> = {}): DispatchItem {
  return {
    chunk: i,
    attempt: 1,
    edgeIndex,
    edgeUrl: s.url,
    edgeKind: 'portal',
    cid: m.chunks[i],
    ...chunkRange(m, i),
    timeoutMs: 10_000,
    ...extra,
  };
}

function collect(
  bus: Bus,
  transferId: string,
): { reports: ChunkReport[]; waitFor: (n: number) => Promise<ChunkReport[]> } {
  const reports: ChunkReport[] = [];
  const waiters: Array<() => void> = [];
  bus.subscribe<ChunkReport>(subjects.report(transferId), (r) => {
    reports.push(r);
    for (const w of waiters.splice(0)) w();
  });
  const waitFor = async (n: number): Promise<ChunkReport[]> => {
    while (reports.length < n) await new Promise<void>((res) => waiters.push(res));
    return reports;
  };
  return { reports, waitFor };
}

function setup(
  id: string,
  opts: { concurrency?: number; fetch?: FetchChunkFn } = {},
): { bus: Bus; exec: Executor } {
  const bus = createMemoryBus();
  buses.push(bus);
  const exec = createExecutor({ bus, id, fetch: fetchWithAgent, ...opts });
  executors.push(exec);
  return { bus, exec };
}

describe('executor', () => {
  test('executor: fetches 10 chunks from 2 edges, reports each ok and writes a byte-identical file', async () => {
    const a = await createEdgeServer({
      source: { path: file.path, manifest: m },
      holds: new Set([0, 2, 4, 6, 8]),
    });
    const b = await createEdgeServer({
      source: { path: file.path, manifest: m },
      holds: new Set([1, 3, 5, 7, 9]),
    });
    servers.push(a, b);
    const { bus, exec } = setup('exec-1', { concurrency: 4 });
    exec.attach('t1');
    const { waitFor } = collect(bus, 't1');
    const output = join(tmp.dir, 'out-t1.bin');
    const items = Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? item(i, 0, a) : item(i, 1, b)));
    await bus.publish<DispatchBatch>(subjects.dispatch('t1'), {
      transferId: 't1',
      output,
      fileSize: SIZE,
      items: items.slice(0, 6),
    });
    await bus.publish<DispatchBatch>(subjects.dispatch('t1'), {
      transferId: 't1',
      output,
      fileSize: SIZE,
      items: items.slice(6),
    });
    const reports = await waitFor(10);
    expect(reports.every((r) => r.ok && r.executorId === 'exec-1' && r.transferId === 't1')).toBe(true);
    expect(reports.map((r) => r.chunk).sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const r of reports) {
      expect(r.bytes).toBe(chunkRange(m, r.chunk).length);
      expect(r.edgeIndex).toBe(r.chunk % 2);
      expect(r.transferMs).toBeGreaterThanOrEqual(r.firstByteMs);
    }
    await exec.detach('t1');
    expect(await hashFile(output)).toBe(m.fileSha256);
    expect(exec.stats()).toMatchObject({ fetched: 10, failed: 0, bytes: SIZE, inFlight: 0, queued: 0 });
  });

  test('executor: failed fetches are reported with their reason and nothing is written', async () => {
    const bad = await createEdgeServer({
      source: { path: file.path, manifest: m },
      faults: { failRate: 1 },
      holds: new Set([0]),
    });
    servers.push(bad);
    const { bus, exec } = setup('exec-2');
    exec.attach('t2');
    const { waitFor } = collect(bus, 't2');
    const output = join(tmp.dir, 'out-t2.bin');
    await bus.publish<DispatchBatch>(subjects.dispatch('t2'), {
      transferId: 't2',
      output,
      fileSize: SIZE,
      items: [
        item(0, 0, bad),
        item(1, 0, bad, { cid: m.chunks[2] }),
        item(2, 0, bad, { edgeUrl: 'http://127.0.0.1:1' }),
      ],
    });
    const reports = await waitFor(3);
    const byChunk = new Map(reports.map((r) => [r.chunk, r]));
    expect(byChunk.get(0)).toMatchObject({ ok: false, reason: 'busy', bytes: 0 }); // 503: held, but busy
    expect(byChunk.get(1)).toMatchObject({ ok: false, reason: 'http' }); // 404: not held
    expect(byChunk.get(2)).toMatchObject({ ok: false, reason: 'unreachable' });
    expect(reports.every((r) => typeof r.detail === 'string' && r.detail.length > 0)).toBe(true);
    expect(exec.stats()).toMatchObject({ fetched: 0, failed: 3 });
  });

  test('executor: a cancel request aborts the in-flight fetch and its report says cancelled', async () => {
    const slow = await createEdgeServer({ source: { path: file.path, manifest: m }, rttMs: 5000 });
    servers.push(slow);
    const { bus, exec } = setup('exec-3', { concurrency: 1 });
    exec.attach('t3');
    const { waitFor } = collect(bus, 't3');
    const output = join(tmp.dir, 'out-t3.bin');
    await bus.publish<DispatchBatch>(subjects.dispatch('t3'), {
      transferId: 't3',
      output,
      fileSize: SIZE,
      items: [item(0, 0, slow, { attempt: 2 }), item(1, 0, slow)],
    });
    while (exec.stats().inFlight < 1) await new Promise((r) => setTimeout(r, 5));
    expect(exec.stats().queued).toBe(1);
    const t0 = performance.now();
    await bus.publish<CancelRequest>(subjects.cancel('t3'), { transferId: 't3', chunk: 0, attempt: 2 });
    await bus.publish<CancelRequest>(subjects.cancel('t3'), { transferId: 't3', chunk: 1, attempt: 1 });
    const reports = await waitFor(2);
    expect(performance.now() - t0).toBeLessThan(4000);
    expect(reports.map((r) => [r.chunk, r.attempt, r.ok, r.reason]).sort()).toEqual([
      [0, 2, false, 'cancelled'],
      [1, 1, false, 'cancelled'],
    ]);
    expect(exec.stats().inFlight).toBe(0);
  });

  test('executor: bounds concurrency and queues the rest', async () => {
    let active = 0;
    let peak = 0;
    const fake: FetchChunkFn = async (r) => {
      active++;
      peak = Math.max(peak, active);
      await new Promise((res) => setTimeout(res, 10));
      active--;
      const { offset, length } = r;
      return { bytes: file.bytes.subarray(offset, offset + length), firstByteMs: 1, transferMs: 2 };
    };
    const { bus, exec } = setup('exec-4', { concurrency: 3, fetch: fake });
    exec.attach('t4');
    const { waitFor } = collect(bus, 't4');
    const output = join(tmp.dir, 'out-t4.bin');
    const dummy = { url: 'http://127.0.0.1:9' } as EdgeServer;
    await bus.publish<DispatchBatch>(subjects.dispatch('t4'), {
      transferId: 't4',
      output,
      fileSize: SIZE,
      items: Array.from({ length: 10 }, (_, i) => item(i, 0, dummy)),
    });
    const reports = await waitFor(10);
    expect(peak).toBe(3);
    expect(reports.every((r) => r.ok)).toBe(true);
    await exec.close();
    expect(await hashFile(output)).toBe(m.fileSha256);
    expect(() => exec.attach('t5')).toThrow(expect.objectContaining({ code: 'PORTAL_HOST_STOPPED' }));
  });

  test('executor: close aborts in-flight fetches and reports them cancelled', async () => {
    const slow = await createEdgeServer({ source: { path: file.path, manifest: m }, rttMs: 5000 });
    servers.push(slow);
    const { bus, exec } = setup('exec-5');
    exec.attach('t6');
    const { reports } = collect(bus, 't6');
    await bus.publish<DispatchBatch>(subjects.dispatch('t6'), {
      transferId: 't6',
      output: join(tmp.dir, 'out-t6.bin'),
      fileSize: SIZE,
      items: [item(0, 0, slow), item(1, 0, slow)],
    });
    while (exec.stats().inFlight < 2) await new Promise((r) => setTimeout(r, 5));
    await exec.close();
    await new Promise((r) => setTimeout(r, 10));
    expect(reports.map((r) => r.reason)).toEqual(['cancelled', 'cancelled']);
  });

  test('executor: a detach called while one of the same transfer runs resolves only when its fetches ended (what a forget waits for)', async () => {
    const slow = await createEdgeServer({ source: { path: file.path, manifest: m }, rttMs: 5000 });
    servers.push(slow);
    const { bus, exec } = setup('exec-detach-twice');
    exec.attach('t9');
    await bus.publish<DispatchBatch>(subjects.dispatch('t9'), {
      transferId: 't9',
      output: join(tmp.dir, 'out-t9.bin'),
      fileSize: SIZE,
      items: [item(0, 0, slow), item(1, 0, slow)],
    });
    while (exec.stats().inFlight < 2) await new Promise((r) => setTimeout(r, 5));
    const first = exec.detach('t9'); // the scheduler's unsubscribe starts it and does not wait
    // before: the second found the transfer no longer attached and resolved at once, fetches still in flight
    await exec.detach('t9');
    expect(exec.stats().inFlight).toBe(0);
    await first;
    expect(exec.detach('t9')).toBeInstanceOf(Promise);
    await exec.detach('t9'); // not attached: at once
  });

  test('executor: warm starts the data-plane threads before any transfer; close stops them; warm after close does nothing', async () => {
    const bus = createMemoryBus();
    buses.push(bus);
    const exec = createExecutor({ bus, id: 'warm', threads: 2 });
    expect(exec.stats().dataThreads).toBe(0); // threads start with the first attached transfer, or with warm
    exec.warm();
    expect(exec.stats().dataThreads).toBe(2);
    exec.warm(); // idempotent
    expect(exec.stats().dataThreads).toBe(2);
    await exec.close();
    expect(exec.stats().dataThreads).toBe(0);
    exec.warm();
    expect(exec.stats().dataThreads).toBe(0);
    // fetches on the calling thread: nothing to start
    const inline = createExecutor({ bus, id: 'inline', threads: 0 });
    inline.warm();
    expect(inline.stats().dataThreads).toBe(0);
    await inline.close();
  });

  test('executor: rejects bad options naming them', () => {
    const bus = createMemoryBus();
    buses.push(bus);
    expect(() => createExecutor({ bus, id: '' })).toThrow(/opts\.id/);
    expect(() => createExecutor({ bus, id: 'x', concurrency: 0 })).toThrow(/concurrency/);
    expect(() => createExecutor({ bus, id: 'x' }).attach('')).toThrow(/transferId/);
  });
});

// a journal keeps URLs redacted: fetching with one sent `Authorization: Basic ***:` (trial finding)
test('fetchChunk refuses a redacted URL before any request', async () => {
  const s = await startBadMirror(Buffer.alloc(CHUNK));
  try {
    const url = s.url.replace('http://', 'http://***@');
    await expect(
      fetchChunk({ ...item(0, 0, { url } as EdgeServer), edgeKind: 'mirror', client }),
    ).rejects.toThrow(/lost its credentials \(redacted\); a redacted URL is never used for a request/);
    expect(s.requests).toEqual([]);
  } finally {
    await s.close();
  }
});
