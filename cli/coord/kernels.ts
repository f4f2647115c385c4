/**
 * The real CPU work of the coord-demo peers: Mandelbrot tiles (the render task), a particle
 * integration (physics) and additive synthesis (audio). Units are chosen so that one work unit of
 * physics or audio costs about as much as RENDER_UNIT_ITERS Mandelbrot iterations.
 */

/** The part of the complex plane a frame shows, and its pixel size. */
export interface FrameView {
  width: number;
  height: number;
  cx: number;
  cy: number;
  scale: number;
  maxIter: number;
}

/** Mandelbrot iterations one render work unit stands for. */
export const RENDER_UNIT_ITERS = 20_000;

/** Renders rows/cols [x, x+w) × [y, y+h) of a frame; returns 8-bit pixels and the iterations spent. */
export function renderTile(
  v: FrameView,
  x0: number,
  y0: number,
  w: number,
  h: number,
): { pixels: Uint8Array; iters: number } {
  const pixels = new Uint8Array(w * h);
  let iters = 0;
  const step = v.scale / v.width;
  for (let py = 0; py < h; py++) {
    const ci = v.cy + (y0 + py - v.height / 2) * step;
    for (let px = 0; px < w; px++) {
      const cr = v.cx + (x0 + px - v.width / 2) * step;
      let zr = 0,
        zi = 0,
        i = 0;
      for (; i < v.maxIter && zr * zr + zi * zi < 4; i++) {
        const t = zr * zr - zi * zi + cr;
        zi = 2 * zr * zi + ci;
        zr = t;
      }
      iters += i + 1;
      pixels[py * w + px] = i >= v.maxIter ? 0 : 1 + ((i * 7) % 255);
    }
  }
  return { pixels, iters };
}

/** Per-pixel complexity (iterations + 1) of a frame at 1/`down` resolution with `maxIter` cap: the splitter's input. */
export function complexityMap(
  v: FrameView,
  down: number,
  maxIter: number,
): { width: number; height: number; data: Float64Array } {
  const width = Math.ceil(v.width / down),
    height = Math.ceil(v.height / down);
  const data = new Float64Array(width * height);
  const step = v.scale / v.width;
  for (let my = 0; my < height; my++) {
    const ci = v.cy + (my * down + down / 2 - v.height / 2) * step;
    for (let mx = 0; mx < width; mx++) {
      const cr = v.cx + (mx * down + down / 2 - v.width / 2) * step;
      let zr = 0,
        zi = 0,
        i = 0;
      for (; i < maxIter && zr * zr + zi * zi < 4; i++) {
        const t = zr * zr - zi * zi + cr;
        zi = 2 * zr * zi + ci;
        zr = t;
      }
      // a pixel in the set costs the full maxIter of the real render; scale the capped count up
      data[my * width + mx] = (i >= maxIter ? v.maxIter : (i * v.maxIter) / maxIter / 4 + 1) * down * down;
    }
  }
  return { width, height, data };
}

/** `units` of particle integration; returns a checksum so the work is not optimized away. */
export function physics(units: number): number {
  const n = 64;
  const x = new Float64Array(n),
    vx = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    x[i] = Math.sin(i);
    vx[i] = Math.cos(i);
  }
  const steps = Math.max(1, Math.round(units * 20));
  for (let s = 0; s < steps; s++) {
    for (let i = 0; i < n; i++) {
      let f = 0;
      for (let j = 0; j < n; j++) {
        const d = x[j] - x[i];
        f += d / (1 + d * d * d * d);
      }
      vx[i] += 1e-3 * f;
    }
    for (let i = 0; i < n; i++) x[i] += 1e-3 * vx[i];
  }
  return x.reduce((a, b) => a + b, 0);
}

/** `units` of additive synthesis (16 partials); returns a checksum. */
export function audio(units: number): number {
  const samples = Math.max(1, Math.round(units * 270));
  let acc = 0;
  for (let s = 0; s < samples; s++) {
    let v = 0;
    for (let k = 1; k <= 16; k++) v += Math.sin((s * k * 0.01) % 6.283) / k;
    acc += v * v;
  }
  return acc;
}

/** CPU ms per work unit of each task type, as measured on the calling process's core. */
export interface KernelRates {
  render: number;
  physics: number;
  audio: number;
}

/**
 * Measures this process's CPU ms per work unit of each task type: render over the four quadrants
 * of three views of a `width × height` frame at different zooms (so the per-pixel overhead of
 * cheap and expensive regions is both in it), physics and audio over 40 units. Each figure is the
 * faster of two passes, after a warm-up pass for the JIT. CPU time (process.cpuUsage), not wall
 * time: a peer holds a task for a multiple of the CPU time it took (peer.ts), so on a machine
 * whose cores other work keeps busy the rates and the holds stay consistent.
 */
export function calibrateKernels(width: number, height: number): KernelRates {
  const views: FrameView[] = [1, 2, 4].map((zoom) => ({
    width,
    height,
    cx: -0.75,
    cy: 0.05,
    scale: 3 / zoom,
    maxIter: 256,
  }));
  const cpuMs = (): number => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const pass = (): KernelRates => {
    let ms = 0,
      units = 0;
    for (const v of views)
      for (const [x, y] of [
        [0, 0],
        [width / 2, 0],
        [0, height / 2],
        [width / 2, height / 2],
      ]) {
        const t = cpuMs();
        const { iters } = renderTile(v, x, y, width / 2, height / 2);
        ms += cpuMs() - t;
        units += iters / RENDER_UNIT_ITERS;
      }
    let t = cpuMs();
    physics(40);
    const ph = (cpuMs() - t) / 40;
    t = cpuMs();
    audio(40);
    const au = (cpuMs() - t) / 40;
    return { render: ms / units, physics: ph, audio: au };
  };
  pass();
  const a = pass(),
    b = pass();
  return {
    render: Math.min(a.render, b.render),
    physics: Math.min(a.physics, b.physics),
    audio: Math.min(a.audio, b.audio),
  };
}
