import path from 'node:path';
import { startEmbeddedNode, type EmbeddedNode } from '../../node/index.js';
import { createSilentLogger } from '../../common/logger.js';
import { subjects } from '../../bus/index.js';
import type { CancelRequest, ChunkReport, DispatchBatch } from '../../common/index.js';
import { terminalStates, type TransferRequest, type TransferStatus } from '../../actors/index.js';
import { actorProxy } from '../../actors/api.js';
import { createEdgeServer, type EdgeServer } from '../../transfer/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';

const logger = createSilentLogger();
const CHUNK = 16384;
const CHUNKS = 32;

/** What the bus showed of one transfer: when each dispatch batch went out and when its chunks completed. */
interface Seen {
  batches: Array<{ at: number; items: number }>;
  completed: Set<number>;
  /** When the last of its chunks completed (Infinity while some are missing). */
  doneAt: number;
}

function watch(node: EmbeddedNode, transferId: string): Seen {
  const seen: Seen = { batches: [], completed: new Set(), doneAt: Infinity };
  node.bus.subscribe<DispatchBatch>(subjects.dispatch(transferId), (b) => {
    seen.batches.push({ at: performance.now(), items: b.items.length });
  });
  node.bus.subscribe<ChunkReport>(subjects.report(transferId), (r) => {
    if (!r.ok) return;
    seen.completed.add(r.chunk);
    if (seen.completed.size === CHUNKS) seen.doneAt = performance.now();
  });
  return seen;
}

