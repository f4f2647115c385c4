import path from 'node:path';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { runTransfer, startEmbeddedNode } from '../../node/index.js';
import { createSilentLogger } from '../../common/logger.js';
import { isPortalError } from '../../common/errors.js';
import { createEmbeddedHost, createMemoryStateStore } from '../../runtime/index.js';
import { EdgeActor, SchedulerActor, type PortalServices } from '../../actors/index.js';
import { actorProxy } from '../../actors/api.js';
import { createCpuTickEngine } from '../../engine/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { rejectionOf } from '../transfer/fixtures.js';
import { createFileStateStore } from '../../runtime/file-state-store.js';
import { JOURNAL_KEY } from '../../actors/journal-pages.js';
import { journalDir } from '../../node/embedded-node.js';
import type { TransferStatus } from '../../actors/index.js';

// SchedulerActor's lifecycle on the embedded host, in process (the HTTP side is test/api/embedded-api.test.ts).

const logger = createSilentLogger();

describe('SchedulerActor lifecycle', () => {
  let mesh: Mesh | undefined;
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
  });

  test('a start that fails inside the actor leaves no state, timer or reminder, and the id stays unknown', async () => {
    mesh = await createMesh(8 * 16384, 16384, [{ holds: 'all' }]);
    const store = createMemoryStateStore();
    const engine = createCpuTickEngine();
    // no bus: the start fails after the edges were configured, when it subscribes to its reports
    const services: PortalServices = { tickEngine: engine };
    const host = createEmbeddedHost({ store, logger, services });
    host.register(SchedulerActor);
    host.register(EdgeActor);
    const actor = actorProxy(host, 'SchedulerActor', 't-atomic');
    const request = {
      transferId: 't-atomic',
      manifest: mesh.manifest,
      output: path.join(mesh.dir, 'out.bin'),
      edges: mesh.edges,
    };
    const err = await rejectionOf(() => actor.invoke('start', request));
    expect(isPortalError(err, 'PORTAL_CONFIG_INVALID')).toBe(true);
    expect(await rejectionOf(() => actor.invoke('status'))).toMatchObject({
      code: 'PORTAL_UNKNOWN_TRANSFER',
    });
    const keys = await store.keys('');
    expect(keys.filter((k) => k.includes('t-atomic'))).toEqual([]);
    await new Promise((r) => setTimeout(r, 200));
    expect(host.stats().timersFired).toBe(0);
    // the same with a tickMs the actor refuses before anything happens
    const fast = await rejectionOf(() =>
      actor.invoke('start', { ...request, tickMs: 'fast' as unknown as number }),
    );
    expect(fast).toMatchObject({
      code: 'PORTAL_INVALID_ARGUMENT',
      message: expect.stringContaining('tickMs'),
    });
    await host.stop();
    await engine.close();
  });

  test('after a reactivation a finished transfer reports what its journal says, not complete: 0', async () => {
    const chunks = 24;
    mesh = await createMesh(chunks * 16384 - 7, 16384, [{ holds: 'all' }]);
    const output = path.join(mesh.dir, 'out.bin');
    const transferId = mesh.manifest.id;
    const done = await runTransfer({
      request: { transferId, manifest: mesh.manifest, output, edges: mesh.edges },
      logger,
      backend: 'cpu',
    });
    expect(done).toMatchObject({ state: 'done', verified: true, complete: chunks });
    // a new host on the same journal (as after a restart): the actor is activated from its state alone
    const node = await startEmbeddedNode({ output, logger, backend: 'cpu' });
    try {
      const s = await actorProxy(node.host, 'SchedulerActor', transferId).invoke('status');
      expect(s).toMatchObject({
        state: 'done',
        verified: true,
        total: chunks,
        complete: chunks,
        bytesDone: mesh.manifest.fileSize,
      });
    } finally {
      await node.close();
    }
  });
  /**
   * The journal of the finished transfer beside `output` made as a crash leaves it while the transfer was
   * verifying (its whole-file hash, its publish): state `verifying`, not yet verified, no output size or time.
   */
  async function crashedWhileVerifying(
    output: string,
    transferId: string,
    state: 'verifying' | 'running' = 'verifying',
  ): Promise<void> {
    const store = createFileStateStore(journalDir(output));
    try {
      const key = `SchedulerActor||${transferId}||${JOURNAL_KEY}`;
      const j = JSON.parse((await store.get(key))!) as Record<string, unknown>;
      expect(j.state).toBe('done');
      await store.transaction([
        {
          op: 'upsert',
          key,
          value: JSON.stringify({
            ...j,
            state,
            verified: false,
            output: undefined,
            finishedAt: undefined,
          }),
        },
      ]);
    } finally {
      await store.close();
    }
  }

  /**
   * A transfer of `chunks` chunks run to done on a new mesh (published as `out.bin`), then its journal made as a crash
   * while it was verifying leaves it (crashedWhileVerifying).
   */
  async function finishedThenCrashedWhileVerifying(
    chunks: number,
    state: 'verifying' | 'running' = 'verifying',
  ) {
    const m = (mesh = await createMesh(chunks * 16384 - 5, 16384, [{ holds: 'all' }]));
    const output = path.join(m.dir, 'out.bin');
    const transferId = m.manifest.id;
    const request = {
      transferId,
      manifest: m.manifest,
      output: `${output}.portal-part`,
      publishAs: output,
      edges: m.edges,
    };
    expect(await runTransfer({ request, logger, backend: 'cpu' })).toMatchObject({
      state: 'done',
      verified: true,
    });
    await crashedWhileVerifying(output, transferId, state);
    return { m, output, transferId, request };
  }

  /** The status of `transferId` on a new host over the journal beside `output`, once it is no longer running. */
  async function statusAfterRestart(output: string, transferId: string): Promise<TransferStatus> {
    const node = await startEmbeddedNode({ output, logger, backend: 'cpu' });
    try {
      // its chunks, if it runs, are fetched by this node's executor (as runTransfer attaches it)
      node.executor.attach(transferId);
      const actor = actorProxy(node.host, 'SchedulerActor', transferId);
      for (let i = 0; i < 200; i++) {
        const s = await actor.invoke('status');
        if (s.state !== 'running' && s.state !== 'verifying') return s;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('still running or verifying after 10 s');
    } finally {
      await node.close();
    }
  }

  const served = (m: Mesh): number => m.servers.reduce((a, s) => a + s.stats().bytesServed, 0);

  test('a crash after the publish, before the journal said done: the published file is the transfer, nothing is fetched again', async () => {
    // before: the resume found no partial file and fetched every chunk again (the demo's kill at 64 of 64: exit 1)
    const chunks = 12;
    const { m, output, transferId, request } = await finishedThenCrashedWhileVerifying(chunks);
    const before = served(m);
    expect(await statusAfterRestart(output, transferId)).toMatchObject({
      state: 'done',
      verified: true,
      complete: chunks,
      resumedChunks: chunks,
    });
    expect(served(m) - before).toBe(0);
    expect(existsSync(`${output}.portal-part`)).toBe(false);
    expect(await readFile(output)).toEqual(await readFile(m.source));
    // a start of it again (what a rerun does) answers done at once
    const again = await runTransfer({ request, logger, backend: 'cpu' });
    expect(again).toMatchObject({ state: 'done', verified: true });
    expect(served(m) - before).toBe(0);
  });

  test('a crash after the publish, its journal still `running` (the finishing turn saves its states when it ends): done, nothing fetched', async () => {
    // before: the demo's kill at 64 of 64 in a CI run: no partial file, 0 chunks kept, all 64 fetched again
    const chunks = 12;
    const { m, output, transferId } = await finishedThenCrashedWhileVerifying(chunks, 'running');
    const before = served(m);
    expect(await statusAfterRestart(output, transferId)).toMatchObject({
      state: 'done',
      verified: true,
      complete: chunks,
      resumedChunks: chunks,
    });
    expect(served(m) - before).toBe(0);
    expect(await readFile(output)).toEqual(await readFile(m.source));
  });

  test('a crash while verifying, before the publish: the next activation finishes it from the partial file, without a start and without fetching', async () => {
    // before: it stayed `verifying` (no run of it) until a client started it again
    const chunks = 12;
    const { m, output, transferId } = await finishedThenCrashedWhileVerifying(chunks);
    await rename(output, `${output}.portal-part`);
    const before = served(m);
    expect(await statusAfterRestart(output, transferId)).toMatchObject({
      state: 'done',
      verified: true,
      complete: chunks,
    });
    expect(served(m) - before).toBe(0);
    expect(existsSync(`${output}.portal-part`)).toBe(false);
    expect(await readFile(output)).toEqual(await readFile(m.source));
  });

  test('a crash after the publish, and then another file of the same size written at the name: not taken as the transfer, and not replaced', async () => {
    const chunks = 12;
    const { m, output, transferId } = await finishedThenCrashedWhileVerifying(chunks);
    const other = Buffer.alloc(m.manifest.fileSize, 7);
    await writeFile(output, other);
    const s = await statusAfterRestart(output, transferId);
    // fetched again into the partial file, whose publish refuses to replace the file found at the name
    expect(s).toMatchObject({ state: 'failed', error: expect.stringContaining('PORTAL_OUTPUT_REFUSED') });
    expect(await readFile(output)).toEqual(other);
    expect(await readFile(`${output}.portal-part`)).toEqual(await readFile(m.source));
  });
});
