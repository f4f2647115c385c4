/**
 * Small dense linear algebra for the predictors: Cholesky solves of symmetric positive-definite
 * systems (ridge normal equations, Newton steps). Matrices are row-major Float64Arrays of d×d.
 */

/** Cholesky factor L (lower, row-major) of SPD `a` (d×d); adds `jitter` to the diagonal if a pivot is not positive. */
export function cholesky(a: Float64Array, d: number, jitter = 1e-9): Float64Array {
  const l = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * d + j];
      for (let k = 0; k < j; k++) s -= l[i * d + k] * l[j * d + k];
      if (i === j) l[i * d + i] = Math.sqrt(s > jitter ? s : jitter);
      else l[i * d + j] = s / l[j * d + j];
    }
  }
  return l;
}

/** Solves L Lᵀ x = b for x, given the Cholesky factor L. */
export function choleskySolve(l: Float64Array, d: number, b: ArrayLike<number>): Float64Array {
  const y = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    let s = b[i];
    for (let k = 0; k < i; k++) s -= l[i * d + k] * y[k];
    y[i] = s / l[i * d + i];
  }
  const x = new Float64Array(d);
  for (let i = d - 1; i >= 0; i--) {
    let s = y[i];
    for (let k = i + 1; k < d; k++) s -= l[k * d + i] * x[k];
    x[i] = s / l[i * d + i];
  }
  return x;
}

/** xᵀ (L Lᵀ)⁻¹ x: the quadratic form used for prediction variance (leverage). */
export function choleskyQuad(l: Float64Array, d: number, x: ArrayLike<number>): number {
  let q = 0;
  const y = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    let s = x[i];
    for (let k = 0; k < i; k++) s -= l[i * d + k] * y[k];
    y[i] = s / l[i * d + i];
    q += y[i] * y[i];
  }
  return q;
}

/** Standard logistic function. */
export function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}
