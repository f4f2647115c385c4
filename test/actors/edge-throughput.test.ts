import { EdgeThroughput } from '../../actors/edge-throughput.js';

describe('EdgeThroughput (an edge’s recent throughput, all its fetches together)', () => {
  test('bytes after the oldest of the recent completions over the time they span; 0 until 3 are seen', () => {
    const m = new EdgeThroughput(16, 2000);
    expect(m.bytesPerSec(0, 0)).toBe(0);
    m.completed(0, 1e6, 0);
    m.completed(0, 1e6, 100);
    expect(m.bytesPerSec(0, 100)).toBe(0);
    // 4 fetches in parallel, each 1 MB: completions every 100 ms after the first = 10 MB/s
    m.completed(0, 1e6, 200);
    m.completed(0, 1e6, 300);
    expect(m.bytesPerSec(0, 300)).toBeCloseTo(10e6, 0);
    expect(m.bytesPerSec(1, 300)).toBe(0);
  });

  test('only the last `window` completions within the horizon count', () => {
    const m = new EdgeThroughput(4, 1000);
    for (let k = 0; k < 10; k++) m.completed(0, 1e6, k * 100); // 10 MB/s
    for (let k = 10; k < 14; k++) m.completed(0, 1e6, 900 + (k - 9) * 500); // then 2 MB/s
    expect(m.bytesPerSec(0, 2900)).toBeCloseTo(2e6, 0);
    // two seconds later nothing is recent: not measured
    expect(m.bytesPerSec(0, 5000)).toBe(0);
  });
});
