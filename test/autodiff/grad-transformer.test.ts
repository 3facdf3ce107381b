/**
 * Gradient rules that transformer and ConvNeXt exports need, against float64 central
 * differences: LayerNormalization, Erf and Gelu, Gather on float data (the class token
 * x[:, 0], negative, repeated and computed indices), MatMul on batched and broadcast
 * operands, and a whole attention block as torch.onnx.export writes it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Node } from '../../src/onnx/types.js';
import { checkGradients, checkOp } from '../helpers/gradcheck.js';
import { buildModel, node, randn, vi } from '../helpers/graphs.js';
import { float, int, ints, str } from '../../src/onnx/graph.js';
import { float32, int64 } from '../../src/onnx/tensor.js';
import { Rng } from '../../src/util/random.js';
import '../helpers/reference/index.js';
import { assertClose, assertMatchesOrt, numericGradient, randomRef, runRule } from './conv-test-kit.js';
import { RULES as NORM } from '../../src/autodiff/rules/norm.js';

test('reference LayerNormalization (Y, Mean, InvStdDev) and Erf, HardSwish, HardSigmoid match ONNX Runtime', async () => {
  const rng = new Rng(1);
  const ln = (axis: number, scaleDims: number[], outputs = ['y', 'mean', 'invstd']): Node => ({
    name: 'ln',
    opType: 'LayerNormalization',
    inputs: ['x', 's', 'b'],
    outputs,
    attributes: { axis: int(axis), epsilon: float(1e-3) },
  });
  await assertMatchesOrt(ln(-1, [4]), { x: randomRef(rng, [2, 3, 4]), s: randomRef(rng, [4]), b: randomRef(rng, [4]) }, 1e-5);
  await assertMatchesOrt(ln(1, [3, 4]), { x: randomRef(rng, [2, 3, 4]), s: randomRef(rng, [3, 4]), b: randomRef(rng, [3, 4]) }, 1e-5);
  const x = randomRef(rng, [3, 7]);
  x.data = x.data.map((v) => v * 3);
  for (const opType of ['Erf', 'HardSwish', 'HardSigmoid'])
    await assertMatchesOrt({ name: opType, opType, inputs: ['x'], outputs: ['y'], attributes: {} }, { x }, 1e-5);
});

test('LayerNormalization: last axis, several axes, scale broadcast over the normalised axes, without bias', async () => {
  const eps = { epsilon: float(1e-5) };
  await checkOp({ op: 'LayerNormalization', inputs: [[2, 3, 4], { shape: [4] }, { shape: [4] }], attributes: { axis: int(-1), ...eps } });
  await checkOp({ op: 'LayerNormalization', inputs: [[2, 3, 4], { shape: [3, 4] }, { shape: [3, 4] }], attributes: { axis: int(1), ...eps } });
  await checkOp({ op: 'LayerNormalization', inputs: [[2, 3, 4], { shape: [4] }, { shape: [1, 4] }], attributes: { axis: int(1), ...eps } });
  await checkOp({ op: 'LayerNormalization', inputs: [[3, 5], { shape: [5] }], attributes: eps });
  // ConvNeXt's channels-first LayerNorm is written as Transpose -> LayerNormalization(-1) -> Transpose
  const rng = new Rng(4);
  const model = buildModel({
    inputs: [vi('x', [2, 4, 3, 3])],
    outputs: ['y'],
    initializers: { s: randn(rng, [4], 1), b: randn(rng, [4]) },
    nodes: [
      node('Transpose', ['x'], ['t'], { perm: ints([0, 2, 3, 1]) }),
      node('LayerNormalization', ['t', 's', 'b'], ['n'], { axis: int(-1), epsilon: float(1e-6) }),
      node('Transpose', ['n'], ['y'], { perm: ints([0, 3, 1, 2]) }),
    ],
  });
  await checkGradients({ model, trainable: ['s', 'b'], inputGradients: ['x'] });
});

test('LayerNormalization: the training graph stashes Mean/InvStdDev on the forward node; a node without them gets a twin', async () => {
  const rng = new Rng(5);
  const model = buildModel({
    inputs: [vi('x', [2, 6])],
    outputs: ['y'],
    initializers: { s: randn(rng, [6], 1), b: randn(rng, [6]) },
    nodes: [node('LayerNormalization', ['x', 's', 'b'], ['y', 'my_mean'], { axis: int(1) })],
  });
  const r = await checkGradients({ model, trainable: ['s', 'b'], inputGradients: ['x'] });
  const ln = r.trainingGraph.model.graph.nodes.filter((n) => n.opType === 'LayerNormalization');
  assert.equal(ln.length, 1, 'one LayerNormalization: the forward node serves the backward pass');
  assert.equal(ln[0]!.outputs[1], 'my_mean');
  assert.equal(ln[0]!.outputs.length, 3);
  // the rule alone, on a node with only Y (as a pass that skipped the stash would hand it over)
  const single: Node = {
    name: 'ln1',
    opType: 'LayerNormalization',
    inputs: ['x', 's', 'b'],
    outputs: ['y'],
    attributes: { axis: int(-1), epsilon: float(1e-4) },
  };
  const inputs = { x: randomRef(rng, [3, 2, 5]), s: randomRef(rng, [5]), b: randomRef(rng, [5]) };
  const { grads, dys } = await runRule(NORM.LayerNormalization!, single, inputs, { needs: [true, false, false] });
  assertClose(numericGradient(single, [inputs.x, inputs.s, inputs.b], 0, dys[0]!, 1e-5), grads[0]!, 1e-5, 'dX through the twin');
});

test('Erf, and Gelu (opset 20, exact and tanh forms)', async () => {
  const wide = Float32Array.from({ length: 15 }, (_, i) => -3 + i * 0.43);
  await checkOp({ op: 'Erf', inputs: [[3, 5]] }, { input: wide });
  for (const approximate of ['none', 'tanh']) {
    const { model, trainable } = {
      model: buildModel({ inputs: [vi('x', [3, 5])], outputs: ['y'], nodes: [node('Gelu', ['x'], ['y'], { approximate: str(approximate) })] }),
      trainable: [],
    };
    model.opsets = [{ domain: '', version: 20 }];
    await checkGradients({ model, trainable, inputGradients: ['x'], input: wide });
  }
});

test('Gather on float data: the class token x[:, 0], a negative scalar index, repeated and unordered indices, the first axis', async () => {
  const scalar = (v: number) => ({ constant: int64([], [v]) });
  await checkOp({ op: 'Gather', inputs: [[2, 5, 3], scalar(0)], attributes: { axis: int(1) } });
  await checkOp({ op: 'Gather', inputs: [[2, 5, 3], scalar(-1)], attributes: { axis: int(1) } });
  await checkOp({ op: 'Gather', inputs: [[2, 5, 3], { constant: int64([2, 3], [4, 0, 4, -1, 2, 0]) }], attributes: { axis: int(1) } });
  await checkOp({ op: 'Gather', inputs: [[2, 5, 3], { constant: int64([2], [1, 2]) }], attributes: { axis: int(-1) } });
  // axis 0 gathers across the batch: a fixed batch of 3
  await checkOp({ op: 'Gather', inputs: [[3, 4], { constant: int64([4], [2, 0, 2, 1]) }] }, { batchSize: 3 });
});

test('Gather with indices computed in the graph (negative ones wrapped at run time)', async () => {
  // idx = ArgMax(x over its last axis) - 4: data-dependent, negative, with repeats
  const rng = new Rng(6);
  const model = buildModel({
    inputs: [vi('x', [2, 4, 3])],
    outputs: ['y'],
    initializers: { w: randn(rng, [3], 1), four: int64([], [4]) },
    nodes: [
      node('Mul', ['x', 'w'], ['a']),
      node('ArgMax', ['x'], ['am'], { axis: int(2), keepdims: int(0) }),
      node('Sub', ['am', 'four'], ['idx']),
      node('Gather', ['a', 'idx'], ['y'], { axis: int(1) }),
    ],
  });
  const r = await checkGradients({ model, trainable: ['w'], inputGradients: ['x'] });
  assert.ok(
    r.trainingGraph.model.graph.nodes.some((n) => n.opType === 'ScatterElements'),
    'computed indices go through a scatter-add',
  );
});

test('GatherElements and Tile', async () => {
  await checkOp({ op: 'GatherElements', inputs: [[2, 4], { constant: int64([2, 3], [0, 3, -1, 1, 1, 2]) }], attributes: { axis: int(1) } });
  await checkOp({ op: 'Tile', inputs: [[2, 3, 2], { constant: int64([3], [1, 2, 3]) }] });
});

test('MatMul: attention-shaped rank-4 products, broadcasting both ways, a weight on the left of batched data', async () => {
  await checkOp({ op: 'MatMul', inputs: [[2, 2, 3, 4], { shape: [2, 2, 4, 3] }] });
  await checkOp({ op: 'MatMul', inputs: [[2, 1, 3, 4], { shape: [1, 3, 4, 2] }] });
  await checkOp({ op: 'MatMul', inputs: [[2, 3, 3, 4], { shape: [3, 4, 5] }] });
  const rng = new Rng(7);
  const model = buildModel({
    inputs: [vi('x', [2, 4, 5])],
    outputs: ['y'],
    initializers: { w: randn(rng, [3, 4], 1) },
    nodes: [node('MatMul', ['w', 'x'], ['y'])],
  });
  await checkGradients({ model, trainable: ['w'], inputGradients: ['x'] });
  // two activations multiplied (q k^T): both operands depend on the input
  const qk = buildModel({
    inputs: [vi('x', [2, 3, 4])],
    outputs: ['y'],
    initializers: { wq: randn(rng, [4, 4], 1), wk: randn(rng, [4, 4], 1) },
    nodes: [
      node('MatMul', ['x', 'wq'], ['q']),
      node('MatMul', ['x', 'wk'], ['k']),
      node('Transpose', ['k'], ['kt'], { perm: ints([0, 2, 1]) }),
      node('MatMul', ['q', 'kt'], ['y']),
    ],
  });
  await checkGradients({ model: qk, trainable: ['wq', 'wk'], inputGradients: ['x'] });
});

test('a ViT encoder block as exported: class token, LayerNorm, two-head attention, Erf GELU MLP, x[:, 0]', async () => {
  const rng = new Rng(8);
  const d = 4,
    tokens = 3,
    heads = 2,
    hd = d / heads;
  const model = buildModel({
    inputs: [vi('x', ['N', tokens - 1, d])],
    outputs: ['y'],
    initializers: {
      cls: randn(rng, [1, 1, d]),
      pos: randn(rng, [1, tokens, d]),
      s1: randn(rng, [d], 1),
      b1: randn(rng, [d]),
      wqkv: randn(rng, [d, 3 * d], 0.7),
      bqkv: randn(rng, [3 * d]),
      wo: randn(rng, [d, d], 0.7),
      s2: randn(rng, [d], 1),
      b2: randn(rng, [d]),
      w1: randn(rng, [d, 6], 0.7),
      w2: randn(rng, [6, d], 0.7),
      expand: int64([3], [2, 1, 1]),
      split: int64([3], [d, d, d]),
      heads: int64([4], [2, tokens, heads, hd]),
      merged: int64([3], [2, tokens, d]),
      scale: float32([], [1 / Math.sqrt(hd)]),
      sqrt2: float32([], [Math.SQRT2]),
      one: float32([], [1]),
      half: float32([], [0.5]),
      zero: int64([], [0]),
    },
    nodes: [
      node('Expand', ['cls', 'expand'], ['clsb']),
      node('Concat', ['clsb', 'x'], ['seq'], { axis: int(1) }),
      node('Add', ['seq', 'pos'], ['h0']),
      node('LayerNormalization', ['h0', 's1', 'b1'], ['n1'], { axis: int(-1), epsilon: float(1e-6) }),
      node('MatMul', ['n1', 'wqkv'], ['qkv0']),
      node('Add', ['bqkv', 'qkv0'], ['qkv']),
      node('Split', ['qkv', 'split'], ['q0', 'k0', 'v0'], { axis: int(-1) }),
      node('Reshape', ['q0', 'heads'], ['q1']),
      node('Reshape', ['k0', 'heads'], ['k1']),
      node('Reshape', ['v0', 'heads'], ['v1']),
      node('Transpose', ['q1'], ['q'], { perm: ints([0, 2, 1, 3]) }),
      node('Transpose', ['k1'], ['kt'], { perm: ints([0, 2, 3, 1]) }),
      node('Transpose', ['v1'], ['v'], { perm: ints([0, 2, 1, 3]) }),
      node('MatMul', ['q', 'kt'], ['att0']),
      node('Mul', ['att0', 'scale'], ['att1']),
      node('Softmax', ['att1'], ['att'], { axis: int(-1) }),
      node('MatMul', ['att', 'v'], ['ctx0']),
      node('Transpose', ['ctx0'], ['ctx1'], { perm: ints([0, 2, 1, 3]) }),
      node('Reshape', ['ctx1', 'merged'], ['ctx']),
      node('MatMul', ['ctx', 'wo'], ['o']),
      node('Add', ['o', 'h0'], ['h1']),
      node('LayerNormalization', ['h1', 's2', 'b2'], ['n2'], { axis: int(-1), epsilon: float(1e-6) }),
      node('MatMul', ['n2', 'w1'], ['m0']),
      node('Div', ['m0', 'sqrt2'], ['m1']),
      node('Erf', ['m1'], ['m2']),
      node('Add', ['m2', 'one'], ['m3']),
      node('Mul', ['m0', 'm3'], ['m4']),
      node('Mul', ['m4', 'half'], ['m5']),
      node('MatMul', ['m5', 'w2'], ['m6']),
      node('Add', ['m6', 'h1'], ['h2']),
      node('Gather', ['h2', 'zero'], ['y'], { axis: int(1) }),
    ],
  });
  const trainable = ['cls', 'pos', 's1', 'b1', 'wqkv', 'bqkv', 'wo', 's2', 'b2', 'w1', 'w2'];
  const r = await checkGradients({ model, trainable, inputGradients: ['x'], batchSize: 2, loss: 'cross-entropy' });
  for (const p of trainable) assert.ok(r.largest[p]! > 1e-6, `${p}: zero gradient`);
});

test('an opset-18 graph trains at its own opset: Reduce* axes as inputs, Split by num_outputs', async () => {
  const model = buildModel({
    inputs: [vi('x', ['N', 3, 4])],
    outputs: ['y'],
    initializers: { w: float32([4], [0.5, -1, 2, 1]), axes: int64([1], [1]) },
    nodes: [
      node('Mul', ['x', 'w'], ['a']),
      node('Split', ['a'], ['s1', 's2'], { axis: int(2), num_outputs: int(2) }),
      node('ReduceMax', ['s1', 'axes'], ['m'], { keepdims: int(1) }),
      node('Add', ['m', 's2'], ['b']),
      node('ReduceMean', ['b', 'axes'], ['y'], { keepdims: int(0) }),
    ],
  });
  model.opsets = [{ domain: '', version: 18 }];
  const r = await checkGradients({ model, trainable: ['w'], inputGradients: ['x'] });
  assert.equal(r.trainingGraph.model.opsets[0]!.version, 18);
});
