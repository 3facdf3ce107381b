/**
 * Training needs every tensor's size once the batch size is fixed. Shapes the graph
 * computes from the batch at run time train (the Swin fixture, test/torch); a size
 * inference cannot follow is one line naming the tensor, from the library and the CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Model } from '../../src/onnx/types.js';
import { buildTrainingGraph } from '../../src/autodiff/training-graph.js';
import { saveModel } from '../../src/onnx/proto.js';
import { int } from '../../src/onnx/graph.js';
import { int64 } from '../../src/onnx/tensor.js';
import { Rng } from '../../src/util/random.js';
import { assertUserError } from '../helpers/assertions.js';
import { isOneLineError, runCli } from '../helpers/cli.js';
import { buildModel, node, randn, vi } from '../helpers/graphs.js';
import { tempDir } from '../helpers/paths.js';

/**
 * x [N,1,28,28] reshaped to [count / 784, 784] where count sums a ConstantOfShape of ones
 * as large as x: a size that depends on tensor values too large to fold, which shape
 * inference does not compute.
 */
function countedReshape(): Model {
  const rng = new Rng(4);
  return buildModel({
    inputs: [vi('input', ['N', 1, 28, 28])],
    outputs: [vi('logits', ['N', 10])],
    initializers: { per: int64([1], [784]), free: int64([1], [-1]), w: randn(rng, [784, 10], 0.05) },
    nodes: [
      node('Shape', ['input'], ['s']),
      node('ConstantOfShape', ['s'], ['ones'], { value: { kind: 'tensor', value: int64([1], [1]) } }),
      node('ReduceSum', ['ones'], ['count'], { keepdims: int(0) }),
      node('Div', ['count', 'per'], ['rows']),
      node('Concat', ['rows', 'free'], ['target'], { axis: int(0) }),
      node('Reshape', ['input', 'target'], ['flat'], {}, 'flatten'),
      node('MatMul', ['flat', 'w'], ['logits'], {}, 'fc'),
    ],
  });
}

test('a tensor whose size training cannot know is named in a one-line UserError', () => {
  assertUserError(
    () => buildTrainingGraph({ model: countedReshape(), trainable: ['w'], loss: 'cross-entropy', batchSize: 8, batchNorm: 'eval' }),
    'training needs the size of every tensor',
    /tensor "flat" \(output of node "flatten", Reshape\) is \[\?,\?\]/,
  );
});

test('modelsmith train on such a model stops with that one line, no stack trace', () => {
  const file = join(tempDir('static-shapes-'), 'counted.onnx');
  saveModel(countedReshape(), file);
  const r = runCli(['train', file, '--data', 'fashion-mnist-sample', '--labels', '0-9', '--epochs', '1', '-o', join(tempDir('static-shapes-'), 'out.onnx')]);
  assert.ok(isOneLineError(r), r.stderr);
  assert.match(r.stderr, /training needs the size of every tensor/);
});
