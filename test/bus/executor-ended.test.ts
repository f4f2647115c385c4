import path from 'node:path';
import { createSilentLogger } from '../../common/logger.js';
import { TRANSFER_ENDED_CHUNK, type CancelRequest, type DispatchBatch } from '../../common/index.js';
import { createNatsBus, type NatsBus } from '../../bus/nats-bus.js';
import { createAllTransfersBus, subjects, type Subscription } from '../../bus/index.js';
import { chunkRange, createExecutor, createManifest, type Manifest } from '../../transfer/index.js';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import { makeTempDir, writeRandomFile } from '../transfer/fixtures.js';

const CHUNK = 16 * 1024;
const CHUNKS = 10;
const logger = createSilentLogger();

let server: TestNatsServer;
let tmp: { dir: string; cleanup: () => Promise<void> };
let m: Manifest;
let mirror: BadMirror;
const buses: NatsBus[] = [];

beforeAll(async () => {
  server = await startNatsServer();
  tmp = await makeTempDir('executor-ended');
  const file = await writeRandomFile(tmp.dir, 'file.bin', CHUNKS * CHUNK, 9);
  m = await createManifest(file.path, { chunkSize: CHUNK });
  // every fetch takes ~300 ms: half a chunk at once, the rest 300 ms later
  mirror = await startBadMirror(file.bytes, () => ({ kind: 'trickle', bytes: CHUNK / 2, everyMs: 300 }));
});
afterAll(async () => {
  await Promise.all(buses.map((b) => b.close()));
  await mirror?.close();
  await server?.stop();
  await tmp?.cleanup();
});

async function waitFor(fn: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Subscribes to `id`'s reports on `bus`: the attempts reported, in arrival order. */
async function attemptsReported(bus: NatsBus, id: string): Promise<{ reports: number[]; sub: Subscription }> {
  const reports: number[] = [];
  const sub = bus.subscribe<{ attempt: number }>(subjects.report(id), (r) => void reports.push(r.attempt));
  await sub.ready;
  return { reports, sub };
}

const batch = (transferId: string, attempts: number[]): DispatchBatch => ({
  transferId,
  output: path.join(tmp.dir, `${transferId}.bin`),
  fileSize: m.fileSize,
  items: attempts.map((attempt) => {
    const chunk = (attempt - 1) % CHUNKS;
    return {
      chunk,
      attempt,
      edgeIndex: 0,
      edgeUrl: mirror.url,
      edgeKind: 'mirror' as const,
      cid: m.chunks[chunk],
      ...chunkRange(m, chunk),
      timeoutMs: 10_000,
    };
  }),
});

test('executor --all: an ended transfer’s queued and later dispatches are dropped, not fetched; a restarted one is fetched again', async () => {
  const bus = await createNatsBus({ servers: server.url, name: 'ended-exec', logger });
  const publisher = await createNatsBus({ servers: server.url, name: 'ended-sched', logger });
  buses.push(bus, publisher);
  // as `portal executor --all` builds it: one wildcard queue subscription attaches each new transfer
  // eslint-disable-next-line prefer-const
  let executor: ReturnType<typeof createExecutor> | undefined;
  const router = createAllTransfersBus(bus, (t) => executor!.attach(t));
  executor = createExecutor({
    bus: router,
    id: 'x1',
    concurrency: 1,
    threads: 0,
    outputRoot: tmp.dir,
    logger,
  });
  await router.ready;
  const id = 't-ended';
  const { reports, sub } = await attemptsReported(publisher, id);
  try {
    const before = mirror.requests.length;
    await publisher.publish(subjects.dispatch(id), batch(id, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    await waitFor(() => mirror.requests.length > before); // attempt 1 is being fetched, 2…10 wait
    const end: CancelRequest = { transferId: id, chunk: TRANSFER_ENDED_CHUNK, attempt: 11 };
    await publisher.publish(subjects.cancel(id), end);
    await waitFor(() => executor.stats().droppedEnded === 9);
    // batches of the ended run that were still in the stream are dropped as they arrive
    await publisher.publish(subjects.dispatch(id), batch(id, [4, 5]));
    await waitFor(() => executor.stats().droppedEnded === 11);
    // a restart dispatches higher attempts: those are fetched
    await publisher.publish(subjects.dispatch(id), batch(id, [12]));
    await waitFor(() => reports.includes(12));
    expect(mirror.requests.slice(before).map((r) => r.range)).toEqual([
      `bytes=0-${CHUNK - 1}`, // attempt 1 (chunk 0), aborted when the transfer ended
      `bytes=${CHUNK}-${2 * CHUNK - 1}`, // attempt 12 (chunk 1)
    ]);
    expect(reports.sort((a, b) => a - b)).toEqual([1, 12]);
    expect(executor.stats()).toMatchObject({ fetched: 1, droppedEnded: 11, queued: 0, inFlight: 0 });
  } finally {
    sub.unsubscribe();
    await executor.close();
    await router.close();
  }
}, 30_000);

test('executor: an end marker near 2^32 does not drop the attempts of a later activation that wrapped past 2^32 (serial order)', async () => {
  const bus = await createNatsBus({ servers: server.url, name: 'ended-wrap-exec', logger });
  const publisher = await createNatsBus({ servers: server.url, name: 'ended-wrap-sched', logger });
  buses.push(bus, publisher);
  const executor = createExecutor({ bus, id: 'x2', concurrency: 1, threads: 0, outputRoot: tmp.dir, logger });
  const id = 't-wrap';
  executor.attach(id);
  const { reports, sub } = await attemptsReported(publisher, id);
  try {
    // activation 255 (attempts from 0xff000000) ended at 0xff000005; activation 256 starts at 0 (mod 2^32)
    const end: CancelRequest = { transferId: id, chunk: TRANSFER_ENDED_CHUNK, attempt: 0xff000005 };
    await publisher.publish(subjects.cancel(id), end);
    const b = batch(id, [1]);
    // a dispatch of the ended activation is dropped: the marker is in place
    await publisher.publish(subjects.dispatch(id), { ...b, items: [{ ...b.items[0], attempt: 0xff000004 }] });
    await waitFor(() => executor.stats().droppedEnded === 1);
    await publisher.publish(subjects.dispatch(id), { ...b, items: [{ ...b.items[0], attempt: 3 }] });
    await waitFor(() => reports.includes(3));
    expect(executor.stats()).toMatchObject({ fetched: 1, droppedEnded: 1 });
    expect(reports).toEqual([3]);
  } finally {
    sub.unsubscribe();
    await executor.close();
  }
}, 30_000);
