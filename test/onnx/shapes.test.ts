import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Attribute, Dim, Model, Tensor } from '../../src/onnx/types.js';
import { annotateShapes, inferShapes } from '../../src/onnx/shapes.js';
import { float, int, ints, str } from '../../src/onnx/graph.js';
import { float32, int64, numel, tensor } from '../../src/onnx/tensor.js';
import { UserError } from '../../src/util/errors.js';
import { buildModel, node, runOrt, torchViewNet, vi } from '../helpers/graphs.js';

const BIG = 2 ** 62;

interface Case {
  op: string;
  /** float32 graph inputs with their shapes (the first is "x") */
  inputs: Record<string, Dim[]>;
  /** constant inputs, in the order the node reads them after the graph inputs ('' for an omitted one) */
  consts?: (Tensor | '')[];
  attrs?: Record<string, Attribute>;
  outputs?: number;
  expect: Dim[];
}

function caseModel(c: Case): Model {
  const constNames = (c.consts ?? []).map((t, i) => (t === '' ? '' : `c${i}`));
  const initializers: Record<string, Tensor> = {};
  (c.consts ?? []).forEach((t, i) => {
    if (t !== '') initializers[`c${i}`] = t;
  });
  const outs = Array.from({ length: c.outputs ?? 1 }, (_, i) => (i === 0 ? 'y' : `y${i}`));
  return buildModel({
    inputs: Object.entries(c.inputs).map(([n, s]) => vi(n, s)),
    outputs: outs,
    initializers,
    nodes: [node(c.op, [...Object.keys(c.inputs), ...constNames], outs, c.attrs ?? {}, 'n')],
  });
}

const shapeOf = (m: Model, name = 'y'): Dim[] | undefined => inferShapes(m).get(name)?.shape;

const f = (dims: number[]): Tensor => float32(dims, new Array(numel(dims)).fill(1));
const i64 = (values: number[]): Tensor => int64([values.length], values);

