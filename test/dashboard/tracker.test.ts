import { createTracker, FINISHED_WITH_HISTORY, type PollResult } from '../../dashboard/index.js';
import type { TransferStatus } from '../../actors/index.js';
import { edgeView, transferStatus } from './fixtures.js';

const poll = (
  at: number,
  statuses: Record<string, TransferStatus | Error>,
  polled = Object.keys(statuses),
): PollResult => ({
  at,
  polled,
  statuses: new Map(Object.entries(statuses)),
  hostKind: 'embedded',
  hostStats: null,
  engineStats: { backend: 'cpu', ticks: 5, totalTickMs: 1.5, nested: { x: 1 } },
});

describe('dashboard tracker', () => {
  test('tracker: running first, then queued, failed and done (the most recently finished first); counts per state; waiting ids listed and counted', () => {
    const t = createTracker({ pollMs: 500 });
    const statuses = {
      d1: transferStatus('d1', { state: 'done', finishedAt: 5_000 }),
      f1: transferStatus('f1', { state: 'failed', finishedAt: 4_000, error: 'no source' }),
      r1: transferStatus('r1'),
      d2: transferStatus('d2', { state: 'done', finishedAt: 9_000 }),
      q1: transferStatus('q1', { state: 'queued' }),
      c1: transferStatus('c1', { state: 'cancelled', finishedAt: 1_000 }),
      v1: transferStatus('v1', { state: 'verifying' }),
      r2: transferStatus('r2'),
    };
    const waiting = Array.from({ length: 130 }, (_, i) => `w${i}`);
    // q1 is polled (it ran before) and waits again: counted once, not listed among the ids that are not polled
    const s = t.update({ ...poll(10_000, statuses), queued: ['q1', ...waiting] });
    expect(s.transfers.map((v) => v.id)).toEqual(['r1', 'r2', 'v1', 'q1', 'f1', 'c1', 'd2', 'd1']);
    expect(s.counts).toEqual({ running: 2, verifying: 1, queued: 131, failed: 1, cancelled: 1, done: 2 });
    expect(s.queued.total).toBe(130);
    expect(s.queued.ids).toEqual(waiting.slice(0, 100));
    // a queued transfer given its slot leaves the list; nothing waits
    const s2 = t.update(poll(10_500, statuses));
    expect(s2.queued).toEqual({ total: 0, ids: [] });
    expect(s2.counts.queued).toBe(1);
  });

  test('tracker: only the 50 most recently finished transfers carry their history (hundreds of charts were most of every frame)', () => {
    const t = createTracker({ pollMs: 500 });
    const statuses: Record<string, TransferStatus> = { r: transferStatus('r') };
    for (let i = 0; i < 60; i++)
      statuses[`d${i}`] = transferStatus(`d${i}`, { state: 'done', finishedAt: 1_000 + i });
    t.update(poll(10_000, statuses));
    const s = t.update(poll(10_500, statuses));
    expect(FINISHED_WITH_HISTORY).toBe(50);
    expect(s.transfers.map((v) => [v.id, v.history.t.length])).toEqual([
      ['r', 2],
      ...Array.from({ length: 60 }, (_, i) => [`d${59 - i}`, i < 50 ? 2 : 0]),
    ]);
    // left out of the snapshot only: the tracker keeps the history (the next poll adds to it)
    const s3 = t.update(
      poll(11_000, { ...statuses, d0: transferStatus('d0', { state: 'done', finishedAt: 9_000 }) }),
    );
    expect(s3.transfers[1]).toMatchObject({ id: 'd0', history: { t: [10_000, 10_500, 11_000] } });
  });

  test('tracker: throughput is bytes over the poll interval, progress and ETA follow the status', () => {
    const t = createTracker({ pollMs: 500 });
    t.update(poll(10_000, { x: transferStatus('x', { bytesDone: 0 }) }));
    const s = t.update(poll(10_500, { x: transferStatus('x', { bytesDone: 51_200, complete: 50 }) }));
    const v = s.transfers[0];
    expect(v.throughput).toBeCloseTo(102_400);
    expect(v.progress).toBeCloseTo(0.5);
    expect(v.etaSec).toBeGreaterThan(0);
    expect(v.history.t).toEqual([10_000, 10_500]);
    expect(v.history.throughput[1]).toBeCloseTo(102_400);
    expect(s.backend).toBe('cpu');
    expect(s.engine).toEqual({ backend: 'cpu', ticks: 5, totalTickMs: 1.5 });
    expect(s.seq).toBe(2);
  });

  test('tracker: history is bounded to historyPoints and events to maxEvents', () => {
    const t = createTracker({ pollMs: 100, historyPoints: 10, maxEvents: 5 });
    let s = t.update(poll(0, {}));
    for (let i = 0; i < 50; i++) {
      s = t.update(
        poll(i * 100, {
          x: transferStatus('x', {
            bytesDone: i * 10,
            counters: { ...transferStatus('x').counters, failovers: i },
          }),
        }),
      );
    }
    expect(s.transfers[0].history.t).toHaveLength(10);
    expect(s.transfers[0].history.throughput).toHaveLength(10);
    expect(s.events).toHaveLength(5);
    expect(s.events.map((e) => e.seq)).toEqual([...s.events.map((e) => e.seq)].sort((a, b) => a - b));
  });

  test('tracker: failover and corrupt deltas, edges going offline and online, and the end of a transfer become events', () => {
    const t = createTracker({ pollMs: 500 });
    const c0 = transferStatus('x').counters;
    t.update(poll(0, { x: transferStatus('x') }));
    t.update(
      poll(500, {
        x: transferStatus('x', {
          counters: { ...c0, failovers: 3, corrupt: 1 },
          edges: [edgeView('a', { available: false }), edgeView('b')],
        }),
      }),
    );
    t.update(
      poll(1000, {
        x: transferStatus('x', {
          counters: { ...c0, failovers: 3, corrupt: 1 },
          edges: [edgeView('a'), edgeView('b')],
        }),
      }),
    );
    const s = t.update(
      poll(1500, {
        x: transferStatus('x', {
          state: 'done',
          verified: true,
          finishedAt: 4_000,
          counters: { ...c0, failovers: 3, corrupt: 1 },
        }),
      }),
    );
    const evs = s.events.map((e) => ({ ...e, seq: undefined, at: undefined }));
    expect(evs).toEqual([
      expect.objectContaining({ type: 'transfer-started', transfer: 'x' }),
      expect.objectContaining({ type: 'failover', count: 3, total: 3 }),
      expect.objectContaining({ type: 'corrupt', count: 1, total: 1 }),
      expect.objectContaining({ type: 'edge-offline', edge: 'a' }),
      expect.objectContaining({ type: 'edge-online', edge: 'a' }),
      expect.objectContaining({ type: 'transfer-done', verified: true, seconds: 3 }),
    ]);
  });

  test('tracker: edges carry load, flags and per-edge chunks', () => {
    const t = createTracker({ pollMs: 500 });
    const s = t.update(
      poll(0, {
        x: transferStatus('x', {
          edges: [
            edgeView('a', { queueDepth: 3, maxParallel: 4, flags: 3 }),
            edgeView('b', { available: false, flags: 1 }),
          ],
          perEdgeChunks: [7, 2],
        }),
      }),
    );
    expect(s.transfers[0].edges).toEqual([
      expect.objectContaining({
        id: 'a',
        load: 0.75,
        metered: true,
        batteryLow: true,
        online: true,
        chunks: 7,
      }),
      expect.objectContaining({
        id: 'b',
        load: 0,
        metered: true,
        batteryLow: false,
        online: false,
        chunks: 2,
      }),
    ]);
  });

  test('tracker: a source the transfer gave up is shown given up, not online, with why, and becomes one event', () => {
    const t = createTracker({ pollMs: 500 });
    t.update(poll(0, { x: transferStatus('x', { edges: [edgeView('a'), edgeView('b')] }) }));
    const s = t.update(
      poll(500, {
        x: transferStatus('x', {
          edges: [
            // available as the edge says of itself; given up by this transfer
            edgeView('a', {
              retired: true,
              retiredReason: 'failed for 61 s without delivering a chunk (7 failures; source budget 60 s)',
              lastError: 'timeout: too slow: under 1024 B/s for 10 s (3 bytes in the last 10.5 s)',
            }),
            edgeView('b', { lastError: 'http: HTTP 404 for bytes=0-65535' }),
          ],
        }),
      }),
    );
    const [a, b] = s.transfers[0].edges;
    expect(a).toMatchObject({
      online: false,
      givenUp: true,
      reason:
        'given up: failed for 61 s without delivering a chunk (7 failures; source budget 60 s); last error: timeout: too slow: under 1024 B/s for 10 s (3 bytes in the last 10.5 s)',
    });
    expect(b).toMatchObject({
      online: true,
      givenUp: false,
      reason: 'last error: http: HTTP 404 for bytes=0-65535',
    });
    expect(s.events.filter((e) => e.type.startsWith('edge-'))).toEqual([
      expect.objectContaining({ type: 'edge-given-up', edge: 'a', reason: a.reason }),
    ]);
  });

  test('tracker: a failing status call is one poll-error event per distinct message and keeps the last good view', () => {
    const t = createTracker({ pollMs: 500 });
    t.update(poll(0, { x: transferStatus('x', { bytesDone: 10 }) }));
    t.update(poll(500, { x: new Error('host stopped') }));
    const s = t.update(poll(1000, { x: new Error('host stopped') }));
    expect(s.events.filter((e) => e.type === 'poll-error')).toHaveLength(1);
    expect(s.transfers[0].bytesDone).toBe(10);
    const u = createTracker({ pollMs: 500 }).update(poll(0, { y: new Error('nope') }));
    expect(u.transfers[0]).toMatchObject({ id: 'y', state: 'unreachable', error: 'nope' });
  });

  test('tracker: transfers no longer listed are kept up to keepFinished, then evicted', () => {
    const t = createTracker({ pollMs: 500, keepFinished: 1 });
    t.update(poll(0, { a: transferStatus('a'), c: transferStatus('c') }));
    t.update(poll(500, { b: transferStatus('b'), c: transferStatus('c') }));
    expect(t.snapshot().transfers.map((x) => [x.id, x.polled])).toEqual([
      ['a', false],
      ['c', true],
      ['b', true],
    ]);
    const s = t.update(poll(1000, { c: transferStatus('c') }));
    expect(s.transfers.map((x) => [x.id, x.polled])).toEqual([
      ['c', true],
      ['b', false],
    ]);
    expect(t.evicted()).toEqual(['a']);
  });

  test('tracker: lastTickMs phase times are read when the status has them and ignored when malformed', () => {
    const t = createTracker({ pollMs: 500 });
    const s = t.update(
      poll(0, {
        x: {
          ...transferStatus('x'),
          lastTickMs: { rank: 0.1, dispatch: 0.05, total: 0.2, bogus: 'no' },
        } as unknown as TransferStatus,
      }),
    );
    expect(s.transfers[0].lastTickMs).toEqual({ rank: 0.1, dispatch: 0.05, total: 0.2 });
    expect(s.transfers[0].history.tickLast).toEqual([0.2]);
    const u = createTracker({ pollMs: 500 }).update(
      poll(0, { x: { ...transferStatus('x'), lastTickMs: 'garbage' } as unknown as TransferStatus }),
    );
    expect(u.transfers[0].lastTickMs).toBeUndefined();
    expect(u.transfers[0].history.tickLast).toEqual([null]);
  });
});
