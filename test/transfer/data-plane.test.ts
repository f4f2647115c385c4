import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  createManifest,
  createEdgeServer,
  createExecutor,
  chunkRange,
  hashFile,
  type EdgeServer,
  type Manifest,
  type Executor,
} from '../../transfer/index.js';
import { createDataPlane, type DataPlane } from '../../transfer/data-plane.js';
import type { DataJob } from '../../transfer/data-protocol.js';
import { openPartialChunkLog, partialChunkLogPath } from '../../transfer/partial-chunks.js';
import { startNginx, type TestNginx } from '../../harness/index.js';
import { createMemoryBus, subjects, type Bus } from '../../bus/index.js';
import type { ChunkReport, DispatchBatch, DispatchItem } from '../../common/index.js';
import { makeTempDir, writeRandomFile } from './fixtures.js';

const CHUNK = 256 * 1024;
const SIZE = 11 * CHUNK + 4321; // 12 chunks

let tmp: { dir: string; cleanup: () => Promise<void> };
let file: { path: string; bytes: Buffer };
let m: Manifest;
let nginx: TestNginx[] = [];
const servers: EdgeServer[] = [];
const executors: Executor[] = [];
const planes: DataPlane[] = [];
const buses: Bus[] = [];

beforeAll(async () => {
  tmp = await makeTempDir('data-plane');
  file = await writeRandomFile(tmp.dir, 'src.bin', SIZE, 21);
  m = await createManifest(file.path, { chunkSize: CHUNK });
  nginx = [await startNginx({ root: tmp.dir }), await startNginx({ root: tmp.dir })];
}, 60_000);
afterAll(async () => {
  await Promise.all(executors.map((e) => e.close()));
  await Promise.all(planes.map((p) => p.close()));
  await Promise.all(buses.map((b) => b.close()));
  await Promise.all(servers.map((s) => s.close()));
  await Promise.all(nginx.map((n) => n.stop()));
  await tmp.cleanup();
});

function item(
  i: number,
  edgeIndex: number,
  edgeUrl: string,
  extra: Partial<DispatchItem> = {},
): DispatchItem {
  return {
    chunk: i,
    attempt: 1,
    edgeIndex,
    edgeUrl,
    edgeKind: 'portal',
    cid: m.chunks[i],
    ...chunkRange(m, i),
    timeoutMs: 20_000,
    ...extra,
  };
}

/** The job of chunk `chunk` of the test file into `output`, from the mirror at the URL given to the result. */
function mirrorJob(output: string, chunk: number): (edgeUrl: string) => DataJob {
  return (edgeUrl) => ({ output, fileSize: SIZE, ...item(chunk, 0, edgeUrl, { edgeKind: 'mirror' }) });
}

/** The head of a 206 answer with the whole of chunk `chunk` of the test file. */
function chunkHead(chunk: number): Record<string, string> {
  const { offset, length } = chunkRange(m, chunk);
  return {
    'content-length': String(length),
    'content-range': `bytes ${offset}-${offset + length - 1}/${SIZE}`,
  };
}

/**
 * A loopback HTTP server answering with `handler`, its URL for the test file, and a close that stops listening
 * (a retry is then refused) and drops every connection.
 */
