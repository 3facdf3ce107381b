import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDataset } from '../../src/data/resolve.js';
import { evaluate } from '../../src/runtime/evaluate.js';
import { inferBatches } from '../../src/runtime/infer.js';
import { resolveNormalization } from '../../src/runtime/normalization.js';
import { setInputSpec } from '../../src/onnx/metadata.js';
import { constantClassifier, onehot } from '../helpers/models.js';
import { UserError } from '../../src/util/errors.js';

const ds = await openDataset('fashion-mnist-sample', 'test');

test('a classifier that always says class 2 scores 100% on class 2 and 0% elsewhere', async () => {
  const r = await evaluate(constantClassifier(onehot(10, 2)), ds, { threads: 1, classes: [1, 2, 3] });
  assert.equal(r.perClass['2'], 1);
  assert.equal(r.perClass['1'], 0);
  assert.equal(r.perClass['3'], 0);
  assert.equal(r.samples, 300);
  assert.ok(Math.abs(r.accuracy - 1 / 3) < 1e-12);
  assert.match(r.data, /sample/);
});

test('outputs map to dataset classes through label metadata: a 3-output component is scored on the same images as its parent', async () => {
  const labels = [5, 6, 2].map((c) => ({ dataset: 'fashion-mnist', class: c }));
  const component = constantClassifier(onehot(3, 2), [1, 28, 28], labels);
  const r = await evaluate(component, ds, { threads: 1, classes: [2, 5] });
  assert.equal(r.perClass['2'], 1);
  assert.equal(r.perClass['5'], 0);
  assert.equal(r.samples, 200);
  // default classes: the ones the model has outputs for
  const all = await evaluate(component, ds, { threads: 1 });
  assert.deepEqual(Object.keys(all.perClass).sort(), ['2', '5', '6']);
});

test('a model without labels whose output count differs from the dataset is refused', async () => {
  await assert.rejects(evaluate(constantClassifier(onehot(3, 0)), ds, { threads: 1 }), (e: Error) => e instanceof UserError && /3 outputs/.test(e.message));
});

test('a model for another input shape is refused with both shapes named', async () => {
  await assert.rejects(evaluate(constantClassifier(onehot(10, 0), [3, 32, 32]), ds, { threads: 1 }), /3x32x32.*1x28x28/);
});

test('normalisation: flags beat metadata, metadata beats none, lists broadcast or must match channels', () => {
  const m = constantClassifier(onehot(10, 0));
  assert.match(resolveNormalization(m, 1).from, /none/);
  setInputSpec(m, { shape: [1, 28, 28], mean: [0.5], std: [0.25] });
  assert.deepEqual(resolveNormalization(m, 1).normalization, { mean: [0.5], std: [0.25] });
  assert.deepEqual(resolveNormalization(m, 3, { mean: [0.1], std: [0.2] }).normalization, { mean: [0.1, 0.1, 0.1], std: [0.2, 0.2, 0.2] });
  assert.throws(() => resolveNormalization(m, 3, { mean: [0.1, 0.2] }), /2 values.*3 channel/);
  assert.throws(() => resolveNormalization(m, 1, { std: [0] }), /positive/);
});

test('taps stream intermediate tensors batch by batch', async () => {
  const m = constantClassifier(onehot(10, 0));
  let seen = 0;
  for await (const { batch, outputs } of inferBatches(m, ds, {
    threads: 1,
    batchSize: 64,
    normalization: { mean: [0], std: [1] },
    indices: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    taps: ['features'],
  })) {
    assert.deepEqual(outputs['features']!.dims, [batch.size, 784]);
    // the flattened features are the (unnormalised) pixels
    assert.deepEqual(Array.from((outputs['features']!.data as Float32Array).subarray(0, 784)), Array.from(batch.x.subarray(0, 784)));
    seen += batch.size;
  }
  assert.equal(seen, 10);
});