async function waitEnd(node: EmbeddedNode, id: string): Promise<TransferStatus> {
  const actor = actorProxy(node.host, 'SchedulerActor', id);
  for (;;) {
    const s = await actor.invoke('status');
    if (terminalStates.includes(s.state)) return s;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('background pre-position work and foreground transfers on one host', () => {
  let mesh: Mesh | undefined;
  let target: EdgeServer | undefined;
  let node: EmbeddedNode | undefined;
  afterEach(async () => {
    await node?.close();
    await target?.close();
    await mesh?.close();
    node = target = mesh = undefined;
  });

  /** A node, an origin both transfers fetch from, and an accepting edge the pre-position task fills. */
  async function setUp(): Promise<{ fg: TransferRequest; bg: TransferRequest }> {
    mesh = await createMesh(CHUNKS * CHUNK, CHUNK, [
      { holds: 'all', bandwidthBytesPerSec: 400_000, maxParallel: 4 },
    ]);
    target = await createEdgeServer({
      id: 'target',
      source: { path: path.join(mesh.dir, 'target.bin'), manifest: mesh.manifest },
      holds: new Set(),
      accept: {},
    });
    const output = path.join(mesh.dir, 'fg.bin');
    node = await startEmbeddedNode({ output, logger, backend: 'cpu', cpuThreads: 1, dataThreads: 0 });
    node.executor.attach('fg');
    node.executor.attach('bg');
    return {
      fg: { transferId: 'fg', manifest: mesh.manifest, output, edges: [mesh.edges[0]], tickMs: 20 },
      bg: {
        transferId: 'bg',
        manifest: mesh.manifest,
        output: target.url,
        edges: [mesh.edges[0]],
        tickMs: 20,
        prePosition: {},
      },
    };
  }

  test('background gate: a pre-position task started beside a running transfer dispatches nothing to their shared edge until the transfer has every chunk, then finishes in the idle edge', async () => {
    const { fg, bg } = await setUp();
    const fgSeen = watch(node!, 'fg');
    const bgSeen = watch(node!, 'bg');
    await actorProxy(node!.host, 'SchedulerActor', 'fg').invoke('start', fg);
    while (fgSeen.batches.length === 0) await new Promise((r) => setTimeout(r, 5));
    await actorProxy(node!.host, 'SchedulerActor', 'bg').invoke('start', bg);
    const [f, b] = await Promise.all([waitEnd(node!, 'fg'), waitEnd(node!, 'bg')]);
    expect(f).toMatchObject({ state: 'done', verified: true });
    expect(b).toMatchObject({ state: 'done', verified: true, error: undefined });
    expect(bgSeen.batches.length).toBeGreaterThan(0);
    // every fetch of the task went out after the foreground transfer had all its chunks
    expect(bgSeen.batches.filter((x) => x.at < fgSeen.doneAt)).toEqual([]);
    expect(target!.holdings()).toEqual(new Set(mesh!.manifest.chunks.keys()));
  }, 120_000);

  test('background gate: a foreground transfer started while a pre-position task runs gets the shared edge from the task’s next tick on', async () => {
    const { fg, bg } = await setUp();
    const fgSeen = watch(node!, 'fg');
    const bgSeen = watch(node!, 'bg');
    await actorProxy(node!.host, 'SchedulerActor', 'bg').invoke('start', bg);
    while (bgSeen.completed.size < 4) await new Promise((r) => setTimeout(r, 5));
    await actorProxy(node!.host, 'SchedulerActor', 'fg').invoke('start', fg);
    while (fgSeen.batches.length === 0) await new Promise((r) => setTimeout(r, 5));
    const fgFirst = fgSeen.batches[0].at;
    const [f, b] = await Promise.all([waitEnd(node!, 'fg'), waitEnd(node!, 'bg')]);
    expect(f).toMatchObject({ state: 'done', verified: true });
    expect(b).toMatchObject({ state: 'done', verified: true, error: undefined });
    // a tick of the task that read the board before the foreground's first tick may still send one batch;
    // after that, nothing until the foreground transfer has every chunk
    const during = bgSeen.batches.filter((x) => x.at > fgFirst && x.at < fgSeen.doneAt);
    expect(during.length).toBeLessThanOrEqual(1);
    expect(bgSeen.completed.size).toBe(CHUNKS);
  }, 120_000);
  test('background gate: the task’s fetches in flight on the shared edge when a foreground transfer arrives are cancelled, their chunks fetched again once the edge is idle', async () => {
    const { fg, bg } = await setUp();
    const fgSeen = watch(node!, 'fg');
    const bgSeen = watch(node!, 'bg');
    // every fetch of the task (chunk/attempt), its report, and the cancels the task sent
    const sent = new Set<string>();
    const reported = new Map<string, ChunkReport>();
    const cancelled: Array<{ key: string; at: number }> = [];
    node!.bus.subscribe<DispatchBatch>(subjects.dispatch('bg'), (b) => {
      for (const i of b.items) sent.add(`${i.chunk}/${i.attempt}`);
    });
    node!.bus.subscribe<ChunkReport>(subjects.report('bg'), (r) => {
      reported.set(`${r.chunk}/${r.attempt}`, r);
    });
    node!.bus.subscribe<CancelRequest>(subjects.cancel('bg'), (c) => {
      cancelled.push({ key: `${c.chunk}/${c.attempt}`, at: performance.now() });
    });
    const inFlight = (): string[] => [...sent].filter((k) => !reported.has(k));
    await actorProxy(node!.host, 'SchedulerActor', 'bg').invoke('start', bg);
    while (bgSeen.completed.size < 4) await new Promise((r) => setTimeout(r, 5));
    // a 16 KiB chunk at a quarter of 400 kB/s takes ~160 ms and the task keeps 4 in flight: the foreground
    // transfer starts while some are. (Taken here, not at the foreground's first dispatch: the task's next tick
    // may cancel them, and their reports arrive, before that dispatch does on a loaded machine.)
    while (inFlight().length === 0) await new Promise((r) => setTimeout(r, 1));
    const inFlightAtFg = inFlight();
    const fgStartAt = performance.now();
    await actorProxy(node!.host, 'SchedulerActor', 'fg').invoke('start', fg);
    const [f, b] = await Promise.all([waitEnd(node!, 'fg'), waitEnd(node!, 'bg')]);
    expect(f).toMatchObject({ state: 'done', verified: true });
    expect(b).toMatchObject({ state: 'done', verified: true, error: undefined });
    const yielded = cancelled.filter((c) => c.at >= fgStartAt && c.at < fgSeen.doneAt).map((c) => c.key);
    // the fetches in flight when the foreground transfer came were cancelled (one that had already ended,
    // racing the cancel, is not); the executor aborted each cancelled one that was still running
    expect(yielded.length).toBeGreaterThan(0);
    for (const k of inFlightAtFg) expect(yielded.includes(k) || reported.get(k)?.ok === true).toBe(true);
    for (const k of yielded) {
      const r = reported.get(k);
      expect(r?.ok === true || r?.reason === 'cancelled').toBe(true);
    }
    expect(b.counters.preempted).toBeGreaterThanOrEqual(yielded.length);
    // their chunks went back to pending and were fetched again: the target edge holds every chunk
    expect(bgSeen.completed.size).toBe(CHUNKS);
    expect(target!.holdings()).toEqual(new Set(mesh!.manifest.chunks.keys()));
  }, 120_000);
  test.each([
    [
      'an hour away: it stays in the background (nothing to the shared edge while the transfer runs)',
      3_600_000,
      false,
    ],
    ['too near for the chunks left: it runs as foreground beside the transfer', 100, true],
  ])(
    'deadline %s',
    async (_name, inMs, foreground) => {
      const { fg, bg } = await setUp();
      const fgSeen = watch(node!, 'fg');
      const bgSeen = watch(node!, 'bg');
      await actorProxy(node!.host, 'SchedulerActor', 'fg').invoke('start', fg);
      while (fgSeen.batches.length === 0) await new Promise((r) => setTimeout(r, 5));
      await actorProxy(node!.host, 'SchedulerActor', 'bg').invoke('start', {
        ...bg,
        prePosition: { deadlineWallMs: Date.now() + inMs },
      });
      const [f, b] = await Promise.all([waitEnd(node!, 'fg'), waitEnd(node!, 'bg')]);
      expect(f).toMatchObject({ state: 'done', verified: true });
      expect(b).toMatchObject({ state: 'done', verified: true, error: undefined });
      const during = bgSeen.batches.filter((x) => x.at < fgSeen.doneAt).length;
      if (foreground) expect(during).toBeGreaterThan(0);
      else expect(during).toBe(0);
      expect(target!.holdings()).toEqual(new Set(mesh!.manifest.chunks.keys()));
    },
    120_000,
  );
});
