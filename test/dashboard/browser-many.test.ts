import type { TransferStatus } from '../../actors/index.js';
import { createSilentLogger } from '../../common/logger.js';
import { createDashboard, type Dashboard } from '../../dashboard/index.js';
import { zeroCounters } from '../../scheduler/index.js';
import { launchChromium, type TestBrowser } from './chromium.js';
import { fakeHost, transferStatus } from './fixtures.js';

// A trial with 55 transfers on one serve: the 6 queued ones were neither on the page nor in /api/state, events read
// "1 chunk failover (15 total)" without the transfer, and the page was 25 514 px tall with the finished cards first
// and the running ones at the bottom. Here 16 running, 6 queued, 3 failed and 250 done, in a real chromium.
const logger = createSilentLogger();

describe('dashboard in a real browser with many transfers', () => {
  let dash: Dashboard | undefined;
  let browser: TestBrowser | undefined;
  afterEach(async () => {
    await browser?.close().catch(() => undefined);
    await dash?.close();
  });

  test('running cards first, queued ones listed and counted, finished ones one line each and capped, every event names its transfer', async () => {
    const statuses = new Map<string, TransferStatus>();
    const running = Array.from({ length: 16 }, (_, i) => `run-${String(i).padStart(2, '0')}`);
    const failed = ['fail-a', 'fail-b', 'fail-c'];
    const done = Array.from({ length: 250 }, (_, i) => `done-${i}`);
    // created in the trial's order: finished ones first
    done.forEach((id, i) =>
      statuses.set(
        id,
        transferStatus(id, {
          state: 'done',
          verified: true,
          complete: 100,
          pending: 0,
          bytesDone: 102_400,
          finishedAt: 2_000 + i,
        }),
      ),
    );
    failed.forEach((id, i) =>
      statuses.set(
        id,
        transferStatus(id, { state: 'failed', error: `every source failed (${id})`, finishedAt: 1_500 + i }),
      ),
    );
    for (const id of running) statuses.set(id, transferStatus(id, { complete: 30, bytesDone: 30 * 1024 }));
    const queued = ['q-1', 'q-2', 'q-3', 'q-4', 'q-5', 'q-6'];
    dash = await createDashboard({
      host: fakeHost(statuses),
      transfers: () => [...statuses.keys()],
      queued: () => queued,
      logger,
      pollMs: 200,
    });
    // /api/state has them too
    const state = (await (await fetch(new URL('api/state', dash.url))).json()) as {
      counts: Record<string, number>;
      queued: { total: number; ids: string[] };
      transfers: { id: string; state: string }[];
    };
    expect(state.counts).toEqual({ running: 16, queued: 6, failed: 3, done: 250 });
    expect(state.queued).toEqual({ total: 6, ids: queued });
    expect(state.transfers.slice(0, 17).map((t) => t.state)).toEqual([
      ...running.map(() => 'running'),
      'failed',
    ]);

    browser = await launchChromium();
    const page = await browser.context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(dash.url);
    await page.getByTestId('count-done').waitFor({ timeout: 10_000 });

    const counts = await page
      .locator('[data-testid=state-counts] .count')
      .evaluateAll((els) => els.map((e) => [e.getAttribute('data-state'), e.getAttribute('data-value')]));
    expect(counts).toEqual([
      ['running', '16'],
      ['queued', '6'],
      ['failed', '3'],
      ['done', '250'],
    ]);
    expect(await page.getByTestId('queued-total').textContent()).toBe('(6)');
    expect(await page.getByTestId('queued-id').evaluateAll((els) => els.map((e) => e.textContent))).toEqual(
      queued,
    );

    // running first, then the failed ones, then the most recently finished done ones; 50 finished cards at most
    const cards = await page
      .getByTestId('transfer-card')
      .evaluateAll((els) =>
        els.map((e) => [e.getAttribute('data-transfer-id'), e.classList.contains('compact')]),
      );
    expect(cards.map((c) => c[0])).toEqual([
      ...running,
      ...failed.slice().reverse(),
      ...done.slice().reverse().slice(0, 47),
    ]);
    expect(cards.map((c) => c[1])).toEqual([...running.map(() => false), ...Array<boolean>(50).fill(true)]);
    const more = page.getByTestId('more-finished');
    expect(await more.getAttribute('data-value')).toBe('203');
    expect(await more.textContent()).toContain('203 more finished transfers not shown (done 203)');
    expect(await page.locator('[data-transfer-id="fail-a"] [data-testid=transfer-error]').textContent()).toBe(
      'every source failed (fail-a)',
    );
    // a finished card is one line: the whole finished part is shorter than two running cards
    const box = async (sel: string) => (await page.locator(sel).boundingBox())!;
    const runningCard = await box('[data-transfer-id="run-00"]');
    const finishedTop = (await box('[data-transfer-id="fail-c"]')).y;
    const finishedHeight = (await box('[data-testid=more-finished]')).y - finishedTop;
    expect(finishedHeight / 50).toBeLessThan(60);
    expect(finishedHeight).toBeLessThan(runningCard.height * 10);
    const pageHeight = Number(await page.evaluate('document.documentElement.scrollHeight'));
    expect(pageHeight).toBeLessThan(16 * (runningCard.height + 16) + finishedHeight + 1000);

    // "details" opens a finished card: its edge table shows
    await page.locator('[data-transfer-id="done-249"] [data-testid=card-toggle]').click();
    await page
      .locator('[data-transfer-id="done-249"] [data-testid=edge-table]')
      .waitFor({ state: 'visible' });
    expect(await page.locator('[data-transfer-id="done-249"]').getAttribute('class')).toBe('card');

    // a failover of one running transfer: the event names it
    statuses.set('run-07', transferStatus('run-07', { counters: { ...zeroCounters(), failovers: 3 } }));
    const ev = page.locator('[data-testid=event-item][data-type=failover]');
    await ev.waitFor({ timeout: 5_000 });
    expect(await ev.locator('.what').textContent()).toBe('transfer run-07: 3 chunk failovers (3 total)');
    expect(await ev.getAttribute('data-transfer')).toBe('run-07');

    // q-1 gets a slot: it leaves the queued list and runs among the running cards
    queued.shift();
    statuses.set('q-1', transferStatus('q-1'));
    await page.locator('[data-testid=count-queued][data-value="5"]').waitFor({ timeout: 5_000 });
    expect(await page.getByTestId('queued-id').count()).toBe(5);
    expect(
      await page
        .getByTestId('transfer-card')
        .evaluateAll((els) => els.slice(0, 17).map((e) => e.getAttribute('data-state'))),
    ).toEqual(Array<string>(17).fill('running'));
    expect(pageErrors).toEqual([]);
  });
});
