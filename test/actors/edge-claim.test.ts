import { createSilentLogger } from '../../common/logger.js';
import { ManualClock } from '../../common/clock.js';
import { createEmbeddedHost, createMemoryStateStore } from '../../runtime/index.js';
import { EdgeActor } from '../../actors/index.js';
import { actorProxy } from '../../actors/api.js';
import { repeatedEdgeId } from '../../actors/edge-ids.js';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { terminalStates, type TransferEdge, type TransferStatus } from '../../actors/index.js';
import { startEmbeddedNode } from '../../node/index.js';
import { startBadMirror } from '../helpers/bad-mirror.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';

// EdgeActor.claim / checkClaim / release on the embedded host: one edge id is one server for every transfer.

const cfg = (url: string, kind: 'mirror' | 'portal' = 'mirror') => ({ url, kind, flags: 0, maxParallel: 4 });

describe('EdgeActor claims', () => {
  test('a URL whose scheme is upper case is taken in lower case; a URL that is not http(s) is refused naming it, redacted', async () => {
    const h = createEmbeddedHost({
      store: createMemoryStateStore(),
      logger: createSilentLogger(),
      services: {},
      clock: new ManualClock(),
    });
    h.register(EdgeActor);
    const edge = actorProxy(h, 'EdgeActor', 'm-case');
    await edge.invoke('claim', { transferId: 'A', config: cfg('HTTP://good/f.bin') });
    expect((await edge.invoke('snapshot')).url).toBe('http://good/f.bin');
    // the same server in either spelling is one claim, not a conflict
    await edge.invoke('claim', { transferId: 'B', config: cfg('Http://good/f.bin') });
    await expect(
      actorProxy(h, 'EdgeActor', 'm-ftp').invoke('claim', {
        transferId: 'A',
        config: cfg('ftp://alice:pw@files/f.bin'),
      }),
    ).rejects.toMatchObject({
      code: 'PORTAL_INVALID_ARGUMENT',
      message: 'url: expected an http(s) URL, got "ftp://***@files/f.bin"',
    });
    await h.stop();
  });

  test('another transfer with another URL or kind is refused 409 while one uses the edge; the same URL is shared; after release a new URL starts the estimates afresh', async () => {
    const store = createMemoryStateStore();
    const make = () => {
      const h = createEmbeddedHost({
        store,
        logger: createSilentLogger(),
        services: {},
        clock: new ManualClock(),
      });
      h.register(EdgeActor);
      return h;
    };
    let host = make();
    let edge = actorProxy(host, 'EdgeActor', 'm9');
    await edge.invoke('claim', { transferId: 'A', config: cfg('http://good/f.bin') });
    await edge.invoke('observe', { samples: [{ ok: true, bytes: 262_144, firstByteMs: 2, transferMs: 20 }] });
    expect((await edge.invoke('snapshot')).samples).toBe(1);
    const conflict =
      /edge id "m9" is in use by transfer "A" as mirror http:\/\/good\/f\.bin, not (mirror http:\/\/dead\/x|portal http:\/\/good\/f\.bin)/;
    for (const config of [cfg('http://dead/x'), cfg('http://good/f.bin', 'portal')]) {
      await expect(edge.invoke('checkClaim', { transferId: 'B', config })).rejects.toMatchObject({
        code: 'PORTAL_TRANSFER_CONFLICT',
        message: expect.stringMatching(conflict),
      });
      await expect(edge.invoke('claim', { transferId: 'B', config })).rejects.toMatchObject({
        code: 'PORTAL_TRANSFER_CONFLICT',
      });
    }
    // the refused claims changed nothing
    expect(await edge.invoke('snapshot')).toMatchObject({
      url: 'http://good/f.bin',
      kind: 'mirror',
      samples: 1,
    });
    // the same server under the same id: shared, estimates kept
    await edge.invoke('claim', { transferId: 'B', config: cfg('http://good/f.bin') });
    expect((await edge.invoke('snapshot')).samples).toBe(1);
    // the users survive a restart of the host (kept with the configuration)
    await host.stop();
    host = make();
    edge = actorProxy(host, 'EdgeActor', 'm9');
    await expect(
      edge.invoke('checkClaim', { transferId: 'C', config: cfg('http://dead/x') }),
    ).rejects.toMatchObject({
      code: 'PORTAL_TRANSFER_CONFLICT',
    });
    expect(await edge.invoke('release', { transferId: 'A' })).toEqual({ users: 1 });
    expect(await edge.invoke('release', { transferId: 'B' })).toEqual({ users: 0 });
    // nobody uses it: a new URL is taken, and what was learned of the old server is not carried over
    const v = await edge.invoke('claim', { transferId: 'C', config: cfg('http://new/f.bin') });
    expect(v).toMatchObject({ url: 'http://new/f.bin', samples: 0, available: true });
    await host.stop();
  });

  test('repeatedEdgeId names the first id given twice and both places', () => {
    expect(repeatedEdgeId([{ id: 'a' }, { id: 'b' }])).toBeUndefined();
    expect(repeatedEdgeId([{ id: 'a' }, { id: 'b' }, { id: 'b' }, { id: 'a' }])).toEqual({
      id: 'b',
      first: 1,
      at: 2,
    });
  });

  test('checkClaim of a configured edge answers beside a turn that awaits a state write; release is saved with a later write', async () => {
    const inner = createMemoryStateStore();
    let gate: Promise<void> | undefined;
    let writes = 0;
    const store = {
      ...inner,
      get: inner.get.bind(inner),
      keys: inner.keys.bind(inner),
      close: inner.close.bind(inner),
      async transaction(ops: Parameters<typeof inner.transaction>[0]) {
        writes++;
        await gate;
        return inner.transaction(ops);
      },
    };
    const host = createEmbeddedHost({
      store,
      logger: createSilentLogger(),
      services: {},
      clock: new ManualClock(),
    });
    host.register(EdgeActor);
    const edge = actorProxy(host, 'EdgeActor', 'm1');
    await edge.invoke('claim', { transferId: 'A', config: cfg('http://good/f.bin') });
    // a turn that awaits its state write: B's claim of the same URL
    let open!: () => void;
    gate = new Promise<void>((r) => (open = r));
    const claimB = edge.invoke('claim', { transferId: 'B', config: cfg('http://good/f.bin') });
    await new Promise((r) => setTimeout(r, 20));
    // answered while that turn waits: no conflict for the same URL, 409 for another one
    await expect(
      edge.invoke('checkClaim', { transferId: 'C', config: cfg('http://good/f.bin') }),
    ).resolves.toEqual({ ok: true });
    await expect(
      edge.invoke('checkClaim', { transferId: 'C', config: cfg('http://other/f.bin') }),
    ).rejects.toMatchObject({ code: 'PORTAL_TRANSFER_CONFLICT' });
    // a call that is not a checkClaim waits for the turn
    let snapshotDone = false;
    const snap = edge.invoke('snapshot').then(() => (snapshotDone = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(snapshotDone).toBe(false);
    open();
    gate = undefined;
    await claimB;
    await snap;
    // a release writes nothing of its own (it rides on the edge's next save)
    const before = writes;
    expect(await edge.invoke('release', { transferId: 'A' })).toEqual({ users: 1 });
    expect(writes).toBe(before);
    // ... and is saved when the actor goes: after the host's stop only B still uses the edge
    await host.stop();
    const again = createEmbeddedHost({
      store,
      logger: createSilentLogger(),
      services: {},
      clock: new ManualClock(),
    });
    again.register(EdgeActor);
    expect(await actorProxy(again, 'EdgeActor', 'm1').invoke('release', { transferId: 'B' })).toEqual({
      users: 0,
    });
    await again.stop();
  });
});

describe('an edge still counting a transfer that ended (a crash within ~1 s of its end left the release unsaved)', () => {
  let mesh: Mesh;
  beforeAll(async () => {
    mesh = await createMesh(4 * 16384, 16384, [{}, {}]);
  });
  afterAll(async () => {
    await mesh?.close();
  });

  test('a start naming the edge with another URL releases it for the ended and the unknown transfer and runs; one still running refuses it', async () => {
    const node = await startEmbeddedNode({
      output: path.join(mesh.dir, 'first.bin'),
      logger: createSilentLogger(),
      backend: 'cpu',
    });
    try {
      const as = (id: string, e: TransferEdge): TransferEdge => ({ ...e, id });
      const run = async (id: string, edge: TransferEdge): Promise<TransferStatus> => {
        node.executor.attach(id);
        const actor = actorProxy(node.host, 'SchedulerActor', id);
        await actor.invoke('start', {
          transferId: id,
          manifest: mesh.manifest,
          output: path.join(mesh.dir, `${id}.bin`),
          edges: [edge],
        });
        let s: TransferStatus;
        while (!terminalStates.includes((s = await actor.invoke('status')).state))
          await new Promise((r) => setTimeout(r, 20));
        return s;
      };
      const [first, second] = mesh.edges;
      expect((await run('d-ended', as('shared', first))).state).toBe('done');
      // what the crash leaves: the ended transfer counted again, and one the host no longer knows (forgotten)
      const edge = actorProxy(node.host, 'EdgeActor', 'shared');
      for (const transferId of ['d-ended', 'd-unknown'])
        await edge.invoke('claim', { transferId, config: { ...first.config } });
      expect(await edge.invoke('listUsers')).toEqual({ users: ['d-ended', 'd-unknown'] });
      // another URL under the id: both are released (their own actors say they ended), and the start runs
      expect(await run('d-new', as('shared', second))).toMatchObject({ state: 'done', verified: true });
      expect(await edge.invoke('snapshot')).toMatchObject({ url: second.config.url });
      expect(await edge.invoke('listUsers')).toEqual({ users: [] });
      // a user that still runs is kept (its actor says so), and the refusal names it as before
      const stall = await startBadMirror(await readFile(mesh.source), () => ({ kind: 'stall' }));
      try {
        const busy = {
          id: 'busy',
          config: { url: stall.url, kind: 'mirror' as const, flags: 0, maxParallel: 1 },
        };
        node.executor.attach('d-running');
        const running = actorProxy(node.host, 'SchedulerActor', 'd-running');
        const body = { manifest: mesh.manifest, edges: [busy] };
        await running.invoke('start', {
          ...body,
          transferId: 'd-running',
          output: path.join(mesh.dir, 'r.bin'),
        });
        await expect(
          actorProxy(node.host, 'SchedulerActor', 'd-other').invoke('start', {
            ...body,
            transferId: 'd-other',
            output: path.join(mesh.dir, 'o.bin'),
            edges: [as('busy', second)],
          }),
        ).rejects.toMatchObject({
          code: 'PORTAL_TRANSFER_CONFLICT',
          message: expect.stringContaining('edge id "busy" is in use by transfer "d-running"'),
        });
        await running.invoke('cancel');
      } finally {
        await stall.close();
      }
    } finally {
      await node.close();
    }
  }, 60_000);
});
