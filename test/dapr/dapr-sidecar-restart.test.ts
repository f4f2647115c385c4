import { jest } from '@jest/globals';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { daprDefaults, type DaprActorClient } from '../../runtime/index.js';
import { actorProxy, refsOf } from '../../actors/api.js';
import {
  activeActors,
  createTransferFixture,
  daprInvoke,
  readJournal,
  startDaprTestBed,
  startTransferUntil,
  waitFor,
  waitForTransferEnd,
  type DaprTestBed,
  type TransferFixture,
} from '../helpers/dapr.js';

// Real processes on loopback (placement, Redis, two `portal serve --runtime dapr` instances with their daprd), as in
// dapr-transfer.test.ts; here only the SIDECAR of an instance dies (SIGKILL) and a new daprd takes its place with
// the same ports while the app process keeps running. The new sidecar knows nothing of the actors the app still has
// in memory (their timers died with the old one), and placement gives them back to this app: the host must drop
// those activations and let them reactivate from the state store, not serve them stale.
jest.setTimeout(360_000);

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

let bed: DaprTestBed;
let fixture: TransferFixture | undefined;

beforeAll(async () => {
  bed = await startDaprTestBed('dapr-sidecar', { env: { PORTAL_TEST_ACTORS: '1' } });
  // Both hosts must be in the placement table before actors spread over them.
  await waitFor(
    async () =>
      (await daprInvoke(bed.instances[0].daprHttpPort, 'ProbeActor', 'warmup', 'noop')).status === 200,
    60_000,
    'actor placement ready',
  );
}, 180_000);

afterAll(async () => {
  await fixture?.close();
  await bed?.stop();
});

/**
 * Calls through `client` until a call succeeds (placement may be moving actors); rejects after 120 s. Placement's
 * dissemination of a stopped sidecar's removal took over 60 s on a loaded CI machine (calls still routed to it).
 */
async function invokeUntilOk<R>(
  client: DaprActorClient,
  type: string,
  id: string,
  method: string,
  arg?: unknown,
): Promise<R> {
  let out: R | undefined;
  let last: unknown;
  await waitFor(
    async () => {
      try {
        out = await client.invoke<R>(type, id, method, arg);
        return true;
      } catch (err) {
        last = err;
        return false;
      }
    },
    120_000,
    () => `${type}/${id}.${method} (last error: ${String(last)})`,
  );
  return out as R;
}

describe('Dapr sidecar restart', () => {
  test('a transfer survives a restart of the sidecar of the instance hosting its scheduler; that app keeps serving', async () => {
    const f = (fixture = await createTransferFixture(bed.dir, {
      transferId: 'dapr-sidecar-xfer-1',
      seed: 7,
    }));
    const { chunks, manifest } = f;
    const transferId = f.request.transferId;
    const { status: running, host } = await startTransferUntil(bed.clients[0], bed.instances, f, 0.3);
    expect(running.state).toBe('running');
    expect(host).toBeGreaterThanOrEqual(0);
    const victim = bed.instances[host];
    const victimClient = bed.clients[host];
    const appPid = victim.app.child.pid;

    await victim.daprd.kill(); // the sidecar only: its timers and its view of the active actors die with it
    const killedAt = Date.now();
    const { state, journaled } = await readJournal(bed.redis, transferId);
    expect(state).toBe('running');
    expect(journaled.size).toBeGreaterThan(0);
    expect(journaled.size).toBeLessThan(chunks);

    await pause(1500);
    expect(victim.app.child.exitCode).toBeNull(); // the app outlives its sidecar
    await victim.restartDaprd();

    // Through the restarted sidecar: placement hands the scheduler back to the same app (same hash ring).
    const status = await waitForTransferEnd(
      victimClient,
      transferId,
      120_000,
      'transfer finished after the sidecar restart',
    );
    expect(status).toMatchObject({ state: 'done', verified: true, complete: chunks });
    const sha = createHash('sha256')
      .update(await readFile(f.output))
      .digest('hex');
    expect(sha).toBe(manifest.fileSha256);

    // The app that lost its sidecar is the same process, alive, hosting the scheduler again through the new sidecar.
    expect(victim.app.child.exitCode).toBeNull();
    expect(victim.app.child.pid).toBe(appPid);
    expect(
      (await actorProxy(refsOf(victimClient), 'SchedulerActor', transferId).invoke('status')).state,
    ).toBe('done');
    expect(await activeActors(victim.daprHttpPort, 'SchedulerActor')).toBe(1);

    // Resumed from the journal: no chunk the journal listed at the kill was fetched again.
    expect(status.resumedChunks - status.recoveredChunks).toBe(journaled.size);
    const after = f.fetchedAfter(killedAt);
    expect(after.filter((r) => journaled.has(r.chunk))).toEqual([]);

    console.log(
      JSON.stringify({
        chunks,
        journaledAtKill: journaled.size,
        resumedChunks: status.resumedChunks,
        recoveredChunks: status.recoveredChunks,
        requestsBeforeKill: f.fetchedAfter(0).length - after.length,
        requestsAfterKill: after.length,
        distinctAfterKill: new Set(after.map((r) => r.chunk)).size,
      }),
    );
  });

  test('while a sidecar is down its actors answer through the other one, and come back with their latest state', async () => {
    const [a, b] = bed.instances;
    const [clientA, clientB] = bed.clients;
    // An actor that placement puts on a (the hash ring of {a, b} is the same before and after a's sidecar restarts).
    let id = '';
    for (let i = 0; i < 64 && !id; i++) {
      const r = await clientA.invoke<{ pid: number }>('ProbeActor', `restart-${i}`, 'slowIncrement', {
        delayMs: 0,
      });
      if (r.pid === a.app.child.pid) id = `restart-${i}`;
    }
    expect(id).not.toBe('');
    expect((await clientA.invoke<{ value: number }>('ProbeActor', id, 'info')).value).toBe(1);

    await a.daprd.kill();
    // Placement drops a: the actor activates on b, from the state store.
    const moved = await invokeUntilOk<{ value: number; pid: number }>(
      clientB,
      'ProbeActor',
      id,
      'slowIncrement',
      { delayMs: 0 },
    );
    expect(moved).toEqual({ value: 2, pid: b.app.child.pid });

    await a.restartDaprd();
    // Back on a, whose process still held its first activation (counter 1) in memory: the state is the store's.
    const back = await invokeUntilOk<{ value: number; pid: number }>(
      clientA,
      'ProbeActor',
      id,
      'slowIncrement',
      { delayMs: 0 },
    );
    expect(back).toEqual({ value: 3, pid: a.app.child.pid });
    expect(
      JSON.parse(await bed.redis.cli('HGET', `${daprDefaults.appId}||ProbeActor||${id}||counter`, 'data')),
    ).toEqual({ n: 3 });
    expect(a.app.child.exitCode).toBeNull();
  });
});
