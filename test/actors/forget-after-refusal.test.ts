import path from 'node:path';
import { terminalStates, type TransferStatus } from '../../actors/index.js';
import { actorProxy } from '../../actors/api.js';
import { createSilentLogger } from '../../common/logger.js';
import { journalDir, startEmbeddedNode, type EmbeddedNode } from '../../node/index.js';
import { createFileStateStore } from '../../runtime/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';

// forget after a refused call on the embedded host, the twin of test/dapr/dapr-transfer-ids.test.ts (trial issue F1): both
// hosts leave only the forgotten life's activation count in the store, and the id stays unknown after the actor is
// activated again, in the same process and in the next one.

const logger = createSilentLogger();

let mesh: Mesh | undefined;
let node: EmbeddedNode | undefined;
afterEach(async () => {
  await node?.close();
  node = undefined;
  await mesh?.close();
  mesh = undefined;
});

/** The code a call rejects with (undefined when it resolves). */
const codeOf = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (err: { code?: unknown }) => err.code,
  );

/** The actor-local keys SchedulerActor `id` has in the node's journal store (opened after the node closed). */
async function storedKeys(output: string, id: string): Promise<string[]> {
  const store = createFileStateStore(journalDir(output));
  try {
    const prefix = `SchedulerActor||${id}||`;
    return (await store.keys(prefix)).map((k) => k.slice(prefix.length)).sort();
  } finally {
    await store.close();
  }
}

test.each([
  ['forget-restart', 'a restart of the done transfer', 'restart'],
  ['forget-start-other', 'a start with another output', 'start'],
])(
  'forget on the embedded host: %s, forgotten after %s was refused, leaves only its life count and stays unknown after a reactivation',
  async (id, _what, refused) => {
    mesh = await createMesh(6 * 16384 - 3, 16384, [{ holds: 'all' }]);
    const output = path.join(mesh.dir, `${id}.bin`);
    const request = { transferId: id, manifest: mesh.manifest, output, edges: mesh.edges, tickMs: 20 };
    node = await startEmbeddedNode({ output, logger, backend: 'cpu', dataThreads: 0 });
    node.executor.attach(id);
    const ref = node.host.proxy('SchedulerActor', id);
    const scheduler = actorProxy(node.host, 'SchedulerActor', id);
    await scheduler.invoke('start', request);
    let s: TransferStatus;
    while (!terminalStates.includes((s = await scheduler.invoke('status')).state))
      await new Promise((r) => setTimeout(r, 20));
    expect({ state: s.state, verified: s.verified }).toEqual({ state: 'done', verified: true });

    const refusal =
      refused === 'restart'
        ? ref.invoke('restart')
        : ref.invoke('start', { ...request, output: path.join(mesh.dir, `${id}-other.bin`) });
    expect(await codeOf(refusal)).toBe('PORTAL_TRANSFER_CONFLICT');
    expect(await scheduler.invoke('forget')).toEqual({ transferId: id, forgotten: true });
    // an unknown id is deactivated after the call (deactivateOnIdle): the second status comes from a new activation
    for (const n of [1, 2])
      expect({ n, code: await codeOf(ref.invoke('status')) }).toEqual({ n, code: 'PORTAL_UNKNOWN_TRANSFER' });
    await node.close();
    node = undefined;
    expect(await storedKeys(output, id)).toEqual(['activations']);

    // the next process
    node = await startEmbeddedNode({ output, logger, backend: 'cpu', dataThreads: 0 });
    expect(await codeOf(node.host.proxy('SchedulerActor', id).invoke('status'))).toBe(
      'PORTAL_UNKNOWN_TRANSFER',
    );
  },
);
