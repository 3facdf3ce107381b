import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Matrix, QrDecomposition } from 'ml-matrix';
import { Rng } from '../../src/util/random.js';
import { centerGramUnbiased, gramMatrix, hsicUnbiased, linearCka, linearCkaFromGrams, frobenius } from '../../src/stitch/cka.js';

const randn = (rng: Rng, n: number, p: number): Float64Array => Float64Array.from({ length: n * p }, () => rng.normal());

/** X (n x p) times M (p x q), row-major. */
function matmul(x: Float64Array, n: number, p: number, m: Matrix): Float64Array {
  return Float64Array.from(new Matrix(Array.from({ length: n }, (_, i) => Array.from(x.subarray(i * p, (i + 1) * p)))).mmul(m).to1DArray());
}

/** The feature-space formula ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) on column-centred X, Y. */
function featureCka(x: Float64Array, p1: number, y: Float64Array, p2: number, n: number): number {
  const center = (a: Float64Array, p: number): Matrix => {
    const m = new Matrix(Array.from({ length: n }, (_, i) => Array.from(a.subarray(i * p, (i + 1) * p))));
    return m.subRowVector(m.mean('column'));
  };
  const X = center(x, p1);
  const Y = center(y, p2);
  const fro2 = (m: Matrix): number => m.to1DArray().reduce((s, v) => s + v * v, 0);
  return fro2(Y.transpose().mmul(X)) / Math.sqrt(fro2(X.transpose().mmul(X)) * fro2(Y.transpose().mmul(Y)));
}

/** Song et al. 2012, eq. 5, written out directly from the paper. */
function songHsic(k: Float64Array, l: Float64Array, n: number): number {
  const kt = Float64Array.from(k);
  const lt = Float64Array.from(l);
  for (let i = 0; i < n; i++) {
    kt[i * n + i] = 0;
    lt[i * n + i] = 0;
  }
  let trace = 0;
  let sumK = 0;
  let sumL = 0;
  let oneKL1 = 0;
  const colL = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) colL[i]! += lt[i * n + j]!;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      trace += kt[i * n + j]! * lt[j * n + i]!;
      sumK += kt[i * n + j]!;
      sumL += lt[i * n + j]!;
      oneKL1 += kt[i * n + j]! * colL[j]!;
    }
  }
  return (trace + (sumK * sumL) / ((n - 1) * (n - 2)) - (2 / (n - 2)) * oneKL1) / (n * (n - 3));
}

test('Gram-form CKA equals the feature-space formula on random matrices', () => {
  const rng = new Rng(1);
  for (const [n, p1, p2] of [
    [12, 5, 9],
    [30, 40, 3],
    [7, 2, 2],
  ] as const) {
    const x = randn(rng, n, p1);
    // Y partly depends on X so that the values are not all near one number
    const y = Float64Array.from({ length: n * p2 }, (_, i) => rng.normal() + x[Math.floor(i / p2) * p1]! * 2);
    const expected = featureCka(x, p1, y, p2, n);
    const got = linearCka(x, p1, y, p2, n)!;
    assert.ok(Math.abs(got - expected) < 1e-12, `n=${n}: ${got} vs ${expected}`);
    assert.ok(got > 0 && got < 1);
  }
});

test('CKA(X, X) = 1 for both estimators', () => {
  const x = randn(new Rng(2), 25, 8);
  assert.ok(Math.abs(linearCka(x, 8, x, 8, 25)! - 1) < 1e-12);
  assert.ok(Math.abs(linearCka(x, 8, x, 8, 25, { debiased: true })! - 1) < 1e-12);
});

test('CKA is invariant to orthogonal transforms and isotropic scaling of either side, but not to anisotropic scaling', () => {
  const rng = new Rng(3);
  const n = 20;
  const p = 6;
  const q = 4;
  const x = randn(rng, n, p);
  const y = randn(rng, n, q).map((v, i) => v + x[Math.floor(i / q) * p + (i % q)]!);
  const orth = new QrDecomposition(new Matrix(Array.from({ length: p }, () => Array.from({ length: p }, () => rng.normal())))).orthogonalMatrix;
  const xr = matmul(x, n, p, orth).map((v) => v * 3.7);
  for (const debiased of [false, true]) {
    const base = linearCka(x, p, y, q, n, { debiased })!;
    const moved = linearCka(xr, p, y, q, n, { debiased })!;
    assert.ok(Math.abs(base - moved) < 1e-10, `debiased=${debiased}: ${base} vs ${moved}`);
    // the rotated, scaled copy is the same representation
    assert.ok(Math.abs(linearCka(x, p, xr, p, n, { debiased })! - 1) < 1e-10);
    // shifting by a constant vector changes nothing (centring)
    const shifted = y.map((v, i) => v + 10 * (i % q));
    assert.ok(Math.abs(linearCka(x, p, shifted, q, n, { debiased })! - base) < 1e-10);
    // scaling one feature is not an isotropic transform: the value moves
    const aniso = x.map((v, i) => (i % p === 0 ? v * 10 : v));
    assert.ok(Math.abs(linearCka(aniso, p, y, q, n, { debiased })! - base) > 1e-3);
  }
});

test('the debiased estimator is the unbiased HSIC of Song et al. 2012', () => {
  const rng = new Rng(4);
  const n = 15;
  const k = gramMatrix(randn(rng, n, 7), n, 7);
  const l = gramMatrix(
    randn(rng, n, 3).map((v) => v * v),
    n,
    3,
  );
  const direct = songHsic(k, l, n);
  assert.ok(Math.abs(hsicUnbiased(k, l, n) - direct) < 1e-9 * Math.abs(direct) + 1e-12, `${hsicUnbiased(k, l, n)} vs ${direct}`);
  assert.ok(Math.abs(frobenius(centerGramUnbiased(k, n), centerGramUnbiased(l, n)) / (n * (n - 3)) - direct) < 1e-9 * Math.abs(direct));
  const cka = direct / Math.sqrt(songHsic(k, k, n) * songHsic(l, l, n));
  assert.ok(Math.abs(linearCkaFromGrams(k, l, n, { debiased: true })! - cka) < 1e-9);
});

test('at small n, unrelated wide features look similar to biased CKA but not to debiased CKA', () => {
  const rng = new Rng(5);
  const n = 16;
  const p = 400;
  const biased: number[] = [];
  const debiased: number[] = [];
  for (let t = 0; t < 5; t++) {
    const x = randn(rng, n, p);
    const y = randn(rng, n, p);
    biased.push(linearCka(x, p, y, p, n)!);
    debiased.push(linearCka(x, p, y, p, n, { debiased: true })!);
  }
  const mean = (a: number[]): number => a.reduce((s, v) => s + v, 0) / a.length;
  assert.ok(mean(biased) > 0.7, `biased ${mean(biased)}`);
  assert.ok(Math.abs(mean(debiased)) < 0.05, `debiased ${mean(debiased)}`);
});

test('a constant representation has no CKA (null), and the debiased estimator refuses n < 4', () => {
  const x = randn(new Rng(6), 6, 3);
  assert.equal(linearCka(x, 3, new Float64Array(6 * 2).fill(1), 2, 6), null);
  assert.throws(() => linearCka(x, 3, x, 3, 3, { debiased: true }), /at least 4 samples/);
});
