/**
 * Fisher excess kurtosis, biased estimator (scipy.stats.kurtosis defaults): m4 / m2^2 - 3
 * with central moments m_k = mean((x - mean)^k). Two passes in float64 so the result does
 * not depend on the weights' offset. The reference's direction signal: a model's
 * kurtosis is the sum over its selected layers.
 *
 * @example
 *   excessKurtosis([1, 2, 3, 4, 100])   // 0.2447...
 */
import { kernels } from './simd.js';

export function excessKurtosis(x: ArrayLike<number>): number {
  return weightMoments(x).kurtosis;
}

/** The two passes' sums: of x and x^2 (first pass), of (x - mean)^2 and (x - mean)^4 (second). */
interface PassSums {
  first(): [number, number];
  second(mean: number): [number, number];
}

/** values per kernel call: 256 KiB of float32, copied into the kernels' memory, where both sums stay in L2 (and the memory stays small for any layer) */
const CHUNK = 65536;

/**
 * Float32 weights (every layer lineage reads): the SIMD kernels, four values a step in
 * float64 lanes, chunk by chunk (chunk sums added in order); the last count % 4 values
 * here, in order.
 */
function float32Passes(x: Float32Array): PassSums {
  const k = kernels();
  const n = x.length,
    body = n - (n % 4);
  const scratch = k.floats(Math.min(CHUNK, body));
  /** the kernel over every chunk, its two sums (lanes added per chunk) added in chunk order */
  const chunks = (pass: (count: number) => void): [number, number] => {
    let a = 0,
      b = 0;
    for (let c0 = 0; c0 < body; c0 += CHUNK) {
      const count = Math.min(CHUNK, body - c0);
      scratch.set(x.subarray(c0, c0 + count));
      pass(count);
      const o = k.out;
      a += o[0]! + o[1]! + (o[2]! + o[3]!);
      b += o[4]! + o[5]! + (o[6]! + o[7]!);
    }
    return [a, b];
  };
  return {
    first() {
      let [s, q] = chunks((count) => k.sums(count));
      for (let i = body; i < n; i++) {
        s += x[i]!;
        q += x[i]! * x[i]!;
      }
      return [s, q];
    },
    second(mean) {
      let [m2, m4] = chunks((count) => k.central(count, mean));
      for (let i = body; i < n; i++) {
        const d = x[i]! - mean,
          d2 = d * d;
        m2 += d2;
        m4 += d2 * d2;
      }
      return [m2, m4];
    },
  };
}

/** Any other numbers (doubles the float32 kernels would round): the same passes, one value at a time. */
function plainPasses(x: ArrayLike<number>): PassSums {
  const n = x.length;
  return {
    first() {
      let s = 0,
        q = 0;
      for (let i = 0; i < n; i++) {
        s += x[i]!;
        q += x[i]! * x[i]!;
      }
      return [s, q];
    },
    second(mean) {
      let m2 = 0,
        m4 = 0;
      for (let i = 0; i < n; i++) {
        const d = x[i]! - mean,
          d2 = d * d;
        m2 += d2;
        m4 += d2 * d2;
      }
      return [m2, m4];
    },
  };
}

/**
 * Excess kurtosis and the sum of squares of one layer's weights. The sum of squares rides
 * on the kurtosis's first pass: lineage reads every weight twice per layer for both
 * signals, not three times.
 */
export function weightMoments(x: ArrayLike<number>): { kurtosis: number; sumSquares: number } {
  const n = x.length;
  if (n === 0) return { kurtosis: NaN, sumSquares: 0 };
  const passes = x instanceof Float32Array ? float32Passes(x) : plainPasses(x);
  const [sum, sumSquares] = passes.first();
  const [s2, s4] = passes.second(sum / n);
  const m2 = s2 / n,
    m4 = s4 / n;
  // constant data: scipy gives NaN; 0 keeps a constant layer from poisoning the per-model sum
  if (m2 === 0) return { kurtosis: 0, sumSquares };
  return { kurtosis: m4 / (m2 * m2) - 3, sumSquares };
}
