import { busyHoldMs, RETRY_AFTER_CAP_MS } from '../../actors/edge-actor.js';

describe('busyHoldMs: the hold-off after a busy answer (503/429)', () => {
  test('without Retry-After: 1 s doubling per busy answer in a row, at most 60 s', () => {
    expect([1, 2, 3, 4, 6, 7, 8, 50].map((n) => busyHoldMs(n, undefined))).toEqual([
      1000, 2000, 4000, 8000, 32_000, 60_000, 60_000, 60_000,
    ]);
  });

  test('Retry-After 0 (or a past date, parsed as 0) does not shorten the hold below the back-off', () => {
    expect(busyHoldMs(1, 0)).toBe(1000);
    expect(busyHoldMs(3, 0)).toBe(4000);
    expect(busyHoldMs(2, 500)).toBe(2000);
  });

  test('a longer Retry-After is honoured; an absurd one is capped at 1 h', () => {
    expect(busyHoldMs(1, 5000)).toBe(5000);
    expect(busyHoldMs(1, 100_000_000)).toBe(RETRY_AFTER_CAP_MS);
    expect(RETRY_AFTER_CAP_MS).toBe(3_600_000);
    expect(busyHoldMs(1, 1e23)).toBe(RETRY_AFTER_CAP_MS);
  });
});
