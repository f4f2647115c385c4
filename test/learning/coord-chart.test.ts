import { latencyChart, rollingMean } from '../../cli/coord/chart.js';

describe('coord-demo latency chart', () => {
  test('rollingMean averages the last `window` values, fewer at the start', () => {
    expect(rollingMean([2, 4, 6, 8, 10], 2)).toEqual([2, 3, 5, 7, 9]);
    expect(rollingMean([5], 10)).toEqual([5]);
    expect(rollingMean([], 3)).toEqual([]);
  });

  test('one polyline per policy with a point per task, phase marks inside the range, names escaped', () => {
    const svg = latencyChart(
      [
        { name: 'heuristic', color: '#d62728', latencyMs: Array.from({ length: 40 }, (_, i) => 100 + i) },
        { name: 'learned <new>', color: '#1f77b4', latencyMs: Array.from({ length: 40 }, () => 30) },
      ],
      { title: 'demo & test', window: 5, marks: [20, 50] },
    );
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    const lines = [...svg.matchAll(/<polyline data-series="([^"]*)"[^>]* points="([^"]*)"/g)];
    expect(lines.map((m) => m[1])).toEqual(['heuristic', 'learned &lt;new&gt;']);
    for (const m of lines) expect(m[2].split(' ')).toHaveLength(40);
    expect(svg).toContain('demo &amp; test');
    expect(svg).toContain('after 20');
    expect(svg).not.toContain('after 50'); // beyond the 40 tasks
    // the flat series is drawn below the rising one (SVG y grows downwards)
    const lastY = (m: RegExpMatchArray): number => Number(m[2].split(' ').pop()!.split(',')[1]);
    expect(lastY(lines[1])).toBeGreaterThan(lastY(lines[0]));
  });
});
