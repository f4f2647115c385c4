import { LowestSpeedMonitor, tooSlowDetail } from '../../transfer/lowest-speed.js';

/** Feeds `m` `bytes` every `everyMs` from 0 to `untilMs`, sampling every 500 ms; the first too-slow time, if any. */
function run(m: LowestSpeedMonitor, bytes: number, everyMs: number, untilMs: number): number | undefined {
  m.arm(0);
  let next = everyMs;
  for (let t = 500; t <= untilMs; t += 500) {
    for (; next <= t; next += everyMs) m.add(bytes);
    if (m.sample(t)) return t;
  }
  return undefined;
}

describe('lowest-speed monitor (injected clock, no sleeping)', () => {
  test('1 byte every 2 s is too slow for 1 KiB/s once a whole 10 s window has passed, not before', () => {
    const m = new LowestSpeedMonitor(1024, 10_000);
    expect(run(m, 1, 2000, 60_000)).toBe(10_000);
  });

  test('a steady 2 MB/s (the throttled-mirror bench) shared by 16 fetches never falls below 1 KiB/s', () => {
    const m = new LowestSpeedMonitor(1024, 10_000);
    expect(run(m, 125_000 / 10, 100, 120_000)).toBeUndefined();
  });

  test('the window slides: a fast start followed by silence fails one window after the bytes stopped', () => {
    const m = new LowestSpeedMonitor(1024, 10_000);
    m.arm(0);
    m.add(10_000_000);
    let failed: number | undefined;
    for (let t = 500; t <= 60_000 && failed === undefined; t += 500) if (m.sample(t)) failed = t;
    // the 10 MB count inside any window that starts at 0; the first window without them starts at 500
    expect(failed).toBe(10_500);
  });

  test('disarm stops the measure until the next arm (a fetch queued behind others)', () => {
    const m = new LowestSpeedMonitor(1024, 1000);
    m.arm(0);
    m.disarm();
    for (let t = 500; t <= 10_000; t += 500) expect(m.sample(t)).toBeUndefined();
    m.arm(10_000);
    expect(m.sample(10_500)).toBeUndefined();
    const slow = m.sample(11_000);
    expect(slow).toEqual({ bytes: 0, ms: 1000 });
    expect(tooSlowDetail(m, slow!)).toBe('too slow: under 1024 B/s for 1 s (0 bytes in the last 1.0 s)');
  });
});
