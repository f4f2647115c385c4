import { jest } from '@jest/globals';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TransferRequest } from '../../actors/index.js';
import { actorProxy, refsOf } from '../../actors/api.js';
import { createEdgeServer, createManifest, type EdgeServer, type Manifest } from '../../transfer/index.js';
import { daprDefaults } from '../../runtime/index.js';
import { startDaprTestBed, waitForTransferEnd, type DaprTestBed } from '../helpers/dapr.js';
import { writeRandomFile } from '../transfer/fixtures.js';

// Transfers through daprd (placement + two `portal serve --runtime dapr` instances + Redis, each instance with its
// executor) from a real loopback edge: an id with "." runs (its subjects carried the raw id, which no executor's
// subscription matched), and an id started again after `forget` runs without timeouts (the new life's attempt ids
// fell below the "transfer ended" marker the executors kept from the first life). And a forget after a refused call
// leaves nothing of the transfer in Redis but its life count (trial issue F1): the refused call's rollback emptied
// the activation's state cache, and the Dapr SDK's state manager then took the forget's deletes of `request` and
// `journal` (objects) for deletes of keys that were not there (its containsState reads an object's `length`): they
// stayed in Redis, and the next activation brought the transfer back as `done` with 0 bytes (its bitmap page, a
// string, was deleted). The embedded host's twin is test/actors/forget-after-refusal.test.ts.
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

/** The actor-local keys the Redis state store holds for SchedulerActor `id` (Dapr's `<app>||<type>||<id>||<key>`). */
async function storedKeys(id: string): Promise<string[]> {
  const prefix = `${daprDefaults.appId}||SchedulerActor||${id}||`;
  const out = await bed.redis.cli('--raw', 'KEYS', `${prefix}*`);
  return out
    .split('\n')
    .map((k) => k.trim())
    .filter((k) => k.length > 0)
    .map((k) => k.slice(prefix.length))
    .sort();
}

/** The code a call rejects with (undefined when it resolves). */
const codeOf = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (err: { code?: unknown }) => err.code,
  );

test.each([
  ['dapr-forget-restart', 'a restart of the done transfer', 'restart'],
  ['dapr-forget-restart-other', 'a start with another output', 'start'],
])(
  'forget through daprd: %s, forgotten after %s was refused, leaves only its life count in Redis and stays unknown after a reactivation',
  async (id, _what, refused) => {
    const output = join(bed.dir, `${id}.bin`);
    const scheduler = actorProxy(refsOf(bed.clients[0]), 'SchedulerActor', id);
    await scheduler.invoke('start', request(id, output));
    const done = await waitForTransferEnd(bed.clients[1], id, 60_000, `${id} ends`);
    expect({ state: done.state, verified: done.verified }).toEqual({ state: 'done', verified: true });
    expect(await storedKeys(id)).toEqual(expect.arrayContaining(['journal', 'journal-bitmap-0', 'request']));

    // the refused call: its turn fails, and the host rolls its state back
    const ref = refsOf(bed.clients[0]).proxy('SchedulerActor', id);
    const refusal =
      refused === 'restart'
        ? ref.invoke('restart')
        : ref.invoke('start', request(id, join(bed.dir, `${id}-other.bin`)));
    expect(await codeOf(refusal)).toBe('PORTAL_TRANSFER_CONFLICT');

    expect(await scheduler.invoke('forget')).toEqual({ transferId: id, forgotten: true });
    // what a forget keeps: the activation count its next life goes on from (LIVES_KEY)
    expect(await storedKeys(id)).toEqual(['activations']);
    // an unknown id is deactivated after the call (deactivateOnIdle): the second status comes from a new activation
    for (const n of [1, 2])
      expect({ n, code: await codeOf(ref.invoke('status')) }).toEqual({ n, code: 'PORTAL_UNKNOWN_TRANSFER' });
    expect(await storedKeys(id)).toEqual(['activations']);
  },
);
