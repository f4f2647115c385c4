import { BufferPool } from '../../common/buffer-pool.js';

test('BufferPool reuses a given-back buffer of n..2n bytes, allocates otherwise, and keeps at most max', () => {
  const pool = new BufferPool(2);
  const a = pool.take(1000);
  expect(a.length).toBe(1000);
  pool.give(a);
  expect(pool.size).toBe(1);
  expect(pool.take(600)).toBe(a); // 1000 ≤ 2 × 600
  pool.give(a);
  const b = pool.take(400); // 1000 > 2 × 400: a new one, a stays kept
  expect(b).not.toBe(a);
  expect(b.length).toBe(400);
  expect(pool.size).toBe(1);
  pool.give(b);
  pool.give(Buffer.alloc(10));
  expect(pool.size).toBe(2); // the third was dropped
  expect(pool.take(1000)).toBe(a);
  expect(pool.allocated).toBe(2); // a and b; the rest were reused
});