/** Hand-computed cases, each also checked against what ONNX Runtime produces. */
const CASES: Record<string, Case> = {
  'Conv k3 s2 p1': {
    op: 'Conv',
    inputs: { x: [1, 3, 32, 32] },
    consts: [f([16, 3, 3, 3])],
    attrs: { strides: ints([2, 2]), pads: ints([1, 1, 1, 1]) },
    expect: [1, 16, 16, 16],
  },
  'Conv dilated, groups, bias': {
    op: 'Conv',
    inputs: { x: [2, 4, 11, 9] },
    consts: [f([6, 2, 3, 3]), f([6])],
    attrs: { group: int(2), dilations: ints([2, 1]) },
    expect: [2, 6, 7, 7],
  },
  'Conv SAME_UPPER s2': {
    op: 'Conv',
    inputs: { x: [1, 1, 7, 7] },
    consts: [f([1, 1, 3, 3])],
    attrs: { auto_pad: str('SAME_UPPER'), strides: ints([2, 2]) },
    expect: [1, 1, 4, 4],
  },
  'Conv VALID': { op: 'Conv', inputs: { x: [1, 1, 7, 6] }, consts: [f([2, 1, 3, 2])], attrs: { auto_pad: str('VALID') }, expect: [1, 2, 5, 5] },
  'ConvTranspose s2 p1 output_padding': {
    op: 'ConvTranspose',
    inputs: { x: [1, 4, 5, 5] },
    consts: [f([4, 2, 3, 3])],
    attrs: { strides: ints([2, 2]), pads: ints([1, 1, 1, 1]), output_padding: ints([1, 1]) },
    expect: [1, 2, 10, 10],
  },
  'MaxPool floor': { op: 'MaxPool', inputs: { x: [1, 2, 6, 6] }, attrs: { kernel_shape: ints([3, 3]), strides: ints([2, 2]) }, expect: [1, 2, 2, 2] },
  'MaxPool ceil_mode': {
    op: 'MaxPool',
    inputs: { x: [1, 2, 6, 6] },
    attrs: { kernel_shape: ints([3, 3]), strides: ints([2, 2]), ceil_mode: int(1) },
    expect: [1, 2, 3, 3],
  },
  'MaxPool ceil_mode drops a window starting in the padding': {
    op: 'MaxPool',
    inputs: { x: [1, 1, 5, 5] },
    attrs: { kernel_shape: ints([2, 2]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]), ceil_mode: int(1) },
    expect: [1, 1, 3, 3],
  },
  'MaxUnpool default shape': {
    op: 'MaxUnpool',
    inputs: { x: [1, 2, 3, 3] },
    consts: [int64([1, 2, 3, 3], new Array<number>(18).fill(0))],
    attrs: { kernel_shape: ints([2, 2]), strides: ints([2, 2]) },
    expect: [1, 2, 6, 6],
  },
  'MaxUnpool output_shape': {
    op: 'MaxUnpool',
    inputs: { x: [1, 2, 3, 3] },
    consts: [int64([1, 2, 3, 3], new Array<number>(18).fill(0)), i64([1, 2, 7, 7])],
    attrs: { kernel_shape: ints([2, 2]), strides: ints([2, 2]) },
    expect: [1, 2, 7, 7],
  },
  'AveragePool pads': {
    op: 'AveragePool',
    inputs: { x: [1, 3, 9, 9] },
    attrs: { kernel_shape: ints([3, 3]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]) },
    expect: [1, 3, 5, 5],
  },
  GlobalAveragePool: { op: 'GlobalAveragePool', inputs: { x: [2, 5, 7, 3] }, expect: [2, 5, 1, 1] },
  BatchNormalization: { op: 'BatchNormalization', inputs: { x: [2, 3, 4, 4] }, consts: [f([3]), f([3]), f([3]), f([3])], expect: [2, 3, 4, 4] },
  'Gemm transB': { op: 'Gemm', inputs: { x: [5, 64] }, consts: [f([10, 64]), f([10])], attrs: { transB: int(1) }, expect: [5, 10] },
  'Gemm transA': { op: 'Gemm', inputs: { x: [64, 5] }, consts: [f([64, 10])], attrs: { transA: int(1) }, expect: [5, 10] },
  'MatMul batch broadcasting': { op: 'MatMul', inputs: { x: [2, 1, 3, 4] }, consts: [f([5, 4, 6])], expect: [2, 5, 3, 6] },
  'MatMul vector': { op: 'MatMul', inputs: { x: [4] }, consts: [f([3, 4, 6])], expect: [3, 6] },
  'Add broadcasting': { op: 'Add', inputs: { x: [2, 3, 1, 5] }, consts: [f([4, 1])], expect: [2, 3, 4, 5] },
  Where: { op: 'Where', inputs: {}, consts: [tensor('bool', [3, 1], [1, 0, 1]), f([1, 4]), f([3, 4])], expect: [3, 4] },
  'Flatten axis 2': { op: 'Flatten', inputs: { x: [2, 3, 4, 5] }, attrs: { axis: int(2) }, expect: [6, 20] },
  'Reshape 0 and -1': { op: 'Reshape', inputs: { x: [2, 3, 4] }, consts: [i64([0, -1])], expect: [2, 12] },
  'Reshape -1 first': { op: 'Reshape', inputs: { x: [2, 3, 4] }, consts: [i64([-1, 4, 3])], expect: [2, 4, 3] },
  'Concat axis 1': { op: 'Concat', inputs: { x: [2, 3, 4], z: [2, 5, 4] }, attrs: { axis: int(-2) }, expect: [2, 8, 4] },
  'Transpose perm': { op: 'Transpose', inputs: { x: [2, 3, 4] }, attrs: { perm: ints([2, 0, 1]) }, expect: [4, 2, 3] },
  'Unsqueeze negative axes': { op: 'Unsqueeze', inputs: { x: [3, 4] }, consts: [i64([0, -1])], expect: [1, 3, 4, 1] },
  'Squeeze axes': { op: 'Squeeze', inputs: { x: [1, 3, 1, 4] }, consts: [i64([2])], expect: [1, 3, 4] },
  'Squeeze all': { op: 'Squeeze', inputs: { x: [1, 3, 1, 4] }, expect: [3, 4] },
  'Slice negative start, huge end': { op: 'Slice', inputs: { x: [10, 20] }, consts: [i64([-3]), i64([BIG]), i64([1])], expect: [10, 3] },
  'Slice negative step': { op: 'Slice', inputs: { x: [10, 20] }, consts: [i64([8, -1]), i64([2, -BIG]), i64([0, 1]), i64([-2, -1])], expect: [3, 20] },
  'Slice clamps': { op: 'Slice', inputs: { x: [10, 20] }, consts: [i64([-100, 5]), i64([4, 100])], expect: [4, 15] },
  Pad: { op: 'Pad', inputs: { x: [1, 2, 5, 5] }, consts: [i64([0, 0, 1, 2, 0, 0, 3, 4])], expect: [1, 2, 9, 11] },
  'Resize scales': {
    op: 'Resize',
    inputs: { x: [1, 3, 8, 8] },
    consts: ['', float32([4], [1, 1, 2, 1.5])],
    attrs: { mode: str('nearest') },
    expect: [1, 3, 16, 12],
  },
  'Resize sizes': { op: 'Resize', inputs: { x: [1, 3, 8, 8] }, consts: ['', '', i64([1, 3, 5, 7])], expect: [1, 3, 5, 7] },
  'Split uneven': { op: 'Split', inputs: { x: [6, 4] }, consts: [i64([1, 5])], outputs: 2, expect: [1, 4] },
  Softmax: { op: 'Softmax', inputs: { x: [2, 7] }, expect: [2, 7] },
  'ReduceMean keepdims': { op: 'ReduceMean', inputs: { x: [2, 3, 4] }, attrs: { axes: ints([1, -1]) }, expect: [2, 1, 1] },
  'ReduceSum axes input': { op: 'ReduceSum', inputs: { x: [2, 3, 4] }, consts: [i64([0, 2])], attrs: { keepdims: int(0) }, expect: [3] },
  ArgMax: { op: 'ArgMax', inputs: { x: [2, 3, 4] }, attrs: { axis: int(1), keepdims: int(0) }, expect: [2, 4] },
  'Gather axis 1': { op: 'Gather', inputs: { x: [5, 6, 7] }, consts: [int64([2, 2], [0, 1, -1, 2])], attrs: { axis: int(1) }, expect: [5, 2, 2, 7] },
  Expand: { op: 'Expand', inputs: { x: [3, 1] }, consts: [i64([2, 1, 4])], expect: [2, 3, 4] },
  Tile: { op: 'Tile', inputs: { x: [2, 3] }, consts: [i64([2, 2])], expect: [4, 6] },
  LeakyRelu: { op: 'LeakyRelu', inputs: { x: [2, 3] }, attrs: { alpha: float(0.1) }, expect: [2, 3] },
  'ScatterElements add': {
    op: 'ScatterElements',
    inputs: { x: [3, 4] },
    consts: [int64([3, 1], [0, 1, 2]), f([3, 1])],
    attrs: { axis: int(1), reduction: str('add') },
    expect: [3, 4],
  },
  Greater: { op: 'Greater', inputs: { x: [2, 3] }, consts: [f([3])], expect: [2, 3] },
  'OneHot axis 1': {
    op: 'OneHot',
    inputs: {},
    consts: [int64([2, 3], [0, 1, 2, 3, 0, 1]), int64([], [4]), float32([2], [0, 1])],
    attrs: { axis: int(1) },
    expect: [2, 4, 3],
  },
  Range: { op: 'Range', inputs: {}, consts: [int64([], [2]), int64([], [11]), int64([], [3])], expect: [3] },
  ConstantOfShape: { op: 'ConstantOfShape', inputs: {}, consts: [i64([2, 3])], expect: [2, 3] },
  LayerNormalization: { op: 'LayerNormalization', inputs: { x: [2, 3, 4] }, consts: [f([4]), f([4])], expect: [2, 3, 4] },
  'Split equal': { op: 'Split', inputs: { x: [6, 4] }, outputs: 3, expect: [2, 4] },
  DepthToSpace: { op: 'DepthToSpace', inputs: { x: [1, 8, 2, 3] }, attrs: { blocksize: int(2) }, expect: [1, 2, 4, 6] },
  'Sum of three': { op: 'Sum', inputs: { x: [2, 1], z: [1, 3], w: [3] }, expect: [2, 3] },
  'MaxPool with Indices': {
    op: 'MaxPool',
    inputs: { x: [1, 1, 4, 4] },
    attrs: { kernel_shape: ints([2, 2]), strides: ints([2, 2]) },
    outputs: 2,
    expect: [1, 1, 2, 2],
  },
  'SoftmaxCrossEntropyLoss mean': { op: 'SoftmaxCrossEntropyLoss', inputs: { x: [3, 5] }, consts: [int64([3], [0, 4, 2])], outputs: 2, expect: [] },
  'NegativeLogLikelihoodLoss none': {
    op: 'NegativeLogLikelihoodLoss',
    inputs: { x: [3, 5] },
    consts: [int64([3], [0, 4, 2])],
    attrs: { reduction: str('none') },
    expect: [3],
  },
  TopK: { op: 'TopK', inputs: { x: [2, 6] }, consts: [i64([3])], outputs: 2, expect: [2, 3] },
  'Resize linear, scales': {
    op: 'Resize',
    inputs: { x: [1, 2, 5, 5] },
    consts: ['', float32([4], [1, 1, 0.6, 2])],
    attrs: { mode: str('linear') },
    expect: [1, 2, 3, 10],
  },
};

