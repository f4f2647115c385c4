import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createNatsBus, type NatsBus } from '../../bus/nats-bus.js';
import { subjects } from '../../bus/types.js';
import type { ChunkReport, DispatchBatch } from '../../common/index.js';
import { createLogger, createSilentLogger } from '../../common/logger.js';
import { chunkRange, createExecutor } from '../../transfer/index.js';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';
import { waitFor } from '../helpers/dapr.js';
import {
  PORTAL_MAIN,
  schedulerCall,
  startEmbeddedServe,
  stopEmbeddedServe,
  type EmbeddedServe,
} from '../helpers/portal-cli.js';
import { createSourceEdge, type SourceEdge } from '../transfer/fixtures.js';
import { jsonRecords, startExecutorProcess, type ExecutorProcess } from '../helpers/executor-process.js';

// `portal executor --all` with an output root other than the scheduling host's (trial finding X1): every transfer's
// dispatches reach it (its own consumer), and those for files outside its root were answered with an 'io' failure
// ("outside the output root"), which the host takes for a local write fault of its own: the transfer failed. Now
// such a dispatch is skipped — no fetch, no report, counted and logged at debug — and the host's executor serves it.

const CHUNK = 64 * 1024;
const CHUNKS = 24;

/** `portal executor <args>` with debug logs. */
const startExecutor = (args: string[]): ExecutorProcess =>
  startExecutorProcess(['--log-level', 'debug', ...args]);

/** A dispatch batch of one item: chunk `chunk` of `src`'s file from its edge (attempt 1), written into `output`. */
const oneChunkBatch = (
  src: SourceEdge,
  transferId: string,
  output: string,
  chunk: number,
): DispatchBatch => ({
  transferId,
  output,
  fileSize: src.manifest.fileSize,
  items: [
    {
      chunk,
      attempt: 1,
      edgeIndex: 0,
      edgeUrl: src.edge.url,
      edgeKind: 'portal',
      cid: src.manifest.chunks[chunk],
      ...chunkRange(src.manifest, chunk),
      timeoutMs: 10_000,
    },
  ],
});

