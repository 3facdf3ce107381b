/**
 * Spectra of weight differences, fast enough for every pair of a zoo: eigenvalues of a
 * symmetric matrix by Householder tridiagonalisation and implicit QL (Numerical Recipes'
 * tred2/tqli without eigenvectors, O(n^3) with a small constant), and the nuclear norm
 * ||A||_* = sum of singular values = trace sqrt(A^T A) from the smaller Gram side.
 *
 * Why the nuclear norm: fine-tuning updates are dominated by a few task-specific
 * directions. For a child v of p and a sibling u, ||dW_v - dW_u||_* is close to
 * ||dW_v||_* + ||dW_u||_* (the spectra add), while the Frobenius norm adds in quadrature,
 * so a sibling that barely moved from p looks as close to v as p itself does. The
 * nuclear distance is nearly additive along tree paths, which is what a spanning tree
 * needs to pick the parent over a near-copy of it.
 *
 * @example
 *   nuclearNorm(Float32Array.from([3, 0, 0, -4]), 2, 2)   // 7
 */

/** Eigenvalues (unsorted) of a symmetric n x n row-major matrix; `a` is overwritten. */
export function symmetricEigenvalues(a: Float64Array, n: number): Float64Array {
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  for (let i = n - 1; i > 0; i--) {
    const l = i - 1;
    let h = 0;
    const ri = i * n;
    if (l > 0) {
      let scale = 0;
      for (let k = 0; k <= l; k++) scale += Math.abs(a[ri + k]!);
      if (scale === 0) {
        e[i] = a[ri + l]!;
      } else {
        for (let k = 0; k <= l; k++) {
          a[ri + k]! /= scale;
          h += a[ri + k]! * a[ri + k]!;
        }
        let f = a[ri + l]!;
        let g = f >= 0 ? -Math.sqrt(h) : Math.sqrt(h);
        e[i] = scale * g;
        h -= f * g;
        a[ri + l] = f - g;
        f = 0;
        for (let j = 0; j <= l; j++) {
          g = 0;
          const rj = j * n;
          for (let k = 0; k <= j; k++) g += a[rj + k]! * a[ri + k]!;
          for (let k = j + 1; k <= l; k++) g += a[k * n + j]! * a[ri + k]!;
          e[j] = g / h;
          f += e[j]! * a[ri + j]!;
        }
        const hh = f / (h + h);
        for (let j = 0; j <= l; j++) {
          f = a[ri + j]!;
          g = e[j]! - hh * f;
          e[j] = g;
          const rj = j * n;
          for (let k = 0; k <= j; k++) a[rj + k]! -= f * e[k]! + g * a[ri + k]!;
        }
      }
    } else {
      e[i] = a[ri + l]!;
    }
    d[i] = h;
  }
  for (let i = 0; i < n; i++) d[i] = a[i * n + i]!;
  // implicit QL on the tridiagonal (d, e)
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  if (n > 0) e[n - 1] = 0;
  const EPS = Number.EPSILON;
  for (let l = 0; l < n; l++) {
    let iter = 0;
    let m: number;
    do {
      for (m = l; m < n - 1; m++) {
        const dd = Math.abs(d[m]!) + Math.abs(d[m + 1]!);
        if (Math.abs(e[m]!) <= EPS * dd) break;
      }
      if (m !== l) {
        if (iter++ === 60) throw new Error('symmetricEigenvalues: no convergence');
        let g = (d[l + 1]! - d[l]!) / (2 * e[l]!);
        let r = Math.hypot(g, 1);
        g = d[m]! - d[l]! + e[l]! / (g + (g >= 0 ? Math.abs(r) : -Math.abs(r)));
        let s = 1,
          c = 1,
          p = 0;
        let i: number;
        for (i = m - 1; i >= l; i--) {
          const f = s * e[i]!;
          const b = c * e[i]!;
          r = Math.hypot(f, g);
          e[i + 1] = r;
          if (r === 0) {
            d[i + 1]! -= p;
            e[m] = 0;
            break;
          }
          s = f / r;
          c = g / r;
          g = d[i + 1]! - p;
          r = (d[i]! - g) * s + 2 * c * b;
          p = s * r;
          d[i + 1] = g + p;
          g = c * r - b;
        }
        if (r === 0 && i >= l) continue;
        d[l]! -= p;
        e[l] = g;
        e[m] = 0;
      }
    } while (m !== l);
  }
  return d;
}

/** A^T A (cols x cols) or A A^T (rows x rows), whichever is smaller, in float64. */
export function smallGram(a: ArrayLike<number>, rows: number, cols: number): { g: Float64Array; n: number } {
  if (cols <= rows) {
    const g = new Float64Array(cols * cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      for (let i = 0; i < cols; i++) {
        const x = a[o + i]!;
        if (x === 0) continue;
        const gi = i * cols;
        for (let j = i; j < cols; j++) g[gi + j]! += x * a[o + j]!;
      }
    }
    for (let i = 0; i < cols; i++) for (let j = 0; j < i; j++) g[i * cols + j] = g[j * cols + i]!;
    return { g, n: cols };
  }
  const g = new Float64Array(rows * rows);
  for (let i = 0; i < rows; i++) {
    for (let j = i; j < rows; j++) {
      let s = 0;
      const oi = i * cols,
        oj = j * cols;
      for (let k = 0; k < cols; k++) s += a[oi + k]! * a[oj + k]!;
      g[i * rows + j] = g[j * rows + i] = s;
    }
  }
  return { g, n: rows };
}

/** Singular values (descending) through the eigenvalues of the smaller Gram matrix. */
export function singularValuesFast(a: ArrayLike<number>, rows: number, cols: number): number[] {
  const { g, n } = smallGram(a, rows, cols);
  return [...symmetricEigenvalues(g, n)].map((x) => Math.sqrt(Math.max(0, x))).sort((x, y) => y - x);
}

/** Sum of singular values of a row-major [rows x cols] matrix. */
export function nuclearNorm(a: ArrayLike<number>, rows: number, cols: number): number {
  const { g, n } = smallGram(a, rows, cols);
  let s = 0;
  for (const x of symmetricEigenvalues(g, n)) s += Math.sqrt(Math.max(0, x));
  return s;
}

/** sum of sigma^q over the singular values of a [rows x cols] matrix (q = 1: nuclear norm). */
export function schattenSum(a: ArrayLike<number>, rows: number, cols: number, q: number): number {
  const { g, n } = smallGram(a, rows, cols);
  let s = 0;
  for (const x of symmetricEigenvalues(g, n)) s += Math.max(0, x) ** (q / 2);
  return s;
}

/**
 * mean over singular values of sigma^q of W_i - W_j, for every pair of rows of a
 * [n x rows*cols] stack (the difference taken in float64). q = 1 is the nuclear norm per
 * singular value; smaller q weighs the many small directions of an update more, which
 * makes the distance closer to additive along fine-tuning paths (see the module note).
 */
export function pairSchatten(stack: Float32Array, n: number, rows: number, cols: number, q: number, onPair?: () => void): Float64Array {
  const p = rows * cols;
  const out = new Float64Array(n * n);
  const diff = new Float64Array(p);
  const k = Math.min(rows, cols);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      for (let t = 0; t < p; t++) diff[t] = stack[i * p + t]! - stack[j * p + t]!;
      out[i * n + j] = out[j * n + i] = schattenSum(diff, rows, cols, q) / k;
      onPair?.();
    }
  }
  return out;
}
