/**
 * The coord-demo's picture: per policy, the latency of every task (a rolling mean over `window`
 * tasks) against the task index, with the demo's phase boundaries — the learned curve leaving the
 * heuristic's after the warm-up and meeting the oracle's is the point of the demo. A self-contained
 * SVG (no script, no external fonts), so it opens in any browser or image viewer.
 */

/** One policy's line. */
export interface ChartSeries {
  name: string;
  color: string;
  dashed?: boolean;
  latencyMs: readonly number[];
}

/** Options of latencyChart. */
export interface LatencyChartOptions {
  title: string;
  /** Tasks averaged per point (default 10). */
  window?: number;
  /** Vertical markers at these task counts (phase boundaries). */
  marks?: readonly number[];
  width?: number;
  height?: number;
}

/** Mean of each `window` consecutive values ending at i (fewer at the start). */
export function rollingMean(xs: readonly number[], window: number): number[] {
  const out: number[] = [];
  let sum = 0;
  for (let i = 0; i < xs.length; i++) {
    sum += xs[i];
    if (i >= window) sum -= xs[i - window];
    out.push(sum / Math.min(i + 1, window));
  }
  return out;
}

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A round axis step for `span` split into about `ticks` parts (1, 2 or 5 × 10^k). */
function niceStep(span: number, ticks: number): number {
  const raw = span / Math.max(1, ticks);
  const p = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-9)));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
}

/** Renders the series as an SVG document. */
export function latencyChart(series: readonly ChartSeries[], o: LatencyChartOptions): string {
  const W = o.width ?? 820,
    H = o.height ?? 380;
  const L = 64,
    R = 150,
    T = 40,
    B = 48;
  const pw = W - L - R,
    ph = H - T - B;
  const window = o.window ?? 10;
  const lines = series.map((s) => ({ ...s, y: rollingMean(s.latencyMs, window) }));
  const n = Math.max(1, ...lines.map((l) => l.y.length));
  const ymax = Math.max(1, ...lines.flatMap((l) => l.y)) * 1.08;
  const step = niceStep(ymax, 5);
  const x = (i: number): number => L + (n <= 1 ? 0 : (i / (n - 1)) * pw);
  const y = (v: number): number => T + ph - (v / ymax) * ph;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${L}" y="${T - 16}" font-size="14" font-weight="bold">${esc(o.title)}</text>`);
  for (let v = 0; v <= ymax; v += step) {
    out.push(
      `<line x1="${L}" x2="${L + pw}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e5e5"/>`,
    );
    out.push(
      `<text x="${L - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#555">${Number(v.toPrecision(6))}</text>`,
    );
  }
  for (const m of o.marks ?? []) {
    if (m <= 0 || m >= n) continue;
    const mx = x(m - 0.5).toFixed(1);
    out.push(`<line x1="${mx}" x2="${mx}" y1="${T}" y2="${T + ph}" stroke="#999" stroke-dasharray="3 3"/>`);
    out.push(`<text x="${mx}" y="${T + ph + 30}" text-anchor="middle" fill="#777">after ${m}</text>`);
  }
  out.push(
    `<line x1="${L}" x2="${L + pw}" y1="${T + ph}" y2="${T + ph}" stroke="#333"/><line x1="${L}" x2="${L}" y1="${T}" y2="${T + ph}" stroke="#333"/>`,
  );
  out.push(
    `<text x="${L + pw / 2}" y="${H - 6}" text-anchor="middle" fill="#333">task (submission order)</text>`,
  );
  out.push(
    `<text transform="translate(16 ${T + ph / 2}) rotate(-90)" text-anchor="middle" fill="#333">latency, ms (mean of ${window})</text>`,
  );
  out.push(
    `<text x="${L}" y="${T + ph + 16}" text-anchor="middle" fill="#555">1</text><text x="${L + pw}" y="${T + ph + 16}" text-anchor="middle" fill="#555">${n}</text>`,
  );
  lines.forEach((l, k) => {
    const pts = l.y.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    out.push(
      `<polyline data-series="${esc(l.name)}" fill="none" stroke="${esc(l.color)}" stroke-width="2"${l.dashed ? ' stroke-dasharray="6 4"' : ''} points="${pts}"/>`,
    );
    const ly = T + 10 + k * 20;
    out.push(
      `<line x1="${L + pw + 16}" x2="${L + pw + 40}" y1="${ly}" y2="${ly}" stroke="${esc(l.color)}" stroke-width="2"${l.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    out.push(`<text x="${L + pw + 46}" y="${ly + 4}">${esc(l.name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
