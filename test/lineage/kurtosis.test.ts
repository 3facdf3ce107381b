import { test } from 'node:test';
import assert from 'node:assert/strict';
import { excessKurtosis, weightMoments } from '../../src/lineage/kurtosis.js';
import { Rng } from '../../src/util/random.js';

/** The definition written out once more, naively, in the most literal way. */
function definition(x: number[]): number {
  const n = x.length;
  const mean = x.reduce((a, b) => a + b, 0) / n;
  const m2 = x.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
  const m4 = x.reduce((a, b) => a + (b - mean) ** 4, 0) / n;
  return m4 / m2 ** 2 - 3;
}

test('Fisher excess kurtosis (biased) on hand-checkable arrays', () => {
  // symmetric two-point distribution: m4 / m2^2 = 1, so excess = -2
  assert.equal(excessKurtosis([-1, 1, -1, 1]), -2);
  // [1, 2, 3, 4, 5]: mean 3, m2 = 2, m4 = (16+1+0+1+16)/5 = 6.8 -> 6.8/4 - 3 = -1.3
  assert.ok(Math.abs(excessKurtosis([1, 2, 3, 4, 5]) - -1.3) < 1e-12);
  // shifting and scaling do not change it
  assert.ok(Math.abs(excessKurtosis([1001, 1002, 1003, 1004, 1005].map((v) => v * 7)) - -1.3) < 1e-9);
  // a single outlier among zeros: n = 10, [9 zeros, 1]: excess = (n - 3 + 1/(n-1) ... ) checked against the definition
  const spike = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
  assert.ok(Math.abs(excessKurtosis(spike) - definition(spike)) < 1e-12);
  assert.ok(Math.abs(excessKurtosis(spike) - 5.111111111111111) < 1e-12);
  assert.equal(excessKurtosis([4, 4, 4]), 0, 'constant data contributes nothing');
});

test('kurtosis of Float32Array weights matches the definition; Gaussian samples are near 0, Laplace near 3', () => {
  const rng = new Rng(3);
  const g = Float32Array.from({ length: 200_000 }, () => rng.normal());
  assert.ok(Math.abs(excessKurtosis(g) - definition([...g])) < 1e-9);
  assert.ok(Math.abs(excessKurtosis(g)) < 0.05);
  const lap = Float32Array.from({ length: 200_000 }, () => {
    const u = rng.next() - 0.5;
    return -Math.sign(u) * Math.log(1 - 2 * Math.abs(u));
  });
  assert.ok(Math.abs(excessKurtosis(lap) - 3) < 0.2, `Laplace excess kurtosis ${excessKurtosis(lap)}`);
});

test('float32 weights (the SIMD kernels, four values a step) give the moments of the plain one-value-at-a-time passes, to rounding', () => {
  const rng = new Rng(8);
  // lengths below one step, with a tail of 1-3 values, and a layer; offsets far from the spread; heavy tails
  const cases: Float32Array[] = [1, 2, 3, 4, 5, 7, 8, 9, 4099].map((n) => Float32Array.from({ length: n }, () => 0.05 * rng.normal() + 0.01));
  cases.push(Float32Array.from({ length: 300_001 }, () => 1000 + rng.normal()));
  cases.push(Float32Array.from({ length: 100_003 }, () => rng.normal() ** 3));
  for (const x of cases) {
    const fast = weightMoments(x),
      plain = weightMoments([...x]);
    assert.ok(Math.abs(fast.sumSquares - plain.sumSquares) <= 1e-13 * plain.sumSquares, `${x.length}: sum of squares`);
    // kurtosis + 3 = m4 / m2^2 is what the sums give; its rounding is relative to that
    assert.ok(Math.abs(fast.kurtosis - plain.kurtosis) <= 1e-11 * (plain.kurtosis + 3), `${x.length}: kurtosis ${fast.kurtosis} vs ${plain.kurtosis}`);
  }
  assert.deepEqual(weightMoments(Float32Array.of(2, 2, 2, 2, 2)), { kurtosis: 0, sumSquares: 20 }, 'constant data');
  assert.ok(Number.isNaN(weightMoments(Float32Array.of(1, 2, NaN, 4, 5, 6)).kurtosis), 'a NaN shows');
  assert.ok(Number.isNaN(weightMoments(Float32Array.of(1, Infinity, 3, 4)).kurtosis), 'an infinity shows');
});
