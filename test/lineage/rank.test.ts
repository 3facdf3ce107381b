import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matrixRank, matrixRankFast, rankTolerance, singularValues, EPS_FLOAT32, pairRanks } from '../../src/lineage/rank.js';
import { Rng } from '../../src/util/random.js';

/** A [rows x cols] matrix of exact rank r: sum of r random outer products. */
function lowRank(rows: number, cols: number, r: number, rng: Rng): Float32Array {
  const m = new Float32Array(rows * cols);
  for (let k = 0; k < r; k++) {
    const a = Array.from({ length: rows }, () => rng.normal());
    const b = Array.from({ length: cols }, () => rng.normal());
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) m[i * cols + j]! += a[i]! * b[j]!;
  }
  return m;
}

test('rank of hand-made matrices', () => {
  assert.equal(matrixRank([1, 2, 2, 4], 2, 2), 1);
  assert.equal(matrixRank([1, 0, 0, 1], 2, 2), 2);
  assert.equal(matrixRank([0, 0, 0, 0], 2, 2), 0);
  assert.equal(matrixRank([1, 2, 3, 2, 4, 6], 2, 3), 1, 'wide');
  assert.equal(matrixRank([1, 2, 3, 4, 5, 6, 7, 8, 10], 3, 3), 3);
  assert.equal(matrixRank([1, 2, 3, 4, 5, 6, 7, 8, 9], 3, 3), 2);
  const rng = new Rng(1);
  for (const [rows, cols, r] of [
    [32, 32, 4],
    [40, 24, 7],
    [24, 40, 1],
    [16, 16, 16],
    [64, 64, 8],
  ] as const) {
    const m = lowRank(rows, cols, r, rng);
    assert.equal(matrixRank(m, rows, cols), r, `${rows}x${cols} rank ${r}`);
    assert.equal(matrixRankFast(m, rows, cols), r, `fast path: ${rows}x${cols} rank ${r}`);
  }
});

test("the tolerance is numpy's: sigma_max * max(m, n) * eps(float32)", () => {
  assert.equal(EPS_FLOAT32, 1.1920928955078125e-7);
  assert.equal(rankTolerance(2, 3, 5), 2 * 5 * EPS_FLOAT32);
  // diag(1, t): t just above the tolerance counts, just below does not
  const tol = rankTolerance(1, 2, 2);
  assert.equal(matrixRank([1, 0, 0, tol * 1.01], 2, 2), 2);
  assert.equal(matrixRank([1, 0, 0, tol * 0.99], 2, 2), 1);
  assert.equal(matrixRankFast([1, 0, 0, tol * 1.01], 2, 2), 2);
  assert.equal(matrixRankFast([1, 0, 0, tol * 0.99], 2, 2), 1);
  assert.deepEqual(singularValues([3, 0, 0, -4], 2, 2), [4, 3]);
});

test('pairRanks: a LoRA-like update of rank r gives rank r between parent and child', () => {
  const rng = new Rng(2);
  const n = 16;
  const base = Float32Array.from({ length: n * n }, () => rng.normal());
  const upd = lowRank(n, n, 3, rng);
  const child = base.map((v, i) => v + 0.01 * upd[i]!);
  const other = Float32Array.from({ length: n * n }, () => rng.normal());
  const stack = new Float32Array(3 * n * n);
  stack.set(base, 0);
  stack.set(child, n * n);
  stack.set(other, 2 * n * n);
  const r = pairRanks(stack, 3, n, n);
  assert.equal(r[0 * 3 + 1], 3);
  assert.equal(r[1 * 3 + 0], 3);
  assert.equal(r[0 * 3 + 2], n);
  assert.equal(r[0], 0);
});
