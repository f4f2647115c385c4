import { checkArg } from './errors.js';

/**
 * The one quantile rule of the project (status p50/p99, benchmark tables, the coordinator report).
 *
 * The `q` quantile of n samples is the sample at sorted index round(q·(n−1)): the sample nearest
 * the position that Hyndman & Fan's definition 7 (the default of R and NumPy) interpolates at, so
 * the answer is always an observed value. q = 0 is the minimum, q = 1 the maximum.
 */

/**
 * The `q` quantile (0..1) of `sorted`, which must already be in ascending order (not checked).
 * Returns `empty` (default NaN) for an empty list; throws PORTAL_INVALID_ARGUMENT for q outside [0, 1].
 */
export function quantileSorted(sorted: ArrayLike<number>, q: number, empty = NaN): number {
  checkArg(q >= 0 && q <= 1, 'q', `a quantile in [0, 1], got ${q}`);
  const n = sorted.length;
  if (n === 0) return empty;
  return sorted[Math.min(n - 1, Math.floor(q * (n - 1) + 0.5))];
}

/** The `q` quantile (0..1) of `values` in any order (sorted on a copy); `empty` (NaN) when there are none. */
export function quantile(values: ArrayLike<number>, q: number, empty = NaN): number {
  const sorted = Float64Array.from(values).sort();
  return quantileSorted(sorted, q, empty);
}
