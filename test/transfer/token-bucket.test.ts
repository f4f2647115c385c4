import { createTokenBucket } from '../../transfer/index.js';
import { ManualClock } from '../../common/index.js';

const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

describe('token bucket', () => {
  test('token bucket: a full bucket grants its burst at once and then paces at the rate', async () => {
    const clock = new ManualClock();
    const b = createTokenBucket({ rateBytesPerSec: 1000, burstBytes: 500, clock });
    let first = false;
    void b.take(500).then(() => {
      first = true;
    });
    await flush();
    expect(first).toBe(true);

    let second = false;
    void b.take(300).then(() => {
      second = true;
    });
    await flush();
    expect(second).toBe(false);
    clock.advance(299);
    await flush();
    expect(second).toBe(false);
    clock.advance(1);
    await flush();
    expect(second).toBe(true);
  });

  test('token bucket: waiters are served in order', async () => {
    const clock = new ManualClock();
    const b = createTokenBucket({ rateBytesPerSec: 100, burstBytes: 100, clock });
    await b.take(100);
    const order: number[] = [];
    void b.take(50).then(() => order.push(1));
    void b.take(10).then(() => order.push(2));
    expect(b.waiting()).toBe(2);
    clock.advance(500);
    await flush();
    expect(order).toEqual([1]);
    clock.advance(100);
    await flush();
    expect(order).toEqual([1, 2]);
  });

  test('token bucket: a take larger than the burst waits for a full bucket and keeps the long-run rate', async () => {
    const clock = new ManualClock();
    const b = createTokenBucket({ rateBytesPerSec: 1000, burstBytes: 100, clock });
    await b.take(100);
    let big = false;
    void b.take(1000).then(() => {
      big = true;
    });
    clock.advance(100);
    await flush();
    expect(big).toBe(true);
    expect(b.available()).toBeCloseTo(-900);
    let next = false;
    void b.take(100).then(() => {
      next = true;
    });
    clock.advance(999);
    await flush();
    expect(next).toBe(false);
    clock.advance(1);
    await flush();
    expect(next).toBe(true);
  });

  test('token bucket: 10 KB through a 1 KB/s bucket takes about 10 s of clock time', async () => {
    const clock = new ManualClock();
    const b = createTokenBucket({ rateBytesPerSec: 1000, burstBytes: 100, clock });
    let done = 0;
    const all = (async () => {
      for (let i = 0; i < 100; i++) {
        await b.take(100);
        done++;
      }
    })();
    let steps = 0;
    while (done < 100 && steps < 1000) {
      clock.advance(10);
      await flush();
      steps++;
    }
    await all;
    expect(clock.now()).toBeGreaterThanOrEqual(9900);
    expect(clock.now()).toBeLessThanOrEqual(10_100);
  });

  test('token bucket: an aborted take rejects with PORTAL_CANCELLED and frees its place', async () => {
    const clock = new ManualClock();
    const b = createTokenBucket({ rateBytesPerSec: 100, burstBytes: 100, clock });
    await b.take(100);
    const ac = new AbortController();
    const p = b.take(100, ac.signal);
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: 'PORTAL_CANCELLED' });
    expect(b.waiting()).toBe(0);
    expect(b.tryTake(1)).toBe(false);
    clock.advance(1000);
    expect(b.tryTake(100)).toBe(true);
  });

  test('token bucket: rejects a non-positive rate naming the argument', () => {
    expect(() => createTokenBucket({ rateBytesPerSec: 0 })).toThrow(/rateBytesPerSec/);
    expect(() => createTokenBucket({ rateBytesPerSec: 10, burstBytes: -1 })).toThrow(/burstBytes/);
  });
});