async function listen(
  handler: Parameters<typeof createServer>[1],
): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/src.bin`;
  const closed = new Promise<void>((r) => server.once('close', r));
  return {
    url,
    close: () => {
      if (server.listening) server.close();
      server.closeAllConnections();
      return closed;
    },
  };
}

/** A mirror of the test file answering any `Range: bytes=a-b` (once `gate` resolves), with the ranges asked. */
async function rangeMirror(
  gate: Promise<void> = Promise.resolve(),
): Promise<{ url: string; close: () => Promise<void>; ranges: string[] }> {
  const ranges: string[] = [];
  const server = await listen((req, res) => {
    ranges.push(req.headers.range ?? '');
    const [a, b] = /^bytes=(\d+)-(\d+)$/
      .exec(req.headers.range ?? '')!
      .slice(1)
      .map(Number);
    void gate.then(() => {
      res.writeHead(206, { 'content-length': String(b - a + 1), 'content-range': `bytes ${a}-${b}/${SIZE}` });
      res.end(file.bytes.subarray(a, b + 1));
    });
  });
  return { ...server, ranges };
}

/** Resolves once `cond()` holds (checked every 5 ms). */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
}

/** Resolves once `output` holds `want` at `offset` (the file may not exist yet). */
async function bytesInFile(output: string, offset: number, want: Buffer): Promise<void> {
  for (;;) {
    const got = existsSync(output)
      ? (await readFile(output)).subarray(offset, offset + want.length)
      : undefined;
    if (got?.equals(want)) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

function setup(id: string, opts: { dataPlane?: DataPlane } = {}): { bus: Bus; exec: Executor } {
  const bus = createMemoryBus();
  buses.push(bus);
  const exec = createExecutor({ bus, id, threads: 2, ...opts });
  executors.push(exec);
  return { bus, exec };
}

async function run(
  bus: Bus,
  exec: Executor,
  transferId: string,
  output: string,
  items: DispatchItem[],
  onStart?: () => Promise<void>,
): Promise<ChunkReport[]> {
  exec.attach(transferId);
  const reports: ChunkReport[] = [];
  let wake: () => void = () => undefined;
  bus.subscribe<ChunkReport>(subjects.report(transferId), (r) => {
    reports.push(r);
    wake();
  });
  await bus.publish<DispatchBatch>(subjects.dispatch(transferId), {
    transferId,
    output,
    fileSize: SIZE,
    items,
  });
  await onStart?.();
  while (reports.length < items.length) await new Promise<void>((res) => (wake = res));
  await exec.detach(transferId);
  return reports;
}

describe('data plane on worker threads', () => {
  test('chunks from two nginx mirrors are received, hashed and written on worker threads into a byte-identical file', async () => {
    const { bus, exec } = setup('dp-nginx');
    const output = join(tmp.dir, 'out-nginx.bin');
    const items = m.chunks.map((_, i) =>
      item(i, i % 2, `${nginx[i % 2].httpUrl}/src.bin`, { edgeKind: 'mirror' }),
    );
    const reports = await run(bus, exec, 'nginx', output, items);
    expect(reports.filter((r) => !r.ok)).toEqual([]);
    for (const r of reports) expect(r.bytes).toBe(chunkRange(m, r.chunk).length);
    expect(await hashFile(output)).toBe(m.fileSha256);
    expect(exec.stats()).toMatchObject({ fetched: m.chunks.length, failed: 0, bytes: SIZE });
  });

  test('chunks from a Portal edge by CID land in a byte-identical file', async () => {
    const edge = await createEdgeServer({ source: { path: file.path, manifest: m } });
    servers.push(edge);
    const { bus, exec } = setup('dp-edge');
    const output = join(tmp.dir, 'out-edge.bin');
    const reports = await run(
      bus,
      exec,
      'edge',
      output,
      m.chunks.map((_, i) => item(i, 0, edge.url)),
    );
    expect(reports.every((r) => r.ok)).toBe(true);
    expect((await readFile(output)).equals(file.bytes)).toBe(true);
  });

  test('a corrupt chunk is detected as it streams and reported corrupt; a good copy then overwrites it', async () => {
    const bad = await createEdgeServer({
      source: { path: file.path, manifest: m },
      faults: { corruptChunks: new Set([3, 4]) },
    });
    const good = await createEdgeServer({ source: { path: file.path, manifest: m } });
    servers.push(bad, good);
    const { bus, exec } = setup('dp-corrupt');
    const output = join(tmp.dir, 'out-corrupt.bin');
    const first = await run(bus, exec, 'corrupt', output, [item(3, 0, bad.url), item(4, 0, bad.url)]);
    expect(first.map((r) => [r.chunk, r.ok, r.reason]).sort()).toEqual([
      [3, false, 'corrupt'],
      [4, false, 'corrupt'],
    ]);
    expect(first.every((r) => /does not match cid/.test(r.detail ?? ''))).toBe(true);
    const second = await run(bus, exec, 'corrupt', output, [
      item(3, 1, good.url, { attempt: 2 }),
      item(4, 1, good.url, { attempt: 2 }),
    ]);
    expect(second.every((r) => r.ok)).toBe(true);
    const out = await readFile(output);
    for (const c of [3, 4]) {
      const { offset, length } = chunkRange(m, c);
      expect(out.subarray(offset, offset + length).equals(file.bytes.subarray(offset, offset + length))).toBe(
        true,
      );
    }
  });

  test('a hedge verified first stops the slower attempt that streams into the file, so its unverified bytes never overwrite the verified ones', async () => {
    // The slow attempt streams a corrupted copy at 128 KiB/s (a 64 KiB slice at once, then paced); the hedge from a fast edge is verified first.
    const slowBad = await createEdgeServer({
      source: { path: file.path, manifest: m },
      bandwidthBytesPerSec: 128 * 1024,
      burstBytes: 64 * 1024,
      faults: { corruptChunks: new Set([5]) },
    });
    const good = await createEdgeServer({ source: { path: file.path, manifest: m } });
    servers.push(slowBad, good);
    const { bus, exec } = setup('dp-hedge');
    const output = join(tmp.dir, 'out-hedge.bin');
    exec.attach('hedge');
    const reports: ChunkReport[] = [];
    let wake: () => void = () => undefined;
    bus.subscribe<ChunkReport>(subjects.report('hedge'), (r) => {
      reports.push(r);
      wake();
    });
    const batch = (items: DispatchItem[]): DispatchBatch => ({
      transferId: 'hedge',
      output,
      fileSize: SIZE,
      items,
    });
    await bus.publish(subjects.dispatch('hedge'), batch([item(5, 0, slowBad.url)]));
    while (slowBad.stats().bytesServed === 0) await new Promise((r) => setTimeout(r, 5));
    await bus.publish(subjects.dispatch('hedge'), batch([item(5, 1, good.url, { attempt: 2 })]));
    while (reports.length < 2) await new Promise<void>((res) => (wake = res));
    await exec.detach('hedge');
    const byAttempt = new Map(reports.map((r) => [r.attempt, r]));
    expect(byAttempt.get(2)).toMatchObject({ ok: true, bytes: CHUNK });
    expect(byAttempt.get(1)).toMatchObject({ ok: false, reason: 'cancelled' });
    const { offset, length } = chunkRange(m, 5);
    const written = (await readFile(output)).subarray(offset, offset + length);
    expect(written.equals(file.bytes.subarray(offset, offset + length))).toBe(true);
  });

  test('a data thread that dies mid-fetch gets its chunk reported failed (io), not lost, and a new thread serves the next one', async () => {
    const slow = await createEdgeServer({ source: { path: file.path, manifest: m }, rttMs: 10_000 });
    const good = await createEdgeServer({ source: { path: file.path, manifest: m } });
    servers.push(slow, good);
    const plane = createDataPlane({ threads: 1 });
    const { bus, exec } = setup('dp-crash', { dataPlane: plane });
    const output = join(tmp.dir, 'out-crash.bin');
    const reports = await run(bus, exec, 'crash', output, [item(0, 0, slow.url)], async () => {
      while (plane.stats().running < 1) await new Promise((r) => setTimeout(r, 5));
      await plane.terminateThread(0);
    });
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ chunk: 0, ok: false, reason: 'io' });
    expect(reports[0].detail).toMatch(/data-plane thread 0 stopped/);
    expect(plane.stats().crashes).toBe(1);
    const again = await run(bus, exec, 'crash', output, [item(0, 1, good.url, { attempt: 2 })]);
    expect(again[0]).toMatchObject({ ok: true, bytes: CHUNK });
  });

  test('the in-flight cap: fetches beyond maxInFlightBytes wait their turn, the running ones never exceed it, and every chunk still lands verified', async () => {
    // 256 KiB/s over all responses: each chunk takes about 1 s, so the 12 fetches overlap as long as they may
    const edge = await createEdgeServer({
      source: { path: file.path, manifest: m },
      bandwidthBytesPerSec: 3 * CHUNK,
    });
    servers.push(edge);
    const plane = createDataPlane({ threads: 2, maxInFlightBytes: 3 * CHUNK });
    planes.push(plane);
    const output = join(tmp.dir, 'out-cap.bin');
    let peak = 0;
    let peakWaiting = 0;
    const sampler = setInterval(() => {
      const s = plane.stats();
      peak = Math.max(peak, s.inFlightBytes);
      peakWaiting = Math.max(peakWaiting, s.waiting);
    }, 5);
    const outcomes = await Promise.all(
      m.chunks.map((cid, i) =>
        plane.run({
          output,
          fileSize: SIZE,
          chunk: i,
          edgeUrl: edge.url,
          edgeKind: 'portal',
          cid,
          ...chunkRange(m, i),
          timeoutMs: 60_000,
        }),
      ),
    );
    clearInterval(sampler);
    await plane.closeFile(output);
    expect(outcomes.filter((o) => !o.ok)).toEqual([]);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(3 * CHUNK);
    expect(peakWaiting).toBeGreaterThanOrEqual(m.chunks.length - 3 - 1);
    expect(plane.stats()).toMatchObject({ inFlightBytes: 0, waiting: 0, maxInFlightBytes: 3 * CHUNK });
    expect(await hashFile(output)).toBe(m.fileSha256);
  }, 60_000);

  test('the in-flight cap: a fetch cancelled while it waits is reported cancelled and never starts', async () => {
    const edge = await createEdgeServer({ source: { path: file.path, manifest: m }, rttMs: 500 });
    servers.push(edge);
    const plane = createDataPlane({ threads: 1, maxInFlightBytes: CHUNK });
    planes.push(plane);
    const output = join(tmp.dir, 'out-cap-cancel.bin');
    const job = (i: number) => ({
      output,
      fileSize: SIZE,
      chunk: i,
      edgeUrl: edge.url,
      edgeKind: 'portal' as const,
      cid: m.chunks[i],
      ...chunkRange(m, i),
      timeoutMs: 20_000,
    });
    const first = plane.run(job(0));
    const ac = new AbortController();
    const second = plane.run(job(1), ac.signal);
    expect(plane.stats()).toMatchObject({ running: 1, waiting: 1 });
    ac.abort(new Error('not needed any more'));
    expect(await second).toMatchObject({ ok: false, reason: 'cancelled' });
    expect(plane.stats().waiting).toBe(0);
    expect(await first).toMatchObject({ ok: true, bytes: CHUNK });
    const served = edge.stats().requests;
    expect(served).toBe(1);
  });

  test('the in-flight cap rejects a non-positive or fractional byte count with a message naming it', () => {
    expect(() => createDataPlane({ maxInFlightBytes: 0 })).toThrow(
      /maxInFlightBytes: expected a positive integer/,
    );
    expect(() => createDataPlane({ maxInFlightBytes: 1.5 })).toThrow(/maxInFlightBytes/);
  });

  test('partial chunks: a fetch cut short by a thread crash keeps its bytes, and the next fetch asks the source only for the rest of the chunk', async () => {
    // 64 KiB/s: the crash comes a few slices into chunk 1
    const slow = await createEdgeServer({
      source: { path: file.path, manifest: m },
      bandwidthBytesPerSec: 64 * 1024,
    });
    const good = await createEdgeServer({ source: { path: file.path, manifest: m } });
    servers.push(slow, good);
    const plane = createDataPlane({ threads: 1 });
    planes.push(plane);
    const output = join(tmp.dir, 'out-partial.bin');
    const job = (edgeUrl: string) => ({
      output,
      fileSize: SIZE,
      chunk: 1,
      edgeUrl,
      edgeKind: 'portal' as const,
      cid: m.chunks[1],
      ...chunkRange(m, 1),
      timeoutMs: 20_000,
    });
    const first = plane.run(job(slow.url));
    const log = openPartialChunkLog(output);
    try {
      while (log.kept(1, m.chunks[1], CHUNK) < 64 * 1024) await new Promise((r) => setTimeout(r, 10));
      await plane.terminateThread(0);
      expect(await first).toMatchObject({ ok: false, reason: 'io' });
      const kept = log.kept(1, m.chunks[1], CHUNK);
      expect(kept).toBeGreaterThan(0);
      expect(kept).toBeLessThan(CHUNK);
      const again = await plane.run(job(good.url));
      expect(again).toMatchObject({ ok: true, bytes: CHUNK, keptBytes: kept });
      expect(good.stats().bytesServed).toBe(CHUNK - kept);
      expect(plane.stats().keptBytes).toBe(kept);
    } finally {
      log.close();
    }
    await plane.closeFile(output);
    const { offset, length } = chunkRange(m, 1);
    expect((await readFile(output)).subarray(offset, offset + length)).toEqual(
      file.bytes.subarray(offset, offset + length),
    );
    expect(existsSync(partialChunkLogPath(output))).toBe(false);
  }, 30_000);

  test('partial chunks: a symbolic link planted at the log path is not written through; the chunk is fetched whole and verified', async () => {
    const good = await createEdgeServer({ source: { path: file.path, manifest: m } });
    servers.push(good);
    const plane = createDataPlane({ threads: 1 });
    planes.push(plane);
    const output = join(tmp.dir, 'out-linked-log.bin');
    const victim = join(tmp.dir, 'victim-outside');
    await writeFile(victim, 'KEEP');
    await symlink(victim, partialChunkLogPath(output));
    const r = await plane.run({
      output,
      fileSize: SIZE,
      chunk: 2,
      edgeUrl: good.url,
      edgeKind: 'portal',
      cid: m.chunks[2],
      ...chunkRange(m, 2),
      timeoutMs: 20_000,
    });
    expect(r).toMatchObject({ ok: true, bytes: CHUNK });
    await plane.closeFile(output);
    expect(await readFile(victim, 'utf8')).toBe('KEEP');
    const { offset, length } = chunkRange(m, 2);
    expect((await readFile(output)).subarray(offset, offset + length)).toEqual(
      file.bytes.subarray(offset, offset + length),
    );
  }, 30_000);

  test('partial chunks: a source that dies mid-chunk leaves every byte written kept, not only the last quarter-chunk record, and the failover asks for the rest', async () => {
    // a mirror that answers chunk 3's Range with 199 000 bytes, 1000 more a moment later (so the last piece is
    // small, below a quarter-chunk record step), then resets the connection
    const { offset, length } = chunkRange(m, 3);
    const cut = 200_000;
    const dying = createServer((req, res) => {
      res.writeHead(206, {
        'content-length': String(length),
        'content-range': `bytes ${offset}-${offset + length - 1}/${SIZE}`,
      });
      res.write(file.bytes.subarray(offset, offset + cut - 1000));
      setTimeout(() => {
        res.write(file.bytes.subarray(offset + cut - 1000, offset + cut));
        setTimeout(() => res.socket?.destroy(), 100);
      }, 100);
    });
    await new Promise<void>((r) => dying.listen(0, '127.0.0.1', r));
    const plane = createDataPlane({ threads: 1 });
    planes.push(plane);
    const output = join(tmp.dir, 'out-partial-reset.bin');
    const job = mirrorJob(output, 3);
    try {
      const first = await plane.run(job(`http://127.0.0.1:${(dying.address() as AddressInfo).port}/src.bin`));
      expect(first.ok).toBe(false);
    } finally {
      dying.closeAllConnections();
      await new Promise((r) => dying.close(r));
    }
    const log = openPartialChunkLog(output);
    try {
      expect(log.kept(3, m.chunks[3], length)).toBe(cut);
    } finally {
      log.close();
    }
    const again = await plane.run(job(`${nginx[1].httpUrl}/src.bin`));
    expect(again).toMatchObject({ ok: true, bytes: length, keptBytes: cut });
    await plane.closeFile(output);
    expect((await readFile(output)).subarray(offset, offset + length)).toEqual(
      file.bytes.subarray(offset, offset + length),
    );
  }, 30_000);

  test('partial chunks: a fetch cancelled in its retry backoff (its source reset mid-chunk) records its bytes at the cancel, so the failover sent right behind it asks only for the rest', async () => {
    // a mirror that sends the first `cut` bytes of chunk 4 and resets the connection (the thread's fetch waits
    // out a backoff before it asks again); the scheduler's failover then cancels that fetch and dispatches the
    // chunk to another source in the same tick: both messages reach the thread at once
    const { offset, length } = chunkRange(m, 4);
    const cut = 150_000;
    let closed = 0;
    const resetting = await listen((req, res) => {
      res.socket?.once('close', () => closed++);
      if (closed > 0) return; // a retry is never answered
      res.writeHead(206, chunkHead(4));
      res.write(file.bytes.subarray(offset, offset + cut), () => res.socket?.destroy());
    });
    const plane = createDataPlane({ threads: 1 });
    planes.push(plane);
    const output = join(tmp.dir, 'out-failover-backoff.bin');
    const job = mirrorJob(output, 4);
    try {
      const ac = new AbortController();
      const first = plane.run(job(resetting.url), ac.signal);
      // the thread wrote the `cut` bytes and the connection is gone
      await bytesInFile(output, offset, file.bytes.subarray(offset, offset + cut));
      await until(() => closed > 0);
      ac.abort(new Error('failover'));
      const again = plane.run(job(`${nginx[1].httpUrl}/src.bin`));
      expect(await first).toMatchObject({ ok: false, reason: 'cancelled' });
      expect(await again).toMatchObject({ ok: true, bytes: length, keptBytes: cut });
    } finally {
      await resetting.close();
    }
    expect(plane.stats().keptBytes).toBe(cut);
    await plane.closeFile(output);
    expect((await readFile(output)).subarray(offset, offset + length)).toEqual(
      file.bytes.subarray(offset, offset + length),
    );
  }, 30_000);

  test('a hedge of a chunk that a slower attempt is streaming into the file asks its source only for the bytes after those written, and the file ends right', async () => {
    // the slow mirror sends the first `cut` bytes of chunk 6, then nothing more; the fast one records the Range
    // it is asked for
    const { offset, length } = chunkRange(m, 6);
    const cut = 100_000;
    const slow = await listen((req, res) => {
      res.writeHead(206, chunkHead(6));
      res.write(file.bytes.subarray(offset, offset + cut));
    });
    const fast = await rangeMirror();
    const plane = createDataPlane({ threads: 1 });
    planes.push(plane);
    const output = join(tmp.dir, 'out-hedge-rest.bin');
    const job = mirrorJob(output, 6);
    try {
      const streaming = plane.run(job(slow.url));
      await bytesInFile(output, offset, file.bytes.subarray(offset, offset + cut));
      const hedge = await plane.run(job(fast.url));
      expect(hedge).toMatchObject({ ok: true, bytes: length, keptBytes: cut });
      expect(fast.ranges).toEqual([`bytes=${offset + cut}-${offset + length - 1}`]);
      // the streaming attempt stops at its next piece (superseded); here its source sends none: it goes away
      const closed = slow.close();
      expect(await streaming).toMatchObject({ ok: false });
      await closed;
    } finally {
      await Promise.all([slow.close(), fast.close()]);
    }
    await plane.closeFile(output);
    expect((await readFile(output)).subarray(offset, offset + length)).toEqual(
      file.bytes.subarray(offset, offset + length),
    );
  }, 30_000);

  test('a hedge that continued streamed bytes which its streaming attempt then rewrote differently (its source restarted the chunk) is not taken: it ends cancelled', async () => {
    // chunk 7's slow source sends its first `cut` bytes and resets; the streaming attempt's retry gets other
    // bytes for the same range (then nothing). The hedge began after the first bytes and asks for the rest; its
    // answer is held until the rewrite is in the file.
    const { offset } = chunkRange(m, 7);
    const cut = 100_000;
    const good = file.bytes.subarray(offset, offset + cut);
    const other = Buffer.from(good.map((b) => b ^ 0xff));
    let slowRequests = 0;
    let slowClosed = false;
    // the retry's rewrite waits until the hedge has asked for the rest: a hedge that starts after the rewrite
    // continues the rewritten bytes (they are what the file holds), which is right and not what is tested here
    let rewrite: () => void = () => undefined;
    const rewriteAllowed = new Promise<void>((r) => (rewrite = r));
    const slow = await listen((req, res) => {
      const n = slowRequests++;
      res.writeHead(206, chunkHead(7));
      if (n > 0) void rewriteAllowed.then(() => res.write(other));
      else {
        res.socket?.once('close', () => (slowClosed = true));
        res.write(good, () => res.socket?.destroy());
      }
    });
    let release: () => void = () => undefined;
    const fast = await rangeMirror(new Promise<void>((r) => (release = r)));
    const plane = createDataPlane({ threads: 1 });
    planes.push(plane);
    const output = join(tmp.dir, 'out-hedge-rewritten.bin');
    const job = mirrorJob(output, 7);
    try {
      const streaming = plane.run(job(slow.url));
      await bytesInFile(output, offset, good);
      await until(() => slowClosed);
      const hedge = plane.run(job(fast.url));
      await until(() => fast.ranges.length > 0);
      rewrite();
      await bytesInFile(output, offset, other);
      release();
      expect(await hedge).toMatchObject({ ok: false, reason: 'cancelled' });
      const closed = slow.close();
      expect(await streaming).toMatchObject({ ok: false });
      await closed;
    } finally {
      rewrite();
      release();
      await Promise.all([slow.close(), fast.close()]);
    }
    await plane.closeFile(output);
  }, 30_000);

  test('partial chunks: kept bytes that are wrong are thrown away, and the chunk is fetched whole and verifies (the source is not blamed)', async () => {
    const plane = createDataPlane({ threads: 1 });
    planes.push(plane);
    const output = join(tmp.dir, 'out-partial-bad.bin');
    const { offset, length } = chunkRange(m, 2);
    // a log that claims 100 000 bytes of chunk 2, over bytes that are not the chunk's
    await writeFile(output, Buffer.alloc(SIZE, 0x5a));
    const log = openPartialChunkLog(output);
    log.record(2, m.chunks[2], 100_000);
    log.close();
    const o = await plane.run({
      output,
      fileSize: SIZE,
      chunk: 2,
      edgeUrl: `${nginx[0].httpUrl}/src.bin`,
      edgeKind: 'mirror',
      cid: m.chunks[2],
      offset,
      length,
      timeoutMs: 20_000,
    });
    expect(o).toMatchObject({ ok: true, bytes: CHUNK });
    expect(o.ok && o.keptBytes).toBeFalsy();
    await plane.closeFile(output);
    expect((await readFile(output)).subarray(offset, offset + length)).toEqual(
      file.bytes.subarray(offset, offset + length),
    );
  });

  test('a full disk is named: ENOSPC from a streamed write is reported as io with the file and chunk', async () => {
    const edge = await createEdgeServer({ source: { path: file.path, manifest: m } });
    servers.push(edge);
    const { bus, exec } = setup('dp-enospc');
    const reports = await run(bus, exec, 'enospc', '/dev/full', [item(2, 0, edge.url)]);
    expect(reports[0]).toMatchObject({ chunk: 2, ok: false, reason: 'io' });
    expect(reports[0].detail).toMatch(/cannot write chunk 2 to \/dev\/full: .*ENOSPC/);
  });

  test('a busy mirror (503 with Retry-After) is reported busy with the delay it asked for', async () => {
    const busy = await startNginx({
      root: tmp.dir,
      extra: 'location /busy { add_header Retry-After 7 always; return 503; }',
    });
    nginx.push(busy);
    const { bus, exec } = setup('dp-busy');
    const reports = await run(bus, exec, 'busy', join(tmp.dir, 'out-busy.bin'), [
      item(0, 0, `${busy.httpUrl}/busy`, { edgeKind: 'mirror' }),
    ]);
    expect(reports[0]).toMatchObject({ ok: false, reason: 'busy', retryAfterMs: 7000 });
    expect(reports[0].detail).toMatch(/HTTP 503/);
  });
});
