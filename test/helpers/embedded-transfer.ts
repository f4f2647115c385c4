/**
 * One transfer of a test mesh's file on an embedded node, polled to its end: the node started with the output's
 * folder as its root, its executor attached to the transfer, `start` invoked, then `status` every 20 ms until a
 * terminal state. The node is closed before it returns.
 */
import { terminalStates, type TransferStatus } from '../../actors/index.js';
import { actorProxy } from '../../actors/api.js';
import { createSilentLogger } from '../../common/logger.js';
import { startEmbeddedNode } from '../../node/index.js';
import type { Mesh } from './mesh.js';

/** The last status of the transfer of `mesh`'s file to `output` (an absolute path in an existing folder). */
export async function transferToEnd(mesh: Mesh, output: string): Promise<TransferStatus> {
  const node = await startEmbeddedNode({ output, logger: createSilentLogger(), backend: 'cpu' });
  try {
    node.executor.attach(mesh.manifest.id);
    const actor = actorProxy(node.host, 'SchedulerActor', mesh.manifest.id);
    await actor.invoke('start', {
      transferId: mesh.manifest.id,
      manifest: mesh.manifest,
      output,
      edges: mesh.edges,
    });
    let s: TransferStatus;
    while (!terminalStates.includes((s = await actor.invoke('status')).state))
      await new Promise((r) => setTimeout(r, 20));
    return s;
  } finally {
    await node.close();
  }
}
