import { test } from 'node:test';
import assert from 'node:assert/strict';
import { excessKurtosis } from '../../src/lineage/kurtosis.js';
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
