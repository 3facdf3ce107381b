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
  const n = x.length;
  if (n === 0) return NaN;
  let s = 0;
  for (let i = 0; i < n; i++) s += x[i]!;
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
  if (m2 === 0) return 0;
  return m4 / (m2 * m2) - 3;
}