(existsSync(PORTAL_MAIN) || process.env.CI === 'true' ? describe : describe.skip)(
  'executor --all with another output root (needs `npm run build`)',
  () => {
    let nats: TestNatsServer;
    let src: SourceEdge;
    let serve: EmbeddedServe | undefined;
    let executor: ExecutorProcess | undefined;
    let watcher: NatsBus | undefined;

    beforeAll(async () => {
      nats = await startNatsServer();
      // ~0.5 s per transfer at 3 MiB/s: the executor holds both transfers' dispatches while they run
      src = await createSourceEdge('executor-skip', {
        size: CHUNKS * CHUNK - 99,
        chunkSize: CHUNK,
        seed: 11,
        edge: { id: 'skip-edge', bandwidthBytesPerSec: 3 * 1024 * 1024 },
      });
    });
    afterAll(async () => {
      if (executor && executor.proc.exitCode === null) executor.proc.kill('SIGKILL');
      await watcher?.close();
      await stopEmbeddedServe(serve);
      await nats?.stop();
      await src?.close();
    });

    test('executor --all: a transfer outside its output root is skipped (counted, logged at debug), not failed; the host serves it and both transfers end verified', async () => {
      const inner = join(src.dir, 'exec-root');
      await mkdir(inner);
      executor = startExecutor([
        '--nats',
        nats.url,
        '--all',
        '--id',
        'ex-inner',
        '--concurrency',
        '4',
        '--output-root',
        inner,
      ]);
      await executor.ready;
      // every report on the outside transfer, from whichever executor
      watcher = await createNatsBus({ servers: nats.url, name: 'skip-watch', logger: createSilentLogger() });
      const outsideReports: ChunkReport[] = [];
      const sub = watcher.subscribe<ChunkReport>(subjects.report('outside'), (r) => {
        outsideReports.push(r);
      });
      await sub.ready;
      serve = await startEmbeddedServe(['--output-root', src.dir], { NATS_URL: nats.url });
      const outputs = { inside: join(inner, 'inside.bin'), outside: join(src.dir, 'outside.bin') };
      for (const [id, output] of Object.entries(outputs))
        expect(await schedulerCall(serve.base, id, 'start', src.startBody(id, output))).toMatchObject({
          status: 200,
          body: { state: 'running' },
        });
      for (const [id, output] of Object.entries(outputs)) {
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        let s: any;
        await waitFor(
          async () =>
            ['done', 'failed', 'cancelled'].includes(
              (s = (await schedulerCall(serve!.base, id, 'status')).body)?.state,
            ),
          60_000,
          () => `transfer ${id} ends (last status ${JSON.stringify(s)})`,
        );
        expect({ id, state: s.state, verified: s.verified, error: s.error }).toEqual({
          id,
          state: 'done',
          verified: true,
          error: undefined,
        });
        expect(
          createHash('sha256')
            .update(await readFile(output))
            .digest('hex'),
        ).toBe(src.manifest.fileSha256);
      }
      executor.proc.kill('SIGTERM');
      expect(await executor.exited).toBe(0);
      const recs = jsonRecords(executor.lines);
      const stopped = recs.find((r) => r.type === 'stopped');
      // every item of the outside transfer's dispatches was skipped: the executor reported none of them (before:
      // an 'io' failure "outside the output root" each), the host's executor reported them all
      expect(stopped).toMatchObject({ id: 'ex-inner' });
      expect(stopped!.skipped).toBeGreaterThanOrEqual(CHUNKS);
      expect(outsideReports.filter((r) => r.executorId === 'ex-inner')).toEqual([]);
      expect(new Set(outsideReports.filter((r) => r.ok).map((r) => r.chunk)).size).toBe(CHUNKS);
      const skips = recs.filter((r) => String(r.msg).startsWith('dispatch skipped'));
      expect(skips.length).toBeGreaterThan(0);
      expect(new Set(skips.map((r) => r.transferId))).toEqual(new Set(['outside']));
      expect(skips.map((r) => r.level)).toEqual(skips.map(() => 20)); // debug
      expect(String(skips[0].reason)).toMatch(/outside the output root/);
    }, 120_000);

    test('executor --all: executors of different output roots are in different queue groups, so each dispatch reaches one that can serve it (none is taken and skipped by the other)', async () => {
      const rootA = join(src.dir, 'root-a');
      const rootB = join(src.dir, 'root-b');
      await mkdir(rootA);
      await mkdir(rootB);
      const pair = [
        startExecutor(['--nats', nats.url, '--all', '--id', 'ex-a', '--output-root', rootA]),
        startExecutor(['--nats', nats.url, '--all', '--id', 'ex-b', '--output-root', rootB]),
      ];
      try {
        await Promise.all(pair.map((e) => e.ready));
        const id = 'groups';
        const reports: ChunkReport[] = [];
        const sub = watcher!.subscribe<ChunkReport>(subjects.report(id), (r) => void reports.push(r));
        await sub.ready;
        // one small batch per chunk, all for a file under root B: with one shared group A took about half
        const output = join(rootB, 'b.bin');
        for (let c = 0; c < CHUNKS; c++)
          await watcher!.publish(subjects.dispatch(id), oneChunkBatch(src, id, output, c));
        await waitFor(
          async () => new Set(reports.filter((r) => r.ok).map((r) => r.chunk)).size === CHUNKS,
          30_000,
          () => `every chunk reported ok (${reports.length} reports)`,
        );
        expect(new Set(reports.map((r) => r.executorId))).toEqual(new Set(['ex-b']));
        for (const e of pair) e.proc.kill('SIGTERM');
        expect(await Promise.all(pair.map((e) => e.exited))).toEqual([0, 0]);
        const stopped = pair.map((e) => jsonRecords(e.lines).find((r) => r.type === 'stopped'));
        // (both also skip what the first test's transfers left in the stream in the 2 s before they subscribed)
        expect(stopped[0]).toMatchObject({ id: 'ex-a', fetched: 0, failed: 0 });
        expect(stopped[0]!.skipped).toBeGreaterThanOrEqual(CHUNKS);
        expect(stopped[1]).toMatchObject({ id: 'ex-b', fetched: CHUNKS, failed: 0 });
        expect(
          createHash('sha256')
            .update(await readFile(output))
            .digest('hex'),
        ).toBe(src.manifest.fileSha256);
      } finally {
        for (const e of pair) if (e.proc.exitCode === null) e.proc.kill('SIGKILL');
      }
    }, 120_000);
  },
);

