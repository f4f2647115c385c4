import path from 'node:path';
import { runTransfer, startEmbeddedNode } from '../../node/index.js';
import { createSilentLogger } from '../../common/logger.js';
import { isPortalError } from '../../common/errors.js';
import { createEmbeddedHost, createMemoryStateStore } from '../../runtime/index.js';
import { EdgeActor, SchedulerActor, type PortalServices } from '../../actors/index.js';
import { actorProxy } from '../../actors/api.js';
import { createCpuTickEngine } from '../../engine/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { rejectionOf } from '../transfer/fixtures.js';

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
});
