import {
  EdgeEstimator,
  adaptiveTimeoutMs,
  defaultEstimatorConfig,
  defaultTimeoutBounds,
} from '../../scheduler/index.js';

describe('estimators', () => {
  test('estimators: bandwidth is an EMA with α 0.1 of chunk size / transfer time, the first sample seeding it', () => {
    const e = new EdgeEstimator(defaultEstimatorConfig, 0);
    e.observeSuccess(1_000_000, 10, 100, 0); // 1 MB in 100 ms = 10 MB/s
    expect(e.snapshot(0).bandwidth).toBeCloseTo(10e6, 6);
    e.observeSuccess(1_000_000, 10, 200, 1); // 5 MB/s
    expect(e.snapshot(1).bandwidth).toBeCloseTo(0.1 * 5e6 + 0.9 * 10e6, 6);
  });

  test('estimators: RTT is TCP SRTT (7/8 old, 1/8 new) of first-byte times', () => {
    const e = new EdgeEstimator(defaultEstimatorConfig, 0);
    e.observeSuccess(1000, 40, 50, 0);
    e.observeSuccess(1000, 80, 90, 0);
    expect(e.snapshot(0).rtt).toBeCloseTo(0.875 * 40 + 0.125 * 80, 9);
  });

  test('estimators: success rate covers only the last 100 chunks', () => {
    const e = new EdgeEstimator(defaultEstimatorConfig, 0);
    for (let i = 0; i < 100; i++) e.observeFailure('http', 0);
    expect(e.successRate()).toBe(0);
    for (let i = 0; i < 60; i++) e.observeSuccess(1000, 1, 2, 0);
    expect(e.successRate()).toBeCloseTo(0.6, 9);
  });

  test('estimators: uptime is the available fraction of the last hour', () => {
    const e = new EdgeEstimator(defaultEstimatorConfig, 0);
    e.setAvailable(false, 1_800_000); // up for 30 min
    expect(e.uptime(3_600_000)).toBeCloseTo(0.5, 9);
    e.setAvailable(true, 3_600_000);
    expect(e.uptime(7_200_000)).toBeCloseTo(1, 9); // the down half hour left the window
  });

  test('estimators: health falls with failures, downtime and inconsistent bandwidth', () => {
    const steady = new EdgeEstimator(defaultEstimatorConfig, 0);
    const shaky = new EdgeEstimator(defaultEstimatorConfig, 0);
    for (let i = 0; i < 20; i++) {
      steady.observeSuccess(1e6, 1, 101, i);
      shaky.observeSuccess(1e6, 1, i % 2 ? 11 : 501, i);
      if (i % 4 === 0) shaky.observeFailure('http', i);
    }
    const a = steady.snapshot(20),
      b = shaky.snapshot(20);
    expect(a.health).toBeCloseTo(1, 6);
    expect(b.health).toBeLessThan(a.health);
    expect(b.consistency).toBeLessThan(0.9);
    expect(b.successRate).toBeCloseTo(20 / 25, 9);
  });

  test('estimators: unreachable failures in a row mark the edge offline; a success brings it back', () => {
    const e = new EdgeEstimator(defaultEstimatorConfig, 0);
    expect(e.observeFailure('unreachable', 1)).toBe(false);
    expect(e.observeFailure('unreachable', 2)).toBe(false);
    expect(e.observeFailure('unreachable', 3)).toBe(true);
    expect(e.snapshot(3).available).toBe(false);
    e.observeSuccess(1000, 1, 2, 4);
    expect(e.snapshot(4).available).toBe(true);
  });

  test('estimators: state round-trips through JSON', () => {
    const e = new EdgeEstimator(defaultEstimatorConfig, 0);
    e.observeSuccess(1e6, 5, 105, 1);
    e.observeFailure('timeout', 2);
    e.setAvailable(false, 3);
    const back = EdgeEstimator.fromJSON(JSON.parse(JSON.stringify(e.toJSON())));
    expect(back.snapshot(10)).toEqual(e.snapshot(10));
  });

  test('timeouts: mean + 4 × deviation of observed times, with a floor and a cap', () => {
    const e = new EdgeEstimator(defaultEstimatorConfig, 0);
    for (let i = 0; i < 30; i++) e.observeSuccess(1e6, 1, 3000 + (i % 3) * 100, i);
    const s = e.snapshot(30);
    expect(adaptiveTimeoutMs(s, 1e6)).toBeCloseTo(s.transferMs + 4 * s.transferDevMs, 6);
    expect(adaptiveTimeoutMs({ ...s, transferMs: 10, transferDevMs: 1 }, 1e6)).toBe(
      defaultTimeoutBounds.floorMs,
    );
    expect(adaptiveTimeoutMs({ ...s, transferMs: 1e6, transferDevMs: 1 }, 1e6)).toBe(
      defaultTimeoutBounds.capMs,
    );
  });

  test('timeouts: before any sample, a multiple of the expected time from bandwidth and RTT', () => {
    const cold = new EdgeEstimator(defaultEstimatorConfig, 0, { bandwidth: 1e6, rtt: 100 }).snapshot(0);
    expect(adaptiveTimeoutMs(cold, 1e6)).toBe(4 * 1100);
  });
});
