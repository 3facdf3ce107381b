import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nuclearNorm, pairSchatten, schattenSum, singularValuesFast, symmetricEigenvalues } from '../../src/lineage/spectral.js';
import { singularValues } from '../../src/lineage/rank.js';
import { Rng } from '../../src/util/random.js';

test('symmetric eigenvalues: hand-made cases and agreement with ml-matrix SVD', () => {
  const e = [...symmetricEigenvalues(Float64Array.from([2, 1, 1, 2]), 2)].sort((a, b) => a - b);
  assert.ok(Math.abs(e[0]! - 1) < 1e-14 && Math.abs(e[1]! - 3) < 1e-14);
  const diag = [...symmetricEigenvalues(Float64Array.from([5, 0, 0, 0, -1, 0, 0, 0, 2]), 3)].sort((a, b) => a - b);
  assert.deepEqual(diag, [-1, 2, 5]);
  const rng = new Rng(9);
  for (const [r, c] of [
    [12, 12],
    [20, 7],
    [5, 30],
    [64, 64],
  ] as const) {
    const a = Float64Array.from({ length: r * c }, () => rng.normal());
    const fast = singularValuesFast(a, r, c);
    const ref = singularValues(a, r, c);
    assert.equal(fast.length, Math.min(r, c));
    fast.forEach((s, i) => assert.ok(Math.abs(s - ref[i]!) < 1e-9 * ref[0]!, `${r}x${c} sigma ${i}: ${s} vs ${ref[i]}`));
  }
});

test('nuclear norm and Schatten sums on known matrices', () => {
  assert.ok(Math.abs(nuclearNorm([3, 0, 0, -4], 2, 2) - 7) < 1e-12);
  // rank one: u v^T has one singular value |u||v|
  assert.ok(Math.abs(nuclearNorm([1, 2, 2, 4], 2, 2) - 5) < 1e-12);
  assert.ok(Math.abs(schattenSum([3, 0, 0, -4], 2, 2, 0.5) - (Math.sqrt(3) + 2)) < 1e-12);
  assert.ok(Math.abs(schattenSum([3, 0, 0, -4], 2, 2, 2) - 25) < 1e-12, 'q = 2 is the squared Frobenius norm');
});

test('spectral distances are additive for updates in independent directions, Frobenius is not', () => {
  // parent P, child C = P + A (rank 1), sibling S = P + B (rank 1, orthogonal directions)
  const n = 4;
  const P = new Float32Array(n * n).fill(0.5);
  const A = new Float32Array(n * n),
    B = new Float32Array(n * n);
  A[0] = 1; // e1 e1^T
  B[5] = 1; // e2 e2^T
  const stack = new Float32Array(3 * n * n);
  for (let k = 0; k < n * n; k++) {
    stack[k] = P[k]!;
    stack[n * n + k] = P[k]! + A[k]!;
    stack[2 * n * n + k] = P[k]! + B[k]!;
  }
  const d = pairSchatten(stack, 3, n, n, 0.5);
  // child-sibling = parent-child + parent-sibling exactly (spectra add), per singular value mean over 4
  assert.ok(Math.abs(d[1 * 3 + 2]! - (d[0 * 3 + 1]! + d[0 * 3 + 2]!)) < 1e-9);
  assert.ok(Math.abs(d[1]! - 0.25) < 1e-9);
});

test("a near-copy sibling that moved along the child's direction fools the RMS distance, not the spectral one", () => {
  // P parent; A = P + e1e1^T + 0.1 e2e2^T (big update); B = P + 0.05 e2e2^T + 0.05 e3e3^T (near-copy sibling)
  const n = 4,
    p = n * n;
  const stack = new Float32Array(3 * p).fill(0.25);
  stack[p + 0]! += 1;
  stack[p + 5]! += 0.1;
  stack[2 * p + 5]! += 0.05;
  stack[2 * p + 10]! += 0.05;
  const rms = (i: number, j: number): number => Math.sqrt([...Array(p).keys()].reduce((s, k) => s + (stack[i * p + k]! - stack[j * p + k]!) ** 2, 0));
  assert.ok(rms(1, 2) < rms(1, 0), 'Frobenius: A looks closer to its sibling than to its parent');
  const d = pairSchatten(stack, 3, n, n, 0.25);
  assert.ok(d[1 * 3 + 0]! < d[1 * 3 + 2]!, 'spectral: A is closer to its parent');
});
