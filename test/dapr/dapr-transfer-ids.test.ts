import { jest } from '@jest/globals';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TransferRequest } from '../../actors/index.js';
import { actorProxy, refsOf } from '../../actors/api.js';
import { createEdgeServer, createManifest, type EdgeServer, type Manifest } from '../../transfer/index.js';
import { startDaprTestBed, waitForTransferEnd, type DaprTestBed } from '../helpers/dapr.js';
import { writeRandomFile } from '../transfer/fixtures.js';

// Transfers through daprd (placement + two `portal serve --runtime dapr` instances + Redis, each instance with its
// executor) from a real loopback edge: an id with "." runs (its subjects carried the raw id, which no executor's
// subscription matched), and an id started again after `forget` runs without timeouts (the new life's attempt ids
// fell below the "transfer ended" marker the executors kept from the first life).
jest.setTimeout(240_000);

const CHUNK = 64 * 1024;
const CHUNKS = 12;

let bed: DaprTestBed;
let edge: EdgeServer;
let manifest: Manifest;

beforeAll(async () => {
  bed = await startDaprTestBed('dapr-transfer-ids');
  const src = await writeRandomFile(bed.dir, 'ids-source.bin', CHUNKS * CHUNK - 5, 21);
  manifest = await createManifest(src.path, { chunkSize: CHUNK });
  edge = await createEdgeServer({ id: 'ids-edge', source: { path: src.path, manifest } });
}, 180_000);
afterAll(async () => {
  await edge?.close();
  await bed?.stop();
});

const request = (transferId: string, output: string): TransferRequest => ({
  transferId,
  manifest,
  output,
  overwrite: true,
  tickMs: 50,
  edges: [{ id: 'e0', config: { url: edge.url, kind: 'portal', flags: 0, maxParallel: 4 }, holds: 'all' }],
});

test.each([['release-1.2.3'], ['dapr-life']])(
  'through daprd: %s completes, and after a forget starting it again completes with no timeout',
  async (id) => {
    const output = join(bed.dir, `${id}.bin`);
    const scheduler = actorProxy(refsOf(bed.clients[0]), 'SchedulerActor', id);
    for (const life of [1, 2]) {
      expect(await scheduler.invoke('start', request(id, output))).toMatchObject({ transferId: id });
      const s = await waitForTransferEnd(bed.clients[1], id, 60_000, `life ${life} of ${id} ends`);
      expect({ life, state: s.state, verified: s.verified, timeouts: s.counters.timeouts }).toEqual({
        life,
        state: 'done',
        verified: true,
        timeouts: 0,
      });
      expect(
        createHash('sha256')
          .update(await readFile(output))
          .digest('hex'),
      ).toBe(manifest.fileSha256);
      expect(await scheduler.invoke('forget')).toEqual({ transferId: id, forgotten: true });
    }
  },
);
