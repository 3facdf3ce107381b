/**
 * Fisher excess kurtosis, biased estimator (scipy.stats.kurtosis defaults): m4 / m2^2 - 3
 * with central moments m_k = mean((x - mean)^k), in float64, from central sums (two passes
 * per chunk, chunks merged stably), so the result does not depend on the weights' offset. The reference's direction signal: a model's
 * kurtosis is the sum over its selected layers.
 *
 * @example
 *   excessKurtosis([1, 2, 3, 4, 100])   // 0.2447...
 */
import { kernels } from './simd.js';

export function excessKurtosis(x: ArrayLike<number>): number {
  return weightMoments(x).kurtosis;
}

/** values per kernel call: 256 KiB of float32, copied once into the kernels' memory, where both passes over it stay in L2 (and the memory stays small for any layer) */
export const MOMENT_CHUNK = 65536;

/**
 * Running moments of rows of weights, MOMENT_FIELDS float64 per row (a plain or shared
 * array: the lineage pool's threads merge into it, kurtosis.ts's functions read it):
 * count, mean, M2, M3, M4 (sums of the powers of x - mean) and the sum of squares.
 * Values are taken in chunks of MOMENT_CHUNK (two passes each, in cache: the chunk's
 * mean, then its central sums) and chunks merged in order with Pebay's pairwise formulas
 * (numerically stable like two passes over the whole row: no raw fourth powers), so a row
 * can be fed slice by slice (lineage reads column panels of layers, measure.ts) and gives
 * the same bits as when fed whole, as long as every slice but the last holds a multiple of
 * MOMENT_CHUNK values.
 */
export const MOMENT_FIELDS = 6;
const COUNT = 0,
  MEAN = 1,
  M2 = 2,
  M3 = 3,
  M4 = 4,
  SQUARES = 5;

/** Merges a part (count, mean, central sums M2..M4, sum of squares) into the row's moments at `at`. */
function mergeInto(acc: Float64Array, at: number, nb: number, meanB: number, m2b: number, m3b: number, m4b: number, squares: number): void {
  const na = acc[at + COUNT]!;
  acc[at + SQUARES]! += squares;
  if (na === 0) {
    acc[at + COUNT] = nb;
    acc[at + MEAN] = meanB;
    acc[at + M2] = m2b;
    acc[at + M3] = m3b;
    acc[at + M4] = m4b;
    return;
  }
  const n = na + nb,
    d = meanB - acc[at + MEAN]!,
    m2a = acc[at + M2]!,
    m3a = acc[at + M3]!;
  const dn = d / n,
    dn2 = dn * dn,
    term = d * dn * na * nb; // d^2 na nb / n
  acc[at + COUNT] = n;
  acc[at + MEAN]! += dn * nb;
  acc[at + M2] = m2a + m2b + term;
  acc[at + M3] = m3a + m3b + term * dn * (na - nb) + 3 * dn * (na * m2b - nb * m2a);
  acc[at + M4]! += m4b + term * dn2 * (na * na - na * nb + nb * nb) + 6 * dn2 * (na * na * m2b + nb * nb * m2a) + 4 * dn * (na * m3b - nb * m3a);
}

/** The values' moments merged into the row's at `at` (see MOMENT_FIELDS): the SIMD kernels, four values a step, chunk by chunk; the last length % 4 values here. */
export function accumulateMoments(acc: Float64Array, at: number, x: Float32Array): void {
  const k = kernels();
  const n = x.length,
    body = n - (n % 4);
  const scratch = k.floats(Math.min(MOMENT_CHUNK, body));
  for (let c0 = 0; c0 < body; c0 += MOMENT_CHUNK) {
    const count = Math.min(MOMENT_CHUNK, body - c0);
    scratch.set(x.subarray(c0, c0 + count));
    k.sums(count);
    let o = k.out;
    const sum = o[0]! + o[1]! + (o[2]! + o[3]!),
      squares = o[4]! + o[5]! + (o[6]! + o[7]!);
    const mean = sum / count;
    k.central(count, mean);
    o = k.out;
    mergeInto(acc, at, count, mean, o[0]! + o[1]! + (o[2]! + o[3]!), o[8]! + o[9]! + (o[10]! + o[11]!), o[4]! + o[5]! + (o[6]! + o[7]!), squares);
  }
  if (body < n) {
    const tail = Array.from(x.subarray(body));
    const p = plainMoments(tail);
    mergeInto(acc, at, tail.length, p.mean, p.m2, p.m3, p.m4, p.squares);
  }
}

/** Two passes over any numbers, one value at a time. */
function plainMoments(x: ArrayLike<number>): { mean: number; m2: number; m3: number; m4: number; squares: number } {
  const n = x.length;
  let sum = 0,
    squares = 0;
  for (let i = 0; i < n; i++) {
    sum += x[i]!;
    squares += x[i]! * x[i]!;
  }
  const mean = sum / n;
  let m2 = 0,
    m3 = 0,
    m4 = 0;
  for (let i = 0; i < n; i++) {
    const d = x[i]! - mean,
      d2 = d * d;
    m2 += d2;
    m3 += d2 * d;
    m4 += d2 * d2;
  }
  return { mean, m2, m3, m4, squares };
}

/** Excess kurtosis and sum of squares of the row whose moments are at `at`. */
export function momentsResult(acc: Float64Array, at: number): { kurtosis: number; sumSquares: number } {
  const n = acc[at + COUNT]!,
    sumSquares = acc[at + SQUARES]!;
  if (n === 0) return { kurtosis: NaN, sumSquares };
  const m2 = acc[at + M2]! / n,
    m4 = acc[at + M4]! / n;
  // constant data: scipy gives NaN; 0 keeps a constant layer from poisoning the per-model sum
  if (m2 === 0) return { kurtosis: 0, sumSquares };
  return { kurtosis: m4 / (m2 * m2) - 3, sumSquares };
}

/**
 * Excess kurtosis and the sum of squares of one layer's weights. The sum of squares rides
 * on the kurtosis's first pass: lineage reads every weight once per layer for both
 * signals. Float32 weights (every layer lineage reads) go through accumulateMoments, any
 * other numbers through two plain passes.
 */
export function weightMoments(x: ArrayLike<number>): { kurtosis: number; sumSquares: number } {
  const acc = new Float64Array(MOMENT_FIELDS);
  if (x instanceof Float32Array) accumulateMoments(acc, 0, x);
  else if (x.length > 0) {
    const p = plainMoments(x);
    mergeInto(acc, 0, x.length, p.mean, p.m2, p.m3, p.m4, p.squares);
  }
  return momentsResult(acc, 0);
}