test('shape rules give the hand-computed shape for each operator case', () => {
  for (const [name, c] of Object.entries(CASES)) assert.deepEqual(shapeOf(caseModel(c)), c.expect, name);
});

test('shape rules agree with the shapes ONNX Runtime produces', async () => {
  for (const [name, c] of Object.entries(CASES)) {
    const m = caseModel(c);
    const inferred = inferShapes(m);
    m.graph.outputs = m.graph.outputs.map((o) => ({ name: o.name, dtype: inferred.get(o.name)!.dtype }));
    const feeds = Object.fromEntries(Object.entries(c.inputs).map(([n, s]) => [n, f(s as number[])]));
    const out = await runOrt(m, feeds, ['y']);
    assert.deepEqual(out['y']!.dims, shapeOf(m), name);
  }
});

test('the symbolic batch dim is carried through convs, pools and dense layers', () => {
  const m = caseModel({
    op: 'Conv',
    inputs: { x: ['N', 3, 32, 32] },
    consts: [f([16, 3, 3, 3])],
    attrs: { strides: ints([2, 2]), pads: ints([1, 1, 1, 1]) },
    expect: [],
  });
  assert.deepEqual(shapeOf(m), ['N', 16, 16, 16]);
  const r = caseModel({ op: 'Reshape', inputs: { x: ['N', 3, 4] }, consts: [i64([-1, 12])], expect: [] });
  assert.deepEqual(shapeOf(r), ['N', 12]);
  const unknownBatch = caseModel({ op: 'Flatten', inputs: { x: [null, 3, 4] }, expect: [] });
  assert.deepEqual(shapeOf(unknownBatch), [null, 12]);
});

