import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { startEmbeddedNode, journalDir, localTransferId } from '../../node/index.js';
import { createSilentLogger } from '../../common/logger.js';
import { terminalStates, type TransferStatus } from '../../actors/index.js';
import { actorProxy } from '../../actors/api.js';
import { createFileStateStore } from '../../runtime/index.js';
import type { EdgeEstimatorState } from '../../scheduler/estimators.js';
import type { ChunkReport, DispatchBatch } from '../../common/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { runPortal } from '../helpers/portal-cli.js';

// Warm start after a crash: a real `portal fetch` process (run `npm run build` first) learns its edges, one of
// them dies, and the process is SIGKILLed; the resumed transfer starts from the estimates it journaled
// instead of cold priors.

const logger = createSilentLogger();

async function waitFor(fn: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('warm start of edge estimates after a crash', () => {
  let mesh: Mesh | undefined;
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
  });

  test('a resumed fetch adopts the journaled estimates and sends nothing to the edge that died before the SIGKILL', async () => {
    const chunks = 96;
    mesh = await createMesh(chunks * 65536, 65536, [
      // edge 0 allows 8 in flight: ParallelLimits starts an unmeasured edge at 4, its 1 MB/s sizes 15 (capped to 8)
      { holds: 'all', bandwidthBytesPerSec: 1_000_000, rttMs: 5, maxParallel: 8 },
      { holds: 'all', bandwidthBytesPerSec: 1_000_000, rttMs: 5, maxParallel: 4 },
    ]);
    const m = mesh;
    const output = path.join(m.dir, 'out.bin');
    const edgesFile = path.join(m.dir, 'edges.json');
    await writeFile(edgesFile, JSON.stringify(m.edges));
    // phase 1: a real process; edge 1 dies once 8 chunks are in, the process is killed 1.5 s of progress later
    let diedAt = 0;
    let killedAt = 0;
    const run = await runPortal(
      [
        'fetch',
        m.manifestPath,
        '--edges-file',
        edgesFile,
        '--out',
        output,
        '--progress-json',
        '--backend',
        'cpu',
      ],
      {
        timeoutMs: 60_000,
        onLine: (l, child) => {
          const x = JSON.parse(l) as { type: string; complete?: number };
          if (x.type !== 'progress') return;
          if (!diedAt && (x.complete ?? 0) >= 8) {
            diedAt = Date.now();
            void m.servers[1].goOffline();
          }
          if (diedAt && !killedAt && Date.now() - diedAt >= 1500) {
            killedAt = Date.now();
            child.kill('SIGKILL');
          }
        },
      },
    );
    expect(run.signal).toBe('SIGKILL');
    const transferId = localTransferId(m.manifest.id, output);
    // what the killed process journaled (read independently of the actors)
    const store = createFileStateStore(journalDir(output));
    const raw = await store.get(`SchedulerActor||${transferId}||edgeEstimates`);
    await store.close();
    expect(raw).toBeDefined();
    const saved = JSON.parse(raw!) as {
      savedAt: number;
      edges: Record<string, EdgeEstimatorState>;
      deliveredBytesPerSec: Record<string, number>;
    };
    const alive = saved.edges[m.edges[0].id];
    const dead = saved.edges[m.edges[1].id];
    expect(alive.samples).toBeGreaterThan(0);
    expect(alive.bw).toBeGreaterThan(0);
    expect(dead.available).toBe(false);
    // the rate edge 0 delivered (its token bucket: 1 MB/s), which sizes its fetches in flight on resume
    expect(saved.deliveredBytesPerSec[m.edges[0].id]).toBeGreaterThan(600_000);
    expect(saved.deliveredBytesPerSec[m.edges[0].id]).toBeLessThan(1_600_000);

    // phase 2: the same fetch resumed in a new node
    const node = await startEmbeddedNode({ output, logger });
    try {
      node.executor.attach(transferId);
      const toDead: ChunkReport[] = [];
      // fetches in flight on edge 0 until its first report: the resumed scheduler's first window there
      let inFlight0 = 0;
      let firstWindow0 = 0;
      let reported0 = false;
      node.bus.subscribe<DispatchBatch>(`portal.transfer.${transferId}.dispatch`, (b) => {
        for (const i of b.items) if (i.edgeIndex === 0) inFlight0++;
        if (!reported0) firstWindow0 = Math.max(firstWindow0, inFlight0);
      });
      node.bus.subscribe<ChunkReport>(`portal.transfer.${transferId}.report`, (r) => {
        if (r.edgeIndex === 1) toDead.push(r);
        if (r.edgeIndex === 0) {
          reported0 = true;
          inFlight0--;
        }
      });
      const actor = actorProxy(node.host, 'SchedulerActor', transferId);
      // the journal resumes the transfer on activation; start answers with its status
      await actor.invoke('status');
      const est0 = await actorProxy(node.host, 'EdgeActor', m.edges[0].id).invoke('estimates');
      const view1 = await actorProxy(node.host, 'EdgeActor', m.edges[1].id).invoke('snapshot');
      // warm: the estimates the killed process had (samples only grow from there), the dead edge offline
      expect(est0.samples).toBeGreaterThanOrEqual(alive.samples);
      expect(view1.available).toBe(false);
      let s: TransferStatus = await actor.invoke('status');
      await waitFor(async () => terminalStates.includes((s = await actor.invoke('status')).state));
      expect(s.state).toBe('done');
      expect(s.verified).toBe(true);
      expect(s.resumedChunks).toBeGreaterThan(8);
      // cold, the resumed scheduler would have sent chunks to edge 1 until three connection failures marked it offline
      expect(toDead).toEqual([]);
      // and would have started edge 0 at 4 in flight, not the 8 its journaled rate allows
      expect(firstWindow0).toBe(8);
      const sha = createHash('sha256')
        .update(await readFile(output))
        .digest('hex');
      expect(sha).toBe(m.manifest.fileSha256);
    } finally {
      await node.close();
    }
  });
});
