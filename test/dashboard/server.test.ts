import { isPortalError } from '../../common/errors.js';
import { createDashboard, type Dashboard, type DashboardSnapshot } from '../../dashboard/index.js';
import { createSilentLogger } from '../../common/logger.js';
import type { TransferStatus } from '../../actors/index.js';
import { edgeView, fakeHost, transferStatus } from './fixtures.js';

const logger = createSilentLogger();

/** Reads `count` SSE data frames from /events. */
async function readEvents(url: string, count: number): Promise<DashboardSnapshot[]> {
  const ac = new AbortController();
  const res = await fetch(new URL('events', url), { signal: ac.signal });
  expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const out: DashboardSnapshot[] = [];
  let buf = '';
  try {
    while (out.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const data = buf
          .slice(0, i)
          .split('\n')
          .filter((l) => l.startsWith('data: '))
          .map((l) => l.slice(6))
          .join('\n');
        buf = buf.slice(i + 2);
        if (data) out.push(JSON.parse(data) as DashboardSnapshot);
      }
    }
  } finally {
    ac.abort();
  }
  return out;
}

describe('dashboard server on a fake actor host', () => {
  let dash: Dashboard | undefined;
  afterEach(async () => {
    await dash?.close();
    dash = undefined;
  });

  test('server: serves a self-contained page, the latest snapshot as JSON and a snapshot per poll over SSE', async () => {
    const statuses = new Map<string, TransferStatus | Error>([
      ['t1', transferStatus('t1', { bytesDone: 1024 })],
    ]);
    dash = await createDashboard({ host: fakeHost(statuses), transfers: () => ['t1'], logger, pollMs: 50 });
    expect(dash.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await (await fetch(dash.url)).text();
    expect(page).toContain('data-testid="event-list"');
    expect(page).not.toMatch(/(src|href)="https?:/); // nothing loaded from the network
    const state = (await (await fetch(new URL('api/state', dash.url))).json()) as DashboardSnapshot;
    expect(state.transfers[0]).toMatchObject({ id: 't1', bytesDone: 1024, state: 'running' });
    const frames = await readEvents(dash.url, 3);
    expect(frames).toHaveLength(3);
    expect(frames[2].seq).toBeGreaterThan(frames[0].seq);
    expect((await fetch(new URL('nope', dash.url))).status).toBe(404);
    expect((await fetch(dash.url, { method: 'POST' })).status).toBe(405);
  });

  test('metrics: /metrics exports portal_* series per transfer and edge, host activations, contributed sources and dead letters', async () => {
    const statuses = new Map<string, TransferStatus | Error>([
      [
        't1',
        transferStatus('t1', {
          bytesDone: 2048,
          ticks: 10,
          tickMsP50: 0.3,
          counters: { ...transferStatus('t1').counters, dispatched: 12, failovers: 2, corrupt: 1 },
          edges: [
            edgeView('ea', { queueDepth: 2, maxParallel: 4, flags: 1 }),
            edgeView('eb', { available: false }),
          ],
          perEdgeChunks: [5, 1],
        }),
      ],
    ]);
    dash = await createDashboard({
      host: fakeHost(statuses),
      transfers: () => ['t1'],
      logger,
      pollMs: 1000,
      engineStats: () => ({
        backend: 'cpu',
        ticks: 10,
        totalTickMs: 3,
        kernelMs: { rank: 1.5, dispatch: 0.5 },
      }),
    });
    const off = dash.registerMetricsSource(() => [
      {
        name: 'portal_stream_messages_total',
        help: 'stream messages',
        type: 'counter',
        value: 42,
        labels: { stream: 'reports' },
      },
      { name: 'not_portal', help: 'rejected', type: 'gauge', value: 1 },
    ]);
    dash.recordDeadLetter('undeliverable', 3);
    const text = await (await fetch(new URL('metrics', dash.url))).text();
    for (const line of [
      'portal_transfer_progress_ratio{transfer="t1"} 0.02',
      'portal_dispatches_total{transfer="t1"} 12',
      'portal_failovers_total{transfer="t1"} 2',
      'portal_corrupt_chunks_total{transfer="t1"} 1',
      'portal_edge_queue_depth{transfer="t1",edge="ea"} 2',
      'portal_edge_load_ratio{transfer="t1",edge="ea"} 0.5',
      'portal_edge_online{transfer="t1",edge="eb"} 0',
      'portal_edge_metered{transfer="t1",edge="ea"} 1',
      'portal_edge_chunks_total{transfer="t1",edge="ea"} 5',
      'portal_actor_activations_total{host="embedded"} 3',
      'portal_engine_info{backend="cpu"} 1',
      'portal_engine_tick_seconds_total 0.003',
      'portal_kernel_seconds_total{kernel="rank"} 0.0015',
      'portal_tick_seconds_count{transfer="t1"} 1',
      'portal_stream_messages_total{stream="reports"} 42',
      'portal_dead_letters_total{reason="undeliverable"} 3',
    ])
      expect(text).toContain(line);
    expect(text).toMatch(/^portal_edge_health\{transfer="t1",edge="eb"\} 0\.9$/m);
    expect(text).toMatch(/^portal_edge_bandwidth_bytes_per_second\{transfer="t1",edge="ea"\} 1000000$/m);
    expect(text).toMatch(/^portal_edge_rtt_seconds\{transfer="t1",edge="ea"\} 0\.02$/m);
    expect(text).not.toContain('not_portal');
    off();
    expect(await (await fetch(new URL('metrics', dash.url))).text()).not.toContain(
      'portal_stream_messages_total{',
    );
  });

  test('metrics: a finished transfer keeps its counters and outcome, not the series of a running scheduler (trial M1)', async () => {
    const running = transferStatus('t1', {
      bytesDone: 2048,
      ticks: 10,
      lastTickMs: { total: 0.4, rank: 0.1, detect: 0.1, failover: 0.05, balance: 0.05, dispatch: 0.1 },
      counters: { ...transferStatus('t1').counters, dispatched: 12, failovers: 2 },
      edges: [edgeView('ea'), edgeView('eb'), edgeView('ec'), edgeView('ed')],
      perEdgeChunks: [3, 3, 3, 3],
    });
    const statuses = new Map<string, TransferStatus | Error>([['t1', running]]);
    dash = await createDashboard({
      host: fakeHost(statuses),
      transfers: () => ['t1'],
      logger,
      pollMs: 1000,
    });
    const series = (text: string): string[] => text.split('\n').filter((l) => l.includes('transfer="t1"'));
    const whileRunning = series(await dash.metrics.metrics());
    expect(whileRunning).toContainEqual(
      expect.stringContaining('portal_edge_health{transfer="t1",edge="ed"}'),
    );
    expect(whileRunning).toContainEqual(expect.stringContaining('portal_tick_phase_seconds_bucket{'));
    // 151 series here while it runs; before, as many once it had finished, until the tracker evicted it
    expect(whileRunning.length).toBeGreaterThan(100);
    statuses.set('t1', { ...running, state: 'done', verified: true, ticks: 11, finishedAt: 2_000 });
    await dash.pollNow();
    const finished = series(await dash.metrics.metrics());
    expect(finished).toContain('portal_transfer_done{transfer="t1"} 1');
    expect(finished).toContain('portal_dispatches_total{transfer="t1"} 12');
    expect(finished).toContain('portal_failovers_total{transfer="t1"} 2');
    for (const gone of [
      'portal_edge_',
      'portal_tick_seconds',
      'portal_tick_phase_seconds',
      'portal_transfer_throughput',
    ])
      expect(finished.filter((l) => l.startsWith(gone))).toEqual([]);
    expect(finished.length).toBeLessThanOrEqual(20);
  });

  test('metrics: series of a transfer that leaves the list and is evicted disappear (labels stay bounded)', async () => {
    const statuses = new Map<string, TransferStatus | Error>([
      ['t1', transferStatus('t1', { ticks: 1 })],
      ['t2', transferStatus('t2', { ticks: 1 })],
    ]);
    let ids = ['t1', 't2'];
    dash = await createDashboard({
      host: fakeHost(statuses),
      transfers: () => ids,
      logger,
      pollMs: 1000,
      keepFinished: 0,
    });
    expect(await dash.metrics.metrics()).toContain('portal_edge_health{transfer="t1",edge="a"}');
    ids = ['t2'];
    await dash.pollNow();
    const text = await dash.metrics.metrics();
    expect(text).not.toContain('transfer="t1"');
    expect(text).toContain('portal_edge_health{transfer="t2",edge="a"}');
  });

  test('finished transfers: polled again only when their revision changes or after a forget; the views stay right', async () => {
    const statuses = new Map<string, TransferStatus | Error>([
      ['t1', transferStatus('t1', { state: 'done', verified: true, bytesDone: 4096, finishedAt: 2_000 })],
      ['t2', transferStatus('t2', { bytesDone: 1024 })],
      ['t3', transferStatus('t3', { state: 'failed', error: 'source gone', finishedAt: 3_000 })],
      ['t4', transferStatus('t4', { state: 'cancelled', error: 'cancelled', finishedAt: 4_000 })],
    ]);
    const revisions = new Map<string, number>([
      ['t1', 1],
      ['t2', 2],
      ['t3', 3],
    ]); // t4 has none: polled every time
    let ids = ['t1', 't2', 't3', 't4'];
    const host = fakeHost(statuses);
    dash = await createDashboard({
      host,
      transfers: () => ids,
      revision: (id) => revisions.get(id),
      logger,
      pollMs: 1000,
    });
    for (let i = 0; i < 3; i++) await dash.pollNow();
    expect(Object.fromEntries(host.callsOf)).toEqual({ t1: 1, t2: 4, t3: 1, t4: 4 });
    const view = (id: string) => dash!.snapshot().transfers.find((t) => t.id === id);
    expect(view('t1')).toMatchObject({ state: 'done', verified: true, bytesDone: 4096, polled: true });
    expect(view('t3')).toMatchObject({ state: 'failed', error: 'source gone', polled: true });

    // t3 restarted (a new revision) and running: asked again, shown running; once failed again, asked no more
    statuses.set('t3', transferStatus('t3', { bytesDone: 512 }));
    revisions.set('t3', 5);
    await dash.pollNow();
    expect(view('t3')).toMatchObject({ state: 'running', bytesDone: 512 });
    statuses.set(
      't3',
      transferStatus('t3', { state: 'failed', error: 'source gone again', finishedAt: 5_000 }),
    );
    await dash.pollNow();
    await dash.pollNow();
    expect(host.callsOf.get('t3')).toBe(3);
    expect(view('t3')).toMatchObject({ state: 'failed', error: 'source gone again', finishedAt: 5_000 });

    // t1 restarted and done again between two polls: its new revision alone brings the new status
    statuses.set(
      't1',
      transferStatus('t1', { state: 'done', verified: true, bytesDone: 8192, finishedAt: 6_000 }),
    );
    revisions.set('t1', 6);
    await dash.pollNow();
    await dash.pollNow();
    expect(host.callsOf.get('t1')).toBe(2);
    expect(view('t1')).toMatchObject({ state: 'done', bytesDone: 8192, finishedAt: 6_000 });

    // t1 forgotten (off the list), then its id started again: asked again even were its revision the same
    ids = ['t2', 't3', 't4'];
    dash.forgetTransfer('t1');
    await dash.pollNow();
    expect(view('t1')).toBeUndefined();
    statuses.set('t1', transferStatus('t1', { bytesDone: 100, startedAt: 7_000 }));
    ids = ['t1', 't2', 't3', 't4'];
    await dash.pollNow();
    expect(host.callsOf.get('t1')).toBe(3);
    expect(view('t1')).toMatchObject({ state: 'running', bytesDone: 100, startedAt: 7_000 });
    expect(
      dash.snapshot().events.filter((e) => e.type === 'transfer-started' && e.transfer === 't1'),
    ).toHaveLength(2);
  });

  test('errors: a failing status call is an event and a counted poll error, and bad options are typed errors', async () => {
    const statuses = new Map<string, TransferStatus | Error>([['t1', new Error('actor host stopped')]]);
    dash = await createDashboard({ host: fakeHost(statuses), transfers: () => ['t1'], logger, pollMs: 1000 });
    expect(dash.snapshot().events).toEqual([
      expect.objectContaining({ type: 'poll-error', transfer: 't1', message: 'actor host stopped' }),
    ]);
    expect(await dash.metrics.metrics()).toContain('portal_dashboard_poll_errors_total 1');
    const host = fakeHost(new Map());
    await expect(createDashboard({ host, transfers: () => [], logger, pollMs: 5000 })).rejects.toMatchObject({
      code: 'PORTAL_INVALID_ARGUMENT',
      message: expect.stringMatching(/pollMs/),
    });
    const port = Number(new URL(dash.url).port);
    const err = await createDashboard({ host, transfers: () => [], logger, port }).catch((e: unknown) => e);
    expect(isPortalError(err, 'PORTAL_DASHBOARD_LISTEN_FAILED')).toBe(true);
    expect((err as Error).cause).toMatchObject({ code: 'EADDRINUSE' });
    expect(() => dash!.recordDeadLetter('')).toThrow(/reason/);
  });
});
