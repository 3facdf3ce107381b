import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Model } from '../../src/onnx/types.js';
import { SUPPORTED_OPS, validateModel } from '../../src/onnx/validate.js';
import { ints } from '../../src/onnx/graph.js';
import { float32 } from '../../src/onnx/tensor.js';
import { UserError } from '../../src/util/errors.js';
import { buildModel, node, tinyConvNet, vi } from '../helpers/graphs.js';

function assertInvalid(m: Model, pattern: RegExp, file = 'net.onnx'): void {
  assert.throws(
    () => validateModel(m, file),
    (e: unknown) => {
      assert.ok(e instanceof UserError, String(e));
      assert.match(e.message, new RegExp(`^${file.replace('.', '\\.')}: `));
      assert.match(e.message, pattern);
      return true;
    },
  );
}

test('a well-formed model passes, and the operator list covers the zoo', () => {
  validateModel(tinyConvNet());
  for (const op of [
    'Conv',
    'BatchNormalization',
    'Relu',
    'MaxPool',
    'AveragePool',
    'GlobalAveragePool',
    'Gemm',
    'MatMul',
    'Add',
    'Mul',
    'Flatten',
    'Reshape',
    'Concat',
    'Constant',
    'Shape',
    'Gather',
    'Unsqueeze',
    'Squeeze',
    'Identity',
    'Dropout',
    'Softmax',
    'Resize',
    'Pad',
    'Slice',
    'Transpose',
    'ConvTranspose',
    'ReduceSum',
    'Where',
    'ScatterElements',
    'Greater',
    'Sub',
    'Div',
    'Sqrt',
    'Expand',
  ]) {
    assert.ok(SUPPORTED_OPS.includes(op), op);
  }
});

test('structural problems are reported one at a time with the node or tensor', () => {
  const base = (): Model => tinyConvNet();
  let m = base();
  m.graph.nodes[1]!.inputs = ['conv_1'];
  assertInvalid(m, /node "relu1" \(Relu\) reads tensor "conv_1", which no node, input or initializer produces/);
  m = base();
  m.graph.nodes[1]!.outputs = ['conv1'];
  assertInvalid(m, /tensor "conv1" is defined twice: by node "conv1" \(Conv\) and by node "relu1" \(Relu\)/);
  m = base();
  m.graph.outputs.push(vi('ghost'));
  assertInvalid(m, /graph output "ghost" is never produced/);
  m = base();
  m.graph.initializers.set('w1', { dtype: 'float32', dims: [4, 3, 3, 3], data: new Float32Array(10) });
  assertInvalid(m, /initializer "w1" has shape \[4x3x3x3\] \(108 values\) but holds 10/);
  m = base();
  m.graph.nodes[0]!.inputs = ['input', 'w1', 'b1', 'w1', 'b1'];
  assertInvalid(m, /node "conv1" \(Conv\): has 5 inputs, at most 3 expected/);
  m = base();
  delete m.graph.nodes[2]!.attributes['kernel_shape'];
  assertInvalid(m, /node "pool1" \(MaxPool\): required attribute "kernel_shape" is missing/);
});

test('cycles are found', () => {
  const m = buildModel({
    inputs: [vi('x', [2])],
    outputs: ['b'],
    nodes: [node('Add', ['x', 'b'], ['a'], {}, 'first'), node('Relu', ['a'], ['b'], {}, 'second')],
  });
  assertInvalid(m, /cycle through nodes first, second/);
});

test('shape conflicts found by inference are reported', () => {
  const m = buildModel({
    inputs: [vi('x', [1, 3, 8, 8])],
    outputs: ['y'],
    initializers: { w1: float32([32, 3, 3, 3]), w2: float32([8, 16, 3, 3]) },
    nodes: [
      node('Conv', ['x', 'w1'], ['h'], { kernel_shape: ints([3, 3]) }, 'conv1'),
      node('Conv', ['h', 'w2'], ['y'], { kernel_shape: ints([3, 3]) }, 'conv2'),
    ],
  });
  assertInvalid(m, /node "conv2" \(Conv\): input has 32 channels, weight expects 16/);
  const declared = tinyConvNet();
  declared.graph.outputs[0]!.shape = ['N', 12];
  assertInvalid(declared, /graph output "logits" is declared as \[Nx12\] but the graph computes \[Nx10\]/);
});
