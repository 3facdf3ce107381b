import { test } from 'node:test';
import { checkGradients, checkOp } from '../helpers/gradcheck.js';
import { buildModel, node, vi } from '../helpers/graphs.js';
import { int, ints, str } from '../../src/onnx/graph.js';
import { float32, int64 } from '../../src/onnx/tensor.js';

test('Reshape, Flatten, Squeeze, Unsqueeze, Identity reshape the gradient back', async () => {
  await checkOp({ op: 'Reshape', inputs: [[2, 3, 4], { constant: int64([2], [0, -1]) }] });
  await checkOp({ op: 'Flatten', inputs: [[2, 3, 2, 2]], attributes: { axis: int(2) } });
  await checkOp({ op: 'Squeeze', inputs: [[2, 1, 3], { constant: int64([1], [1]) }] });
  await checkOp({ op: 'Unsqueeze', inputs: [[2, 3], { constant: int64([2], [0, 3]) }] }, { batchSize: 2 });
  await checkOp({ op: 'Identity', inputs: [[2, 3]] });
});

test('Transpose with an explicit and the default permutation', async () => {
  await checkOp({ op: 'Transpose', inputs: [[2, 3, 4]], attributes: { perm: ints([1, 2, 0]) } });
  await checkOp({ op: 'Transpose', inputs: [[2, 3, 4]] });
});

test('Concat on axis 1 and on the last axis, with parameters between data', async () => {
  await checkOp({ op: 'Concat', inputs: [[2, 3, 2], { shape: [2, 1, 2] }, { shape: [2, 4, 2] }], attributes: { axis: int(1) } });
  await checkOp({ op: 'Concat', inputs: [[2, 3], { shape: [2, 2] }], attributes: { axis: int(-1) } });
});

test('Split: outputs without a gradient count as zeros', async () => {
  await checkOp({ op: 'Split', inputs: [[2, 6], { constant: int64([3], [1, 2, 3]) }], attributes: { axis: int(1) }, outputs: 3 });
});

test('Slice: unit steps, negative indices, steps of 2 and -1, clamped ends', async () => {
  const slice = (starts: number[], ends: number[], axes: number[], steps?: number[]) =>
    checkOp({
      op: 'Slice',
      inputs: [
        [3, 7, 5],
        { constant: int64([starts.length], starts) },
        { constant: int64([ends.length], ends) },
        { constant: int64([axes.length], axes) },
        ...(steps ? [{ constant: int64([steps.length], steps) }] : []),
      ],
    });
  await slice([1], [3], [1]);
  await slice([-4, 0], [1000, -1], [1, 2]);
  await slice([1, 0], [7, 5], [1, 2], [2, 3]);
  await slice([5], [-1000], [1], [-1]);
  await slice([6, 4], [0, 0], [1, 2], [-2, -3]);
  await slice([0, 1], [2, 4], [0, 2], [1, 2]);
});

test('Pad (constant mode), with growth and a negative (cropping) pad', async () => {
  await checkOp({ op: 'Pad', inputs: [[2, 3, 4], { constant: int64([6], [0, 1, 2, 0, 2, 1]) }] });
  await checkOp({ op: 'Pad', inputs: [[2, 3, 4], { constant: int64([6], [0, -1, 1, 0, 1, -2]) }], attributes: { mode: str('constant') } });
});

test('Expand sums the gradient over the expanded axes', async () => {
  await checkOp({ op: 'Expand', inputs: [[2, 1, 3], { constant: int64([4], [2, 2, 4, 3]) }] }, { batchSize: 2 });
});

test('a chain of shape operators between two parameters', async () => {
  const model = buildModel({
    inputs: [vi('x', [2, 12])],
    outputs: ['y'],
    initializers: {
      w: float32(
        [12],
        Array.from({ length: 12 }, (_, i) => 0.1 * i - 0.5),
      ),
      shape: int64([3], [2, 3, 4]),
      b: float32(
        [4, 1, 3],
        Array.from({ length: 12 }, (_, i) => 0.05 * i),
      ),
    },
    nodes: [
      node('Mul', ['x', 'w'], ['a']),
      node('Reshape', ['a', 'shape'], ['r']),
      node('Transpose', ['r'], ['t'], { perm: ints([2, 0, 1]) }),
      node('Add', ['t', 'b'], ['y']),
    ],
  });
  await checkGradients({ model, trainable: ['w', 'b'], inputGradients: ['x', 'r'] });
});