test("PyTorch's Shape/Gather/Unsqueeze/Concat/Reshape gives [N, 64] without folding", () => {
  const shapes = inferShapes(torchViewNet());
  assert.deepEqual(shapes.get('conv1')?.shape, ['N', 4, 4, 4]);
  assert.deepEqual(shapes.get('shape')?.shape, [4]);
  assert.deepEqual(shapes.get('batch')?.shape, []);
  assert.deepEqual(shapes.get('flat')?.shape, ['N', 64]);
  assert.deepEqual(shapes.get('logits'), { name: 'logits', dtype: 'float32', shape: ['N', 10] });
  assert.equal(shapes.get('shape')?.dtype, 'int64');
});

test('old attribute forms of Unsqueeze, Squeeze and Pad are read', () => {
  const u = caseModel({ op: 'Unsqueeze', inputs: { x: [3] }, attrs: { axes: ints([0]) }, expect: [] });
  assert.deepEqual(shapeOf(u), [1, 3]);
  const p = caseModel({ op: 'Pad', inputs: { x: [2, 2] }, attrs: { pads: ints([1, 0, 1, 0]) }, expect: [] });
  assert.deepEqual(shapeOf(p), [4, 2]);
});

test('conflicting shapes are UserErrors naming the node', () => {
  const conv = buildModel({
    inputs: [vi('x', [1, 32, 8, 8])],
    outputs: ['y'],
    initializers: { w: f([8, 16, 3, 3]) },
    nodes: [node('Conv', ['x', 'w'], ['y'], {}, 'conv2')],
  });
  assert.throws(
    () => inferShapes(conv),
    (e: unknown) => e instanceof UserError && /node "conv2" \(Conv\): input has 32 channels, weight expects 16/.test(e.message),
  );
  const gemm = caseModel({ op: 'Gemm', inputs: { x: [5, 64] }, consts: [f([10, 32])], attrs: { transB: int(1) }, expect: [] });
  assert.throws(() => inferShapes(gemm), /node "n" \(Gemm\): A has 64 columns \(K\), B expects 32/);
  const add = caseModel({ op: 'Add', inputs: { x: [3] }, consts: [f([4])], expect: [] });
  assert.throws(() => inferShapes(add), /cannot be broadcast/);
  const reshape = caseModel({ op: 'Reshape', inputs: { x: [2, 3] }, consts: [i64([4, 2])], expect: [] });
  assert.throws(() => inferShapes(reshape), /cannot reshape \[2,3\] \(6 elements\) into \[4,2\]/);
});

