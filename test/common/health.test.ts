import { healthAnswer, type BusHealth } from '../../common/health.js';

const bus = (state: BusHealth['state']): BusHealth => ({
  kind: 'nats',
  state,
  sinceMs: 1_000_000,
  disconnects: 2,
  reconnects: 1,
});

test('liveness fails only on a closed bus, readiness on anything but connected; both say since when', () => {
  const now = 1_000_000 + 90_400;
  expect(
    (['connected', 'reconnecting', 'closed'] as const).map((s) => [
      s,
      healthAnswer('live', bus(s), now).status,
      healthAnswer('ready', bus(s), now).status,
    ]),
  ).toEqual([
    ['connected', 200, 200],
    ['reconnecting', 200, 503],
    ['closed', 503, 503],
  ]);
  expect(healthAnswer('ready', bus('reconnecting'), now).body).toEqual({
    status: 'failing',
    bus: { ...bus('reconnecting'), since: new Date(1_000_000).toISOString(), forSeconds: 90 },
  });
  // no bus to report: always 200, no bus field
  expect(healthAnswer('ready', undefined, now)).toEqual({ status: 200, body: { status: 'ok' } });
});
