import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clipGradNorm, globalNorm } from '../../src/autodiff/clip.js';
import { UserError } from '../../src/util/errors.js';

const grads = (...values: number[][]): Map<string, Float32Array> => new Map(values.map((v, i) => [`g${i}`, Float32Array.from(v)]));

test('the global norm spans every gradient; above maxNorm all are scaled by one factor', () => {
  const g = grads([3, 0, 0], [0, 4]); // norm 5
  assert.equal(clipGradNorm(g, 1), 5);
  const scale = 1 / (5 + 1e-6); // torch.nn.utils.clip_grad_norm_: max_norm / (norm + 1e-6)
  assert.deepEqual([...g.get('g0')!], [Math.fround(3 * scale), 0, 0]);
  assert.deepEqual([...g.get('g1')!], [0, Math.fround(4 * scale)]);
  assert.ok(Math.abs(globalNorm(g.values()) - 1) < 1e-6);
});

test('gradients below maxNorm are left alone', () => {
  const g = grads([3], [4]);
  assert.equal(clipGradNorm(g, 5.01), 5);
  assert.deepEqual(
    [...g.values()].map((a) => [...a]),
    [[3], [4]],
  );
  const odd = grads([1, 2, 2], []);
  assert.equal(clipGradNorm(odd, 10), 3, 'odd lengths and empty gradients');
});

test('a non-finite norm is returned and the gradients are not touched', () => {
  const g = grads([1, NaN], [2]);
  assert.ok(Number.isNaN(clipGradNorm(g, 1)));
  assert.deepEqual([...g.get('g1')!], [2]);
  assert.equal(clipGradNorm(grads([Infinity, 1]), 1), Infinity);
});

test('maxNorm must be positive', () => {
  assert.throws(
    () => clipGradNorm(grads([1]), 0),
    (e) => e instanceof UserError && /clipping norm/.test(e.message),
  );
});
