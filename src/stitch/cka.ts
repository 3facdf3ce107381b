/**
 * Linear CKA (centred kernel alignment, Kornblith et al. 2019) in its Gram-matrix form:
 * with K = X X^T and L = Y Y^T over the same n inputs,
 *   CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)),
 * which equals ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) for centred X, Y but costs n x n
 * whatever the feature counts (a stem's 25k features or a pooled 256-vector alike).
 * The biased estimator centres with H = I - 11^T/n; the debiased one uses the unbiased
 * HSIC estimator of Song et al. 2012 (as in Nguyen et al. 2021), which removes the
 * upward bias of CKA between unrelated high-dimensional features at small n.
 *
 * @example
 *   const k = gramMatrix(x, n, p1), l = gramMatrix(y, n, p2);   // x: n x p1 row-major
 *   linearCkaFromGrams(k, l, n);                                 // biased, in [0, 1]
 *   linearCkaFromGrams(k, l, n, { debiased: true });
 */
import { UserError } from '../util/errors.js';

/** A symmetric n x n matrix, row-major float64. */
export type Gram = Float64Array;

export interface CkaOptions {
  /** the unbiased HSIC estimator (needs n >= 4) */
  debiased?: boolean;
}

/** K = X X^T of a row-major n x p matrix, in float64 (small inputs and tests; large ones go through ORT, cka-grams.ts). */
export function gramMatrix(x: ArrayLike<number>, n: number, p: number): Gram {
  if (x.length < n * p) throw new Error(`gramMatrix: ${x.length} values for ${n} x ${p}`);
  const k = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let f = 0; f < p; f++) s += x[i * p + f]! * x[j * p + f]!;
      k[i * n + j] = s;
      k[j * n + i] = s;
    }
  }
  return k;
}

/** H K H: the Gram matrix of the column-centred features. */
export function centerGram(k: Gram, n: number): Gram {
  const out = new Float64Array(n * n);
  const mean = rowMeans(k, n, n);
  let grand = 0;
  for (let i = 0; i < n; i++) grand += mean[i]!;
  grand /= n;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) out[i * n + j] = k[i * n + j]! - mean[i]! - mean[j]! + grand;
  }
  return out;
}

/**
 * The unbiased-HSIC centring (Kornblith et al.'s `center_gram(unbiased=True)`): zero the
 * diagonal, subtract adjusted row/column means, zero the diagonal again. The Frobenius
 * product of two such matrices is n (n - 3) times Song et al.'s unbiased HSIC.
 */
export function centerGramUnbiased(k: Gram, n: number): Gram {
  if (n < 4) throw new UserError(`the debiased CKA estimator needs at least 4 samples, got ${n}`);
  const out = Float64Array.from(k);
  for (let i = 0; i < n; i++) out[i * n + i] = 0;
  const means = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += out[i * n + j]!;
    means[i] = s / (n - 2);
    total += means[i]!;
  }
  const shift = total / (2 * (n - 1));
  for (let i = 0; i < n; i++) means[i] = means[i]! - shift;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) out[i * n + j] = i === j ? 0 : out[i * n + j]! - means[i]! - means[j]!;
  }
  return out;
}

/** The Frobenius inner product sum_ij a_ij b_ij. */
export function frobenius(a: Gram, b: Gram): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Biased HSIC estimate tr(K H L H) / (n - 1)^2. */
export function hsicBiased(k: Gram, l: Gram, n: number): number {
  return frobenius(centerGram(k, n), centerGram(l, n)) / ((n - 1) * (n - 1));
}

/** Unbiased HSIC estimate (Song et al. 2012). */
export function hsicUnbiased(k: Gram, l: Gram, n: number): number {
  return frobenius(centerGramUnbiased(k, n), centerGramUnbiased(l, n)) / (n * (n - 3));
}

/** A Gram matrix centred once, with its own self-product, for comparing against many others. */
export interface CenteredGram {
  n: number;
  debiased: boolean;
  centered: Gram;
  /** <Kc, Kc>_F */
  self: number;
}

export function prepareGram(k: Gram, n: number, opts: CkaOptions = {}): CenteredGram {
  if (k.length !== n * n) throw new Error(`prepareGram: ${k.length} values for ${n} x ${n}`);
  const centered = opts.debiased ? centerGramUnbiased(k, n) : centerGram(k, n);
  return { n, debiased: !!opts.debiased, centered, self: frobenius(centered, centered) };
}

/**
 * CKA between two prepared Gram matrices. null when either representation is constant over
 * the samples (no variance to align) or, for the debiased estimator, when its self-HSIC
 * estimate is not positive (too few samples for that representation).
 */
export function ckaPrepared(a: CenteredGram, b: CenteredGram): number | null {
  if (a.n !== b.n || a.debiased !== b.debiased) throw new Error('ckaPrepared: Gram matrices of different sample counts or estimators');
  const denom = Math.sqrt(a.self * b.self);
  if (!(a.self > 0 && b.self > 0 && Number.isFinite(denom)) || denom === 0) return null;
  return frobenius(a.centered, b.centered) / denom;
}

/** Linear CKA from two Gram matrices over the same n inputs. */
export function linearCkaFromGrams(k: Gram, l: Gram, n: number, opts: CkaOptions = {}): number | null {
  return ckaPrepared(prepareGram(k, n, opts), prepareGram(l, n, opts));
}

/**
 * Linear CKA of two row-major feature matrices X (n x p1) and Y (n x p2).
 *
 * @example
 *   // two 100 x 64 and 100 x 32 feature matrices, rows are the same 100 images
 *   const cka = linearCka(x, 64, y, 32, 100);
 */
export function linearCka(x: ArrayLike<number>, p1: number, y: ArrayLike<number>, p2: number, n: number, opts: CkaOptions = {}): number | null {
  return linearCkaFromGrams(gramMatrix(x, n, p1), gramMatrix(y, n, p2), n, opts);
}

function rowMeans(k: Gram, n: number, m: number): Float64Array {
  const mean = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < m; j++) s += k[i * m + j]!;
    mean[i] = s / m;
  }
  return mean;
}