describe('executor: dispatches it cannot serve (real nats-server)', () => {
  let nats: TestNatsServer;
  let src: SourceEdge;
  let root: string;
  const buses: NatsBus[] = [];
  beforeAll(async () => {
    nats = await startNatsServer();
    src = await createSourceEdge('executor-unservable', { size: 4 * CHUNK - 5, chunkSize: CHUNK, seed: 12 });
    root = join(src.dir, 'root');
    await mkdir(root);
  });
  afterAll(async () => {
    await Promise.all(buses.map((b) => b.close()));
    await nats?.stop();
    await src?.close();
  });

  test.each([['skip' as const], ['fail' as const]])(
    "executor (unservable '%s'): an output outside the root, in a folder missing here, or an edge URL with redacted credentials",
    async (mode) => {
      const bus = await createNatsBus({
        servers: nats.url,
        name: `unservable-${mode}`,
        logger: createSilentLogger(),
      });
      const publisher = await createNatsBus({
        servers: nats.url,
        name: `unservable-pub-${mode}`,
        logger: createSilentLogger(),
      });
      buses.push(bus, publisher);
      const logged: Record<string, unknown>[] = [];
      const logger = createLogger({
        level: 'debug',
        destination: new Writable({
          write(chunk: Buffer, _enc, done) {
            for (const l of chunk.toString().split('\n').filter(Boolean))
              logged.push(JSON.parse(l) as Record<string, unknown>);
            done();
          },
        }),
      });
      const executor = createExecutor({
        bus,
        id: `x-${mode}`,
        threads: 0,
        outputRoot: root,
        logger,
        unservable: mode,
      });
      const id = `unservable-${mode}`;
      executor.attach(id);
      const reports: ChunkReport[] = [];
      const sub = publisher.subscribe<ChunkReport>(subjects.report(id), (r) => void reports.push(r));
      await sub.ready;
      try {
        await publisher.publish(
          subjects.dispatch(id),
          oneChunkBatch(src, id, join(src.dir, `${mode}-outside.bin`), 0),
        );
        await publisher.publish(
          subjects.dispatch(id),
          oneChunkBatch(src, id, join(root, 'missing', `${mode}.bin`), 1),
        );
        await publisher.publish(
          subjects.dispatch(id),
          oneChunkBatch(src, id, 'http://***:***@127.0.0.1:9/v1', 2),
        );
        // a batch whose first item's source has credentials that arrived redacted (no dispatch key here): with
        // 'skip' only that item is left to the host, which holds the real URL (attempt 2 tells these apart)
        const mixed = oneChunkBatch(src, id, join(root, `${mode}-mixed.bin`), 0);
        const second = oneChunkBatch(src, id, join(root, `${mode}-mixed.bin`), 1).items[0];
        mixed.items = [
          { ...mixed.items[0], attempt: 2, edgeUrl: 'http://***:***@127.0.0.1:9/' },
          { ...second, attempt: 2 },
        ];
        await publisher.publish(subjects.dispatch(id), mixed);
        // a servable batch after them is fetched: the refusals poison nothing
        await publisher.publish(
          subjects.dispatch(id),
          oneChunkBatch(src, id, join(root, `${mode}-ok.bin`), 3),
        );
        await waitFor(
          async () => reports.some((r) => r.chunk === 3),
          20_000,
          () => 'chunk 3 is reported',
        );
        if (mode === 'skip') {
          await waitFor(
            async () => executor.stats().skipped === 4,
            5_000,
            () => 'four items skipped',
          );
          await waitFor(
            async () => reports.length === 2,
            10_000,
            () => 'two reports',
          );
          // before: the redacted source's item was reported failed, on the host's transfer
          expect(
            reports
              .map((r) => ({ chunk: r.chunk, attempt: r.attempt, ok: r.ok }))
              .sort((a, b) => a.chunk - b.chunk),
          ).toEqual([
            { chunk: 1, attempt: 2, ok: true },
            { chunk: 3, attempt: 1, ok: true },
          ]);
          const skips = logged.filter((r) => String(r.msg).startsWith('dispatch skipped'));
          expect(skips.map((r) => [r.level, r.transferId, r.items])).toEqual([
            [20, id, 1],
            [20, id, 1],
            [20, id, 1],
            [20, id, 1],
          ]);
          // in the order the checks end (each is a file-system walk of its own)
          expect(skips.map((r) => String(r.reason))).toEqual(
            expect.arrayContaining([
              expect.stringMatching(/outside the output root/),
              expect.stringMatching(/^cannot create .*missing.*ENOENT/),
              expect.stringMatching(/PORTAL_DISPATCH_KEY/),
            ]),
          );
          expect(logged.filter((r) => (r.level as number) >= 40)).toEqual([]);
        } else {
          // the scheduling host's own executor: each refusal is reported, naming its cause
          await waitFor(
            async () => reports.length === 6,
            20_000,
            () => 'six reports',
          );
          const again = reports.filter((r) => r.attempt === 2).sort((a, b) => a.chunk - b.chunk);
          expect(again).toMatchObject([
            { chunk: 0, ok: false, reason: 'io', detail: expect.stringMatching(/PORTAL_DISPATCH_KEY/) },
            { chunk: 1, ok: true },
          ]);
          const byChunk = new Map(reports.filter((r) => r.attempt === 1).map((r) => [r.chunk, r]));
          expect(byChunk.get(0)).toMatchObject({
            ok: false,
            reason: 'io',
            detail: expect.stringMatching(/outside the output root/),
          });
          expect(byChunk.get(1)).toMatchObject({
            ok: false,
            reason: 'io',
            detail: expect.stringMatching(/ENOENT/),
          });
          expect(byChunk.get(2)).toMatchObject({
            ok: false,
            reason: 'io',
            detail: expect.stringMatching(/PORTAL_DISPATCH_KEY/),
          });
          expect(byChunk.get(3)).toMatchObject({ ok: true });
          expect(executor.stats().skipped).toBe(0);
        }
      } finally {
        sub.unsubscribe();
        await executor.close();
      }
    },
    30_000,
  );
});