test('an unknown operator is a UserError naming node and operator', () => {
  const m = buildModel({ inputs: [vi('x', [1])], outputs: ['y'], nodes: [node('Foo', ['x'], ['y'], {}, 'conv_7')] });
  assert.throws(
    () => inferShapes(m),
    (e: unknown) => e instanceof UserError && e.message === 'node "conv_7" uses operator "Foo", which modelsmith does not support',
  );
});

test('annotateShapes fills value info and output shapes', () => {
  const m = torchViewNet();
  annotateShapes(m);
  assert.deepEqual(m.graph.valueInfo.get('relu1')?.shape, ['N', 4, 4, 4]);
  assert.deepEqual(m.graph.outputs[0]!.shape, ['N', 10]);
});

test('dtypes follow Cast, comparisons, Shape and ArgMax', () => {
  const m = buildModel({
    inputs: [vi('x', [2, 3])],
    outputs: ['c', 'g', 's', 'a'],
    nodes: [node('Cast', ['x'], ['c'], { to: int(7) }), node('Greater', ['x', 'x'], ['g']), node('Shape', ['x'], ['s']), node('ArgMax', ['x'], ['a'])],
  });
  const s = inferShapes(m);
  assert.deepEqual(
    ['c', 'g', 's', 'a'].map((n) => s.get(n)?.dtype),
    ['int64', 'bool', 'int64', 'int64'],
  );
});
