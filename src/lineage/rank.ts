/**
 * Matrix rank as numpy.linalg.matrix_rank computes it for float32 weights: the number of
 * singular values above sigma_max * max(m, n) * eps(float32). Used by low-rank (LoRA)
 * lineage: a LoRA update W_child - W_parent has rank r, unrelated models full rank.
 *
 * @example
 *   matrixRank(Float32Array.from([1, 2, 2, 4]), 2, 2)   // 1
 */
import { SVD, Matrix } from 'ml-matrix';
import { singularValuesFast } from './spectral.js';

export const EPS_FLOAT32 = 2 ** -23;

/** numpy's default tolerance for a matrix with largest singular value sMax. */
export function rankTolerance(sMax: number, rows: number, cols: number): number {
  return sMax * Math.max(rows, cols) * EPS_FLOAT32;
}

/** Singular values of a row-major [rows x cols] matrix (descending). */
export function singularValues(values: ArrayLike<number>, rows: number, cols: number): number[] {
  // ml-matrix's SVD wants rows >= cols; the singular values of the transpose are the same.
  const tall = rows >= cols;
  const r = tall ? rows : cols;
  const c = tall ? cols : rows;
  const m = new Matrix(r, c);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const v = values[i * cols + j]!;
      if (tall) m.set(i, j, v);
      else m.set(j, i, v);
    }
  }
  const svd = new SVD(m, { computeLeftSingularVectors: false, computeRightSingularVectors: false, autoTranspose: false });
  return [...svd.diagonal].map(Math.abs).sort((a, b) => b - a);
}

/** rank with numpy's default float32 tolerance; an all-zero matrix has rank 0. */
export function matrixRank(values: ArrayLike<number>, rows: number, cols: number): number {
  return rankOf(singularValues(values, rows, cols), rows, cols);
}

/** How many of the descending singular values `s` of a rows x cols matrix exceed numpy's tolerance. */
function rankOf(s: readonly number[], rows: number, cols: number): number {
  const sMax = s[0] ?? 0;
  if (sMax === 0) return 0;
  const tol = rankTolerance(sMax, rows, cols);
  return s.filter((x) => x > tol).length;
}

/**
 * The same rank from the eigenvalues of the smaller Gram matrix (several times faster than
 * ml-matrix's SVD). Squaring the singular values resolves them down to about
 * sqrt(eps64) ~ 1.5e-8 x sigma_max, far below the tolerance of max(m, n) x 1.2e-7 x sigma_max.
 */
export function matrixRankFast(values: ArrayLike<number>, rows: number, cols: number): number {
  return rankOf(singularValuesFast(values, rows, cols), rows, cols);
}

/** rank(W_i - W_j) for every pair of rows of a [n x rows*cols] stack; the difference is taken in float32 as numpy would. */
export function pairRanks(stack: Float32Array, n: number, rows: number, cols: number, onPair?: () => void): Float64Array {
  const p = rows * cols;
  const out = new Float64Array(n * n);
  const diff = new Float32Array(p);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      for (let k = 0; k < p; k++) diff[k] = stack[i * p + k]! - stack[j * p + k]!;
      out[i * n + j] = out[j * n + i] = matrixRankFast(diff, rows, cols);
      onPair?.();
    }
  }
  return out;
}
