import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Model, Tensor } from '../../src/onnx/types.js';
import { foldConstants } from '../../src/onnx/fold.js';
import { encodeModel, loadModel } from '../../src/onnx/proto.js';
import { inferShapes } from '../../src/onnx/shapes.js';
import { validateModel } from '../../src/onnx/validate.js';
import { int, ints } from '../../src/onnx/graph.js';
import { int64, toNumbers } from '../../src/onnx/tensor.js';
import { Rng } from '../../src/util/random.js';
import { buildModel, node, randn, runOrt, torchViewNet, vi } from '../helpers/graphs.js';
import { fixture } from '../helpers/paths.js';

const ops = (m: Model): string[] => m.graph.nodes.map((n) => n.opType);

async function assertSameOutputs(a: Model, b: Model, input: string, chw: number[], batches = [1, 3]): Promise<void> {
  for (const n of batches) {
    const x: Record<string, Tensor> = { [input]: randn(new Rng(n), [n, ...chw], 1) };
    const ra = await runOrt(a, x);
    const rb = await runOrt(b, x);
    assert.deepEqual(Object.keys(rb), Object.keys(ra));
    for (const k of Object.keys(ra)) {
      assert.deepEqual(rb[k]!.dims, ra[k]!.dims, `${k} at batch ${n}`);
      assert.deepEqual(Array.from(rb[k]!.data as Float32Array), Array.from(ra[k]!.data as Float32Array), `${k} at batch ${n}`);
    }
  }
}

test('the x.view(x.size(0), -1) pattern folds to Flatten, and outputs stay identical at batch 1 and 3', async () => {
  const m = torchViewNet();
  const before = encodeModel(m);
  const folded = foldConstants(m);
  assert.deepEqual(encodeModel(m), before, 'the input model is not changed');
  assert.deepEqual(ops(folded), ['Conv', 'Relu', 'Flatten', 'MatMul', 'Add']);
  const flatten = folded.graph.nodes[2]!;
  assert.deepEqual(flatten.attributes['axis'], int(1));
  assert.equal(flatten.inputs[0], 'relu1', 'Identity removed');
  assert.deepEqual([...folded.graph.initializers.keys()].sort(), ['fc_b', 'fc_w', 'w1'], 'shape constants dropped');
  assert.equal(folded.graph.outputs[0]!.name, 'logits');
  validateModel(folded);
  await assertSameOutputs(m, folded, 'input', [3, 8, 8]);
});

test('a view with the batch in second place folds to a static [-1, K]-style shape', async () => {
  // y = x.view(-1, N) where N = x.size(0): the target [K, N] becomes [K, -1].
  const m = buildModel({
    inputs: [vi('x', ['N', 2, 3])],
    outputs: ['y'],
    initializers: { i0: int64([1], [0]), six: int64([1], [6]) },
    nodes: [
      node('Shape', ['x'], ['s']),
      node('Gather', ['s', 'i0'], ['n']),
      node('Concat', ['six', 'n'], ['target'], { axis: int(0) }),
      node('Reshape', ['x', 'target'], ['y'], {}, 'reshape'),
    ],
  });
  const folded = foldConstants(m);
  assert.deepEqual(ops(folded), ['Reshape']);
  const shapeName = folded.graph.nodes[0]!.inputs[1]!;
  assert.deepEqual(toNumbers(folded.graph.initializers.get(shapeName)!), [6, -1]);
  assert.deepEqual(inferShapes(folded).get('y')?.shape, [6, 'N']);
  await assertSameOutputs(m, folded, 'x', [2, 3]);
});

test('shape arithmetic on static dims and Constant nodes become initializers', async () => {
  // y = x.reshape(x.shape[1] * x.shape[2], -1) on a static [2,3,4] input, plus a Constant scale.
  const m = buildModel({
    inputs: [vi('x', [2, 3, 4])],
    outputs: ['y'],
    initializers: { i1: int64([], [1]), i2: int64([], [2]), axes: int64([1], [0]) },
    nodes: [
      node('Shape', ['x'], ['s']),
      node('Gather', ['s', 'i1'], ['d1']),
      node('Gather', ['s', 'i2'], ['d2']),
      node('Mul', ['d1', 'd2'], ['k']),
      node('Unsqueeze', ['k', 'axes'], ['k1']),
      node('Constant', [], ['m1'], { value: { kind: 'tensor', value: int64([1], [-1]) } }),
      node('Concat', ['k1', 'm1'], ['target'], { axis: int(0) }),
      node('Reshape', ['x', 'target'], ['r']),
      node('Constant', [], ['scale'], { value_float: { kind: 'float', value: 2 } }),
      node('Mul', ['r', 'scale'], ['y']),
    ],
  });
  const folded = foldConstants(m);
  assert.deepEqual(ops(folded), ['Reshape', 'Mul']);
  assert.deepEqual(toNumbers(folded.graph.initializers.get('target')!), [12, -1]);
  assert.deepEqual(toNumbers(folded.graph.initializers.get('scale')!), [2]);
  await assertSameOutputs(m, folded, 'x', [3, 4], [2]);
});

test('graph outputs keep their names when an Identity feeds them, and Dropout in training mode stays', () => {
  const m = buildModel({
    inputs: [vi('x', ['N', 4])],
    outputs: ['y', 'd'],
    initializers: { on: { dtype: 'bool', dims: [], data: Uint8Array.of(1) }, ratio: { dtype: 'float32', dims: [], data: Float32Array.of(0.5) } },
    nodes: [node('Relu', ['x'], ['r']), node('Identity', ['r'], ['y']), node('Dropout', ['r', 'ratio', 'on'], ['d'], {}, 'train_dropout')],
  });
  const folded = foldConstants(m);
  assert.deepEqual(ops(folded), ['Relu', 'Dropout']);
  assert.deepEqual(folded.graph.nodes[0]!.outputs, ['y']);
  assert.deepEqual(folded.graph.nodes[1]!.inputs[0], 'y');
});

test('large constant computations are left to the runtime', () => {
  const big = randn(new Rng(5), [100, 100]);
  const m = buildModel({
    inputs: [vi('x', [100, 100])],
    outputs: ['y'],
    initializers: { w: big },
    nodes: [node('Transpose', ['w'], ['wt'], { perm: ints([1, 0]) }), node('Add', ['x', 'wt'], ['y'])],
  });
  assert.deepEqual(ops(foldConstants(m)), ['Transpose', 'Add']);
});

test("PyTorch's unfolded VGG export folds and still computes the same logits", async () => {
  const m = loadModel(fixture('torch', 'vgg_small.nofold.onnx'));
  const folded = foldConstants(m);
  for (const op of ['Shape', 'Gather', 'Unsqueeze', 'Concat', 'Constant']) assert.ok(!ops(folded).includes(op), `${op} folded away`);
  assert.ok(ops(folded).includes('Flatten'));
  assert.deepEqual(inferShapes(folded).get('logits')?.shape, ['N', 10]);
  await assertSameOutputs(m, folded, 'input', [1, 28, 28]);
});
