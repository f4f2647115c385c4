import { jest } from '@jest/globals';
import { END_POLL_MS, FETCH_POLL_MS, nextStatusPollMs, statusWait } from '../../node/run-transfer.js';

// How often runTransfer asks its scheduler for the status: often only near the end.

describe('runTransfer status polling', () => {
  test('polls every FETCH_POLL_MS (or the progress period, if shorter) while chunks are missing', () => {
    expect(END_POLL_MS).toBeLessThan(FETCH_POLL_MS);
    expect(nextStatusPollMs({ complete: 0, total: 1024 }, 0, 250)).toBe(FETCH_POLL_MS);
    expect(nextStatusPollMs({ complete: 1000, total: 1024 }, 23, 250)).toBe(FETCH_POLL_MS);
    expect(nextStatusPollMs({ complete: 10, total: 1024 }, 0, 40)).toBe(40);
  });

  test('polls every END_POLL_MS once the chunks complete and those reported since cover the transfer', () => {
    expect(nextStatusPollMs({ complete: 1000, total: 1024 }, 24, 250)).toBe(END_POLL_MS);
    expect(nextStatusPollMs({ complete: 1024, total: 1024 }, 0, 250)).toBe(END_POLL_MS);
    // a chunk counted in the status and again as reported since only brings the next poll sooner
    expect(nextStatusPollMs({ complete: 1020, total: 1024 }, 10, 250)).toBe(END_POLL_MS);
  });
});

describe('statusWait: the wait between status calls', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  test('wake() ends a running sleep at once (the last chunk reported); otherwise it lasts its time', async () => {
    const wait = statusWait();
    let done = false;
    const slept = wait.sleep(FETCH_POLL_MS).then(() => {
      done = true;
    });
    await jest.advanceTimersByTimeAsync(FETCH_POLL_MS - 1);
    expect(done).toBe(false);
    wait.wake();
    await slept;
    expect(done).toBe(true);
    // a wake with no sleep running is not remembered: the next sleep lasts its time
    wait.wake();
    let next = false;
    void wait.sleep(END_POLL_MS).then(() => {
      next = true;
    });
    await jest.advanceTimersByTimeAsync(END_POLL_MS - 1);
    expect(next).toBe(false);
    await jest.advanceTimersByTimeAsync(1);
    expect(next).toBe(true);
  });
});
