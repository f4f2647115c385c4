/** forEachLimited (common/for-each-limited.ts): bounded concurrency in order, and what a failure stops. */
import { forEachLimited } from '../../common/for-each-limited.js';

const tick = (ms = 1): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('forEachLimited', () => {
  test('runs every item once, starting them in order, never more than `limit` at once', async () => {
    const started: number[] = [];
    let active = 0;
    let most = 0;
    await forEachLimited(
      Array.from({ length: 25 }, (_, i) => i),
      4,
      async (i) => {
        started.push(i);
        most = Math.max(most, ++active);
        await tick(i % 3);
        active--;
      },
    );
    expect(started).toEqual(Array.from({ length: 25 }, (_, i) => i));
    expect(most).toBe(4);
  });

  test('after a failure no item starts; the running ones end before the first error is thrown', async () => {
    const started: number[] = [];
    const ended: number[] = [];
    const run = forEachLimited([0, 1, 2, 3, 4, 5, 6, 7], 3, async (i) => {
      started.push(i);
      if (i === 1) {
        await tick(1);
        throw new Error('item 1 failed');
      }
      if (i === 4) throw new Error('item 4 failed'); // never started: item 1 failed first
      await tick(20);
      ended.push(i);
    });
    await expect(run).rejects.toThrow('item 1 failed');
    expect(started).toEqual([0, 1, 2]);
    expect(ended.sort()).toEqual([0, 2]); // settled before the rejection
  });

  test('an empty set runs nothing; a limit larger than the set is fine; a bad limit is refused', async () => {
    const seen: unknown[] = [];
    const fn = async (x: unknown): Promise<void> => {
      seen.push(x);
    };
    await forEachLimited([], 4, fn);
    expect(seen).toEqual([]);
    await forEachLimited(new Set(['a', 'b']), 10, fn);
    expect(seen).toEqual(['a', 'b']);
    await expect(forEachLimited([1], 0, fn)).rejects.toThrow(RangeError);
    await expect(forEachLimited([1], 1.5, fn)).rejects.toThrow(/positive integer, got 1.5/);
  });
});
