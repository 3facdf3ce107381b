import { test } from 'node:test';
import { checkGradients, checkOp } from '../helpers/gradcheck.js';
import { buildModel, node, vi } from '../helpers/graphs.js';
import { float, int } from '../../src/onnx/graph.js';
import { float32 } from '../../src/onnx/tensor.js';
import { Rng } from '../../src/util/random.js';

const rand = (rng: Rng, dims: number[]) =>
  float32(
    dims,
    Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => rng.normal()),
  );

test('Gemm: every transA/transB combination, alpha and beta, bias broadcast from [N], [1,N] and a scalar', async () => {
  const m = 3,
    k = 4,
    n = 5;
  for (const transA of [0, 1]) {
    for (const transB of [0, 1]) {
      const rng = new Rng(10 + transA * 2 + transB);
      const a = transA ? [k, m] : [m, k];
      const b = transB ? [n, k] : [k, n];
      // the data input is the batch-major operand A (so transA=1 puts the batch second: use a fixed batch)
      const model = buildModel({
        inputs: [vi('x', a)],
        outputs: ['y'],
        initializers: { w: rand(rng, b), c: rand(rng, [n]) },
        nodes: [node('Gemm', ['x', 'w', 'c'], ['y'], { transA: int(transA), transB: int(transB), alpha: float(0.7), beta: float(1.3) })],
      });
      await checkGradients({ model, trainable: ['w', 'c'], inputGradients: ['x'], batchSize: a[0] });
    }
  }
  await checkOp({ op: 'Gemm', inputs: [[3, 4], { shape: [4, 5] }, { shape: [1, 5] }] });
  await checkOp({ op: 'Gemm', inputs: [[3, 4], { shape: [5, 4] }, { shape: [] }], attributes: { transB: int(1), beta: float(0.5) } });
  await checkOp({ op: 'Gemm', inputs: [[3, 4], { shape: [4, 5] }, { shape: [3, 1] }] });
  await checkOp({ op: 'Gemm', inputs: [[3, 4], { shape: [4, 5] }] });
});

test('Gemm: the weight as first operand (gradient with respect to B reached through A)', async () => {
  // y = W x^T: the data input is the second operand, transposed
  const rng = new Rng(3);
  const model = buildModel({
    inputs: [vi('x', [2, 4])],
    outputs: ['y'],
    initializers: { w: rand(rng, [3, 4]) },
    nodes: [node('Gemm', ['w', 'x'], ['y'], { transB: int(1) })],
  });
  await checkGradients({ model, trainable: ['w'], inputGradients: ['x'], batchSize: 2 });
});

test('MatMul: matrices, batched with broadcasting, and 1-D operands', async () => {
  await checkOp({ op: 'MatMul', inputs: [[3, 4], { shape: [4, 5] }] });
  await checkOp({ op: 'MatMul', inputs: [[2, 3, 4], { shape: [4, 5] }] });
  await checkOp({ op: 'MatMul', inputs: [[2, 3, 4], { shape: [2, 4, 5] }] });
  await checkOp({ op: 'MatMul', inputs: [[2, 1, 3, 4], { shape: [3, 4, 2] }] });
  await checkOp({ op: 'MatMul', inputs: [[2, 3, 4], { shape: [4] }] });
  await checkOp({ op: 'MatMul', inputs: [[4], { shape: [2, 4, 3] }] }, { batchSize: 4 });
});
