/**
 * Fisher excess kurtosis, biased estimator (scipy.stats.kurtosis defaults): m4 / m2^2 - 3
 * with central moments m_k = mean((x - mean)^k). Two passes in float64 so the result does
 * not depend on the weights' offset. The reference's direction signal: a model's
 * kurtosis is the sum over its selected layers.
 *
 * @example
 *   excessKurtosis([1, 2, 3, 4, 100])   // 0.2447...
 */
export function excessKurtosis(x: ArrayLike<number>): number {
  return weightMoments(x).kurtosis;
}

/**
 * Excess kurtosis and the sum of squares of one layer's weights. The sum of squares rides
 * on the kurtosis's first pass (same order of additions as a loop of its own, so the same
 * value): lineage reads every weight twice per layer for both signals, not three times.
 */
export function weightMoments(x: ArrayLike<number>): { kurtosis: number; sumSquares: number } {
  const n = x.length;
  if (n === 0) return { kurtosis: NaN, sumSquares: 0 };
  let s = 0,
    sumSquares = 0;
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    s += v;
    sumSquares += v * v;
  }
  const mean = s / n;
  let m2 = 0,
    m4 = 0;
  for (let i = 0; i < n; i++) {
    const d = x[i]! - mean;
    const d2 = d * d;
    m2 += d2;
    m4 += d2 * d2;
  }
  m2 /= n;
  m4 /= n;
  // constant data: scipy gives NaN; 0 keeps a constant layer from poisoning the per-model sum
  if (m2 === 0) return { kurtosis: 0, sumSquares };
  return { kurtosis: m4 / (m2 * m2) - 3, sumSquares };
}
