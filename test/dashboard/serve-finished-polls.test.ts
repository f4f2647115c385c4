/**
 * The dashboard of a real `portal serve --runtime embedded --dashboard-port 0` (dist/): a finished transfer's status
 * does not change, so it is not asked again on every poll (it was: every 500 ms, one SchedulerActor.status call per
 * finished transfer, hundreds per poll with hundreds finished), yet what the page shows stays right when an id
 * is restarted (cancelled, then `restart`) or forgotten and started again. The calls are counted from the host's own
 * counter (/metrics portal_actor_calls_total), the polls from the snapshots' `seq` (/api/state).
 */
import { jest } from '@jest/globals';
import path from 'node:path';
import type { DashboardSnapshot, TransferSnapshot } from '../../dashboard/index.js';
import { schedulerCall } from '../helpers/portal-cli.js';
import { until } from '../helpers/post-json.js';
import { dashboardServeFixture } from './serve-fixture.js';

jest.setTimeout(180_000);

const FINISHED = 8;

describe('portal serve dashboard: finished transfers', () => {
  /** The mirror answers nothing (for 10 minutes) until this is set. */
  let mirrorOpen = false;
  const f = dashboardServeFixture({
    mirrorMode: () => (mirrorOpen ? { kind: 'ok' } : { kind: 'late', ms: 600_000, then: { kind: 'ok' } }),
  });

  const state = f.dashboardState;
  const calls = async (): Promise<number> => {
    const text = await (await fetch(new URL('metrics', f.serve.dashboard))).text();
    return Number(/^portal_actor_calls_total(?:\{[^}]*\})? (\d+)$/m.exec(text)![1]);
  };
  const view = (s: DashboardSnapshot, id: string): TransferSnapshot | undefined =>
    s.transfers.find((t) => t.id === id);
  /** The first snapshot for which `ok` holds. */
  const dashboardUntil = (what: string, ok: (s: DashboardSnapshot) => boolean) =>
    until(`dashboard: ${what}`, state, ok).catch(async () => {
      const s = await state();
      const seen = s.transfers.map((t) => `${t.id}:${t.state}`).join(' ');
      throw new Error(`dashboard: ${what}: seq ${s.seq}, ${seen}\nserve: ${f.serve.output().slice(-2000)}`);
    });
  /** Waits for `n` more polls after snapshot `s`. */
  const polls = (s: DashboardSnapshot, n: number) =>
    dashboardUntil(`${n} polls after ${s.seq}`, (x) => x.seq >= s.seq + n);
  const start = async (id: string, edges = f.mesh.edges) =>
    expect(
      (
        await schedulerCall(f.serve.base, id, 'start', {
          transferId: id,
          manifest: f.mesh.manifest,
          output: path.join(f.root(), `${id}.bin`),
          overwrite: true,
          edges,
        })
      ).status,
    ).toBe(200);

  test('finished transfers cost no status call per poll; a restart and a forget-then-start show up', async () => {
    const ids = Array.from({ length: FINISHED }, (_, i) => `t-${i}`);
    for (const id of ids) await start(id);
    const allDone = await dashboardUntil(`${FINISHED} transfers done`, (s) =>
      ids.every((id) => view(s, id)?.state === 'done'),
    );
    for (const id of ids)
      expect(view(allDone, id)).toMatchObject({ verified: true, bytesDone: f.mesh.manifest.fileSize });

    // nothing runs: four polls of eight finished transfers make no actor call (they made 32). A transfer is seen
    // done while its ending turn still releases its edges (EdgeActor calls; a status call interleaves with that
    // turn), which on a loaded machine can last past the next poll (1 call, once, at load 11): first a quiet poll
    let settled = await polls(allDone, 1);
    for (let quiet = false, tries = 0; !quiet; tries++) {
      expect(tries).toBeLessThan(20); // a call on every poll is what this test is about
      const c = await calls();
      settled = await polls(settled, 1);
      quiet = (await calls()) === c;
    }
    const before = await calls();
    await polls(settled, 4);
    expect((await calls()) - before).toBe(0);

    // a transfer cancelled while its only source answers nothing, then restarted once the source answers
    await start('m-1', [
      { id: 'mirror', config: { url: f.mirror.url, kind: 'mirror', flags: 0, maxParallel: 1 } },
    ]);
    await dashboardUntil('m-1 running', (s) => view(s, 'm-1')?.state === 'running');
    expect((await schedulerCall(f.serve.base, 'm-1', 'cancel')).body).toMatchObject({ state: 'cancelled' });
    const cancelled = await dashboardUntil('m-1 cancelled', (s) => view(s, 'm-1')?.state === 'cancelled');
    await polls(cancelled, 2);
    mirrorOpen = true;
    expect((await schedulerCall(f.serve.base, 'm-1', 'restart')).status).toBe(200);
    const restarted = await dashboardUntil(
      'm-1 done after its restart',
      (s) => view(s, 'm-1')?.state === 'done',
    );
    expect(view(restarted, 'm-1')).toMatchObject({ verified: true, bytesDone: f.mesh.manifest.fileSize });
    expect(view(restarted, 'm-1')!.error).toBeUndefined();

    // t-0 forgotten and started again: the dashboard shows its new life (a second start event, a later start)
    const firstLife = view(restarted, 't-0')!;
    expect((await schedulerCall(f.serve.base, 't-0', 'forget')).status).toBe(200);
    await start('t-0');
    const again = await dashboardUntil(
      't-0 done in its second life',
      (s) => view(s, 't-0')?.state === 'done' && view(s, 't-0')!.startedAt > firstLife.startedAt,
    );
    expect(view(again, 't-0')).toMatchObject({ verified: true, bytesDone: f.mesh.manifest.fileSize });
    expect(again.events.filter((e) => e.type === 'transfer-started' && e.transfer === 't-0')).toHaveLength(2);
    expect(again.counts).toMatchObject({ done: FINISHED + 1 });
  });
});
