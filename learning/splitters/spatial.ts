import { checkArg } from '../../common/errors.js';

/** Per-pixel cost of an image (row-major `width × height`), e.g. escape iterations or a G-buffer estimate. */
export interface ComplexityMap {
  width: number;
  height: number;
  data: ArrayLike<number>;
}

/** A rectangle of the image and the complexity it holds. */
export interface Tile {
  x: number;
  y: number;
  width: number;
  height: number;
  cost: number;
}

/** A peer that will run a tile, with its predicted ms per unit of complexity. */
export interface SpatialPeer {
  id: string;
  msPerUnit: number;
}

/** A tile assigned to a peer, with its predicted time there. */
export interface PlannedTile extends Tile {
  peer: string;
  predictedMs: number;
}

/** 2-D inclusive prefix sums of a complexity map: `(width+1) × (height+1)`, row-major. */
export interface PrefixSums {
  width: number;
  height: number;
  s: Float64Array;
}

/** Builds summed-area tables so that any rectangle's cost is O(1). */
export function prefixSums(map: ComplexityMap): PrefixSums {
  const { width: w, height: h, data } = map;
  checkArg(
    Number.isInteger(w) && w > 0 && Number.isInteger(h) && h > 0,
    'map',
    'positive integer width and height',
  );
  checkArg(data.length === w * h, 'map.data', `${w * h} values`);
  const s = new Float64Array((w + 1) * (h + 1));
  for (let y = 0; y < h; y++) {
    let row = 0;
    for (let x = 0; x < w; x++) {
      const v = data[y * w + x];
      checkArg(Number.isFinite(v) && v >= 0, 'map.data', 'finite numbers ≥ 0');
      row += v;
      s[(y + 1) * (w + 1) + x + 1] = s[y * (w + 1) + x + 1] + row;
    }
  }
  return { width: w, height: h, s };
}

/** Cost of the rectangle [x, x+w) × [y, y+h). */
export function rectCost(p: PrefixSums, x: number, y: number, w: number, h: number): number {
  const W = p.width + 1;
  return p.s[(y + h) * W + x + w] - p.s[y * W + x + w] - p.s[(y + h) * W + x] + p.s[y * W + x];
}

interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/**
 * Adaptive tiles balanced by predicted time, not area: recursive bisection of the image on its
 * summed-area table. At each step the peers are split into two halves and the rectangle is cut
 * (on whichever axis gives the smaller error, binary search on prefix sums) so that each half gets
 * complexity in proportion to its peers' speed (1 / msPerUnit). Each peer gets one tile whose
 * predicted time is cost × msPerUnit; with equal peers tiles have equal cost. `peers` may be a
 * count (equal peers named tile-0…). Throws PORTAL_INVALID_ARGUMENT on an empty peer list or map.
 */
export function splitSpatial(map: ComplexityMap, peers: SpatialPeer[] | number): PlannedTile[] {
  const list: SpatialPeer[] =
    typeof peers === 'number'
      ? Array.from({ length: peers }, (_, i) => ({ id: `tile-${i}`, msPerUnit: 1 }))
      : peers;
  checkArg(list.length > 0, 'peers', 'at least one peer');
  for (const p of list)
    checkArg(
      Number.isFinite(p.msPerUnit) && p.msPerUnit > 0,
      `peers[${p.id}].msPerUnit`,
      'a positive number',
    );
  const ps = prefixSums(map);
  checkArg(
    list.length <= map.width * map.height,
    'peers',
    `at most one per pixel (${map.width * map.height})`,
  );
  const out: PlannedTile[] = [];
  bisect(ps, { x: 0, y: 0, w: map.width, h: map.height }, list, out);
  return out;
}

function bisect(ps: PrefixSums, r: Rect, peers: SpatialPeer[], out: PlannedTile[]): void {
  if (peers.length === 1) {
    const cost = rectCost(ps, r.x, r.y, r.w, r.h);
    out.push({
      x: r.x,
      y: r.y,
      width: r.w,
      height: r.h,
      cost,
      peer: peers[0].id,
      predictedMs: cost * peers[0].msPerUnit,
    });
    return;
  }
  const half = Math.ceil(peers.length / 2);
  const left = peers.slice(0, half);
  const right = peers.slice(half);
  const speed = (g: SpatialPeer[]): number => g.reduce((a, p) => a + 1 / p.msPerUnit, 0);
  const frac = speed(left) / (speed(left) + speed(right));
  const total = rectCost(ps, r.x, r.y, r.w, r.h);
  const target = frac * total;
  const cut = (vertical: boolean): { at: number; err: number } | undefined => {
    const len = vertical ? r.w : r.h;
    // each side needs at least as many pixels along the cut axis × the other axis as it has peers
    const other = vertical ? r.h : r.w;
    const minL = Math.ceil(left.length / other),
      minR = Math.ceil(right.length / other);
    if (minL + minR > len) return undefined;
    const part = (k: number): number =>
      vertical ? rectCost(ps, r.x, r.y, k, r.h) : rectCost(ps, r.x, r.y, r.w, k);
    let lo = minL,
      hi = len - minR;
    while (lo < hi) {
      const m = (lo + hi) >>> 1;
      if (part(m) < target) lo = m + 1;
      else hi = m;
    }
    let best = lo,
      err = Math.abs(part(lo) - target);
    if (lo - 1 >= minL && Math.abs(part(lo - 1) - target) <= err) {
      best = lo - 1;
      err = Math.abs(part(lo - 1) - target);
    }
    return { at: best, err };
  };
  const v = cut(true),
    h = cut(false);
  const useV = v !== undefined && (h === undefined || v.err < h.err || (v.err === h.err && r.w >= r.h));
  const c = useV ? v : h!;
  if (useV) {
    bisect(ps, { x: r.x, y: r.y, w: c.at, h: r.h }, left, out);
    bisect(ps, { x: r.x + c.at, y: r.y, w: r.w - c.at, h: r.h }, right, out);
  } else {
    bisect(ps, { x: r.x, y: r.y, w: r.w, h: c.at }, left, out);
    bisect(ps, { x: r.x, y: r.y + c.at, w: r.w, h: r.h - c.at }, right, out);
  }
}

/** The naive split for comparison: a grid of `n` (near-)equal-area tiles, cols × rows with cols ≥ rows. */
export function splitEqualArea(map: ComplexityMap, n: number): Tile[] {
  checkArg(Number.isInteger(n) && n > 0, 'n', 'a positive integer');
  const ps = prefixSums(map);
  let rows = Math.floor(Math.sqrt(n));
  while (n % rows !== 0) rows--;
  const cols = n / rows;
  const tiles: Tile[] = [];
  for (let j = 0; j < rows; j++) {
    for (let i = 0; i < cols; i++) {
      const x0 = Math.floor((i * map.width) / cols),
        x1 = Math.floor(((i + 1) * map.width) / cols);
      const y0 = Math.floor((j * map.height) / rows),
        y1 = Math.floor(((j + 1) * map.height) / rows);
      tiles.push({
        x: x0,
        y: y0,
        width: x1 - x0,
        height: y1 - y0,
        cost: rectCost(ps, x0, y0, x1 - x0, y1 - y0),
      });
    }
  }
  return tiles;
}

/** max / mean of the given values (1 = perfectly balanced); 1 for an empty list. */
export function imbalance(values: number[]): number {
  if (values.length === 0) return 1;
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return mean > 0 ? Math.max(...values) / mean : 1;
}
