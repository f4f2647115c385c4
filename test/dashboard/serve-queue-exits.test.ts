/**
 * The dashboard of a real `portal serve --runtime embedded --max-running 1 --dashboard-port 0` (dist/) shows every
 * way a transfer leaves the queue as GET /v1/transfers lists it. A trial cancelled a queued transfer and the
 * dashboard dropped it (/api/state counted only the running one; the API listed it as cancelled): the dashboard
 * polled only transfers that had run (the scheduler registry) and listed the admission queue, so one that left the
 * queue without running was in neither. Now it polls every row of the transfer index: cancelled while queued,
 * forgotten while queued (gone from both), failed at admission (its output appeared while it waited), and restarted
 * from cancelled back into the queue (shown queued, not as its stale cancelled view). The page itself is read in
 * chromium for the cancelled one.
 */
import { jest } from '@jest/globals';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { DashboardSnapshot } from '../../dashboard/index.js';
import { schedulerCall } from '../helpers/portal-cli.js';
import { until } from '../helpers/post-json.js';
import { launchChromium, type TestBrowser } from './chromium.js';
import { dashboardServeFixture } from './serve-fixture.js';

jest.setTimeout(180_000);

describe('portal serve dashboard: transfers that leave the queue', () => {
  // the mirror answers nothing for 10 minutes: a transfer on it holds its running slot until cancelled
  const f = dashboardServeFixture({
    mirrorMode: () => ({ kind: 'late', ms: 600_000, then: { kind: 'ok' } }),
    serveArgs: ['--max-running', '1'],
  });
  let browser: TestBrowser | undefined;
  afterAll(async () => {
    await browser?.close();
  });

  const dashboardState = f.dashboardState;
  const apiList = async (): Promise<Record<string, string>> => {
    const r = (await (await fetch(`http://127.0.0.1:${f.serve.port}/v1/transfers`)).json()) as {
      transfers: { transferId: string; state: string }[];
    };
    return Object.fromEntries(r.transfers.map((t) => [t.transferId, t.state]));
  };
  const sorted = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).sort());
  /** What the dashboard shows, as id → state (the queued list as 'queued'), its counts and its queued list. */
  const shown = (s: DashboardSnapshot) => ({
    states: sorted({
      ...Object.fromEntries(s.transfers.map((t) => [t.id, t.state])),
      ...Object.fromEntries(s.queued.ids.map((id) => [id, 'queued'])),
    }),
    counts: sorted(s.counts),
    queued: s.queued.ids,
  });
  /**
   * Waits until the dashboard shows exactly `want` (id → state; the queued ones in `queue`, in that order), counted
   * by state, then checks that GET /v1/transfers lists the same.
   */
  const expectShown = async (want: Record<string, string>, queue: string[]) => {
    const counts: Record<string, number> = {};
    for (const st of Object.values(want)) counts[st] = (counts[st] ?? 0) + 1;
    const expected = { states: sorted(want), counts: sorted(counts), queued: queue };
    const same = (s: DashboardSnapshot) => JSON.stringify(shown(s)) === JSON.stringify(expected);
    const last = await until('dashboard', dashboardState, same).catch(() => dashboardState());
    expect(shown(last)).toEqual(expected);
    expect(sorted(await apiList())).toEqual(sorted(want));
  };
  const start = async (id: string) =>
    (
      await schedulerCall(f.serve.base, id, 'start', {
        transferId: id,
        manifest: f.mesh.manifest,
        output: path.join(f.root(), `${id}.bin`),
        edges: [{ id: 'mirror', config: { url: f.mirror.url, kind: 'mirror', flags: 0, maxParallel: 1 } }],
      })
    ).body as { state: string };

  test('cancelled, forgotten, failed at admission and restarted queued transfers show as the API lists them', async () => {
    expect(await start('r')).toMatchObject({ state: 'running' });
    for (const id of ['q1', 'q2', 'q3', 'q4']) expect(await start(id)).toMatchObject({ state: 'queued' });
    await expectShown({ r: 'running', q1: 'queued', q2: 'queued', q3: 'queued', q4: 'queued' }, [
      'q1',
      'q2',
      'q3',
      'q4',
    ]);

    // cancelled while queued: listed and counted as cancelled (it was dropped)
    expect((await schedulerCall(f.serve.base, 'q1', 'cancel')).body).toMatchObject({ state: 'cancelled' });
    await expectShown({ r: 'running', q1: 'cancelled', q2: 'queued', q3: 'queued', q4: 'queued' }, [
      'q2',
      'q3',
      'q4',
    ]);
    // the page shows its card, cancelled
    browser = await launchChromium();
    const page = await browser.context.newPage();
    await page.goto(f.serve.dashboard!);
    await page
      .locator('[data-testid=transfer-card][data-transfer-id="q1"] [data-testid=transfer-state]', {
        hasText: 'cancelled',
      })
      .waitFor({ timeout: 20_000 });
    await page.locator('[data-testid=queued-id][data-transfer-id="q2"]').waitFor({ timeout: 5_000 });

    // forgotten while queued: gone from both
    expect((await schedulerCall(f.serve.base, 'q2', 'forget')).status).toBe(200);
    await expectShown({ r: 'running', q1: 'cancelled', q3: 'queued', q4: 'queued' }, ['q3', 'q4']);

    // failed at admission: q3's output appears while it waits, so once promoted it fails; q4 runs next
    await writeFile(path.join(f.root(), 'q3.bin'), 'precious');
    expect((await schedulerCall(f.serve.base, 'r', 'cancel')).body).toMatchObject({ state: 'cancelled' });
    await expectShown({ r: 'cancelled', q1: 'cancelled', q3: 'failed', q4: 'running' }, []);
    expect((await schedulerCall(f.serve.base, 'q3', 'status')).body.error).toMatch(/already exists/);

    // restarted from cancelled while q4 holds the slot: back in the queue, shown queued (not its old cancelled view)
    expect((await schedulerCall(f.serve.base, 'q1', 'restart')).body).toMatchObject({ state: 'queued' });
    await expectShown({ r: 'cancelled', q1: 'queued', q3: 'failed', q4: 'running' }, ['q1']);
    // and running once q4's slot is free
    expect((await schedulerCall(f.serve.base, 'q4', 'cancel')).body).toMatchObject({ state: 'cancelled' });
    await expectShown({ r: 'cancelled', q1: 'running', q3: 'failed', q4: 'cancelled' }, []);
    await page
      .locator('[data-testid=transfer-card][data-transfer-id="q1"] [data-testid=transfer-state]', {
        hasText: 'running',
      })
      .waitFor({ timeout: 20_000 });
    expect(await page.locator('[data-testid=transfer-card][data-transfer-id="q2"]').count()).toBe(0);
  });
});
