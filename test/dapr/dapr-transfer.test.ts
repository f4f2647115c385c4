import { jest } from '@jest/globals';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  activeActors,
  createTransferFixture,
  readJournal,
  startDaprTestBed,
  startTransferUntil,
  waitForTransferEnd,
  type DaprTestBed,
  type TransferFixture,
} from '../helpers/dapr.js';

// A real transfer scheduled by a SchedulerActor hosted through Dapr (placement + two `portal serve --runtime dapr`
// instances with their daprd + Redis), from two rate-limited loopback edges. The instance hosting the scheduler is
// killed (app and sidecar, SIGKILL) mid-transfer: the actors reactivate on the other instance, which resumes from
// the journal in the actor state store and finishes with a verified sha256, without fetching journaled chunks again.
jest.setTimeout(240_000);

let bed: DaprTestBed;
let fixture: TransferFixture | undefined;

beforeAll(async () => {
  bed = await startDaprTestBed('dapr-transfer');
}, 180_000);

afterAll(async () => {
  await fixture?.close();
  await bed?.stop();
});

describe('Dapr transfer', () => {
  test('a transfer survives the crash of the instance hosting its scheduler and does not refetch journaled chunks', async () => {
    const f = (fixture = await createTransferFixture(bed.dir, { transferId: 'dapr-xfer-1', seed: 42 }));
    const { chunks, manifest } = f;
    const transferId = f.request.transferId;

    // Start through a's sidecar: placement decides which instance hosts the scheduler.
    const { status: running, host: victimIndex } = await startTransferUntil(
      bed.clients[0],
      bed.instances,
      f,
      0.35,
    );
    expect(running.state).toBe('running');
    expect(victimIndex).toBeGreaterThanOrEqual(0);
    const victim = bed.instances[victimIndex];
    const survivor = bed.instances[1 - victimIndex];
    const survivorClient = bed.clients[1 - victimIndex];

    await victim.kill();
    const killedAt = Date.now();
    // The journal as the state store holds it at the crash.
    const { state, journaled } = await readJournal(bed.redis, transferId);
    expect(state).toBe('running');
    expect(journaled.size).toBeGreaterThan(0);
    expect(journaled.size).toBeLessThan(chunks);

    // Through the survivor's sidecar: the first calls may fail while placement moves the actors.
    const status = await waitForTransferEnd(
      survivorClient,
      transferId,
      120_000,
      'transfer finished on the survivor',
    );
    expect(status.state).toBe('done');
    expect(status.verified).toBe(true);
    const sha = createHash('sha256')
      .update(await readFile(f.output))
      .digest('hex');
    expect(sha).toBe(manifest.fileSha256);
    expect(await activeActors(survivor.daprHttpPort, 'SchedulerActor')).toBe(1);

    // Resumed from the journal: every journaled chunk verified in place, and none of them fetched again.
    // (resumedChunks also counts chunks written before the kill but not journaled yet: recoveredChunks)
    expect(status.resumedChunks - status.recoveredChunks).toBe(journaled.size);
    const after = f.fetchedAfter(killedAt);
    const refetchedJournaled = after.filter((r) => journaled.has(r.chunk));
    expect(refetchedJournaled).toEqual([]);
    const all = f.fetchedAfter(0);

    console.log(
      JSON.stringify({
        chunks,
        journaledAtKill: journaled.size,
        resumedChunks: status.resumedChunks,
        requestsBeforeKill: all.length - after.length,
        requestsAfterKill: after.length,
        distinctAfterKill: new Set(after.map((r) => r.chunk)).size,
      }),
    );
  });
});
