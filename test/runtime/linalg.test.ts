import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CholeskyDecomposition, Matrix } from 'ml-matrix';
import { DenseLinalg } from '../../src/runtime/linalg.js';
import { Rng } from '../../src/util/random.js';

/** A random symmetric positive definite n x n matrix X^T X + n I (row-major). */
function spd(n: number, rng: Rng, rank = n): Float64Array {
  const x = Array.from({ length: rank }, () => Array.from({ length: n }, () => rng.normal()));
  const g = new Float64Array(n * n);
  for (const row of x) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) g[i * n + j]! += row[i]! * row[j]!;
  if (rank === n) for (let i = 0; i < n; i++) g[i * n + i]! += n;
  return g;
}

// 600 = two full 256-blocks and a remainder: exercises the ORT panel, update and solves
for (const n of [37, 600]) {
  test(`blocked Cholesky solves an SPD system of size ${n} like ml-matrix's (multiple right-hand sides)`, async () => {
    const rng = new Rng(11);
    const g = spd(n, rng);
    const m = 5;
    const r = Float64Array.from({ length: n * m }, () => rng.normal());
    const la = await DenseLinalg.create({ threads: 1 }, n);
    const f = await la.cholesky(g, n);
    assert.ok(f, 'factors');
    const x = await la.solve(f, r, m);
    await la.release();
    const want = new CholeskyDecomposition(new Matrix(Array.from({ length: n }, (_, i) => Array.from(g.subarray(i * n, (i + 1) * n))))).solve(
      new Matrix(Array.from({ length: n }, (_, i) => Array.from(r.subarray(i * m, (i + 1) * m)))),
    );
    let worst = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < m; j++) worst = Math.max(worst, Math.abs(x[i * m + j]! - want.get(i, j)) / (1e-12 + Math.abs(want.get(i, j))));
    assert.ok(worst < 1e-8, `worst relative difference ${worst}`);
    // the factor reproduces g
    let err = 0;
    for (let i = 0; i < n; i += 7)
      for (let j = 0; j <= i; j += 5) {
        let s = 0;
        for (let p = 0; p <= j; p++) s += f.l[i * n + p]! * f.l[j * n + p]!;
        err = Math.max(err, Math.abs(s - g[i * n + j]!) / n);
      }
    assert.ok(err < 1e-9, `|L L^T - g| ${err}`);
  });
}

test('a singular matrix is refused (undefined), in any block', async () => {
  const rng = new Rng(2);
  const n = 400;
  const la = await DenseLinalg.create({ threads: 1 }, n);
  assert.equal(await la.cholesky(spd(n, rng, 300), n), undefined); // rank runs out in the second block
  assert.equal(await la.cholesky(spd(n, rng, 100), n), undefined); // in the first
  await la.release();
});

test('matmul agrees with the JavaScript product', async () => {
  const rng = new Rng(4);
  const [rows, inner, cols] = [300, 280, 270];
  const a = Float64Array.from({ length: rows * inner }, () => rng.normal());
  const b = Float64Array.from({ length: inner * cols }, () => rng.normal());
  const la = await DenseLinalg.create({ threads: 1 });
  const c = await la.matmul(a, rows, inner, b, cols);
  await la.release();
  for (const [i, j] of [
    [0, 0],
    [299, 269],
    [123, 45],
  ] as const) {
    let s = 0;
    for (let p = 0; p < inner; p++) s += a[i * inner + p]! * b[p * cols + j]!;
    assert.ok(Math.abs(c[i * cols + j]! - s) < 1e-9, `c[${i},${j}] ${c[i * cols + j]} vs ${s}`);
  }
});

test('matmul reads either operand stored transposed (Gemm transA / transB), also from subarrays', async () => {
  const rng = new Rng(6);
  const [rows, inner, cols] = [300, 280, 270];
  const a = Float64Array.from({ length: rows * inner }, () => rng.normal());
  const b = Float64Array.from({ length: inner * cols }, () => rng.normal());
  const t = (x: Float64Array, r: number, c: number): Float64Array => Float64Array.from({ length: r * c }, (_, i) => x[(i % r) * c + Math.floor(i / r)]!);
  const la = await DenseLinalg.create({ threads: 1 });
  const want = await la.matmul(a, rows, inner, b, cols);
  // a stored as inner x rows, b as cols x inner; the transposed a sits inside a larger array
  const padded = new Float64Array(rows * inner + 7);
  padded.set(t(a, rows, inner), 5);
  for (const [name, got] of [
    ['a^T', await la.matmul(padded.subarray(5, 5 + rows * inner), rows, inner, b, cols, { a: true })],
    ['b^T', await la.matmul(a, rows, inner, t(b, inner, cols), cols, { b: true })],
    ['both', await la.matmul(t(a, rows, inner), rows, inner, t(b, inner, cols), cols, { a: true, b: true })],
  ] as const) {
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
    assert.ok(worst < 1e-10, `${name}: ${worst}`);
  }
  await la.release();
});

test('addLowerGram adds x x^T to the lower triangle only, over several row slices', async () => {
  const rng = new Rng(8);
  const [n, rows] = [1100, 40];
  const x = Float64Array.from({ length: n * rows }, () => rng.normal());
  const c = new Float64Array(n * n).fill(1);
  const la = await DenseLinalg.create({ threads: 1 });
  await la.addLowerGram(c, n, x, rows);
  await la.release();
  for (const [i, j] of [
    [0, 0],
    [1099, 0],
    [1099, 1099],
    [1030, 1020],
    [700, 3],
    [3, 700],
    [1020, 1030],
  ] as const) {
    let s = 1;
    if (j <= i) for (let p = 0; p < rows; p++) s += x[i * rows + p]! * x[j * rows + p]!;
    assert.ok(Math.abs(c[i * n + j]! - s) < 1e-10, `c[${i},${j}] ${c[i * n + j]} vs ${s}`);
  }
});

test('a Cholesky taller than one slice below its first block (n = 1300) factors and solves', async () => {
  const rng = new Rng(12);
  const n = 1300,
    m = 2;
  const la = await DenseLinalg.create({ threads: 1 });
  const x = Float64Array.from({ length: 200 * n }, () => rng.normal());
  const g = await la.matmul(x, n, 200, x, n, { a: true });
  for (let i = 0; i < n; i++) g[i * n + i]! += n;
  const r = Float64Array.from({ length: n * m }, () => rng.normal());
  const f = await la.cholesky(g, n);
  assert.ok(f, 'factors');
  const sol = await la.solve(f, r, m);
  const back = await la.matmul(g, n, n, sol, m);
  await la.release();
  let worst = 0;
  for (let i = 0; i < n * m; i++) worst = Math.max(worst, Math.abs(back[i]! - r[i]!));
  assert.ok(worst < 1e-8, `|g x - r| ${worst}`);
});
