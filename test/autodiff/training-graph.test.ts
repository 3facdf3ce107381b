import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Model, Tensor } from '../../src/onnx/types.js';
import type { TrainingGraph } from '../../src/autodiff/types.js';
import { buildTrainingGraph } from '../../src/autodiff/training-graph.js';
import { validateModel } from '../../src/onnx/validate.js';
import { decodeModel, encodeModel } from '../../src/onnx/proto.js';
import { float, int } from '../../src/onnx/graph.js';
import { float32, int64 } from '../../src/onnx/tensor.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/random.js';
import { buildModel, node, randn, runOrt, vi, type OrtValue } from '../helpers/graphs.js';
import { checkGradients } from '../helpers/gradcheck.js';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5): void => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol * Math.max(1, Math.abs(b[i]!)), `[${i}]: ${a[i]} vs ${b[i]}`);
};

/** x [N,4] -> Gemm(w1) -> Relu -> Gemm(w2, frozen) -> logits [N,3] */
function twoLayer(): Model {
  const rng = new Rng(5);
  return buildModel({
    inputs: [vi('x', ['N', 4])],
    outputs: ['logits'],
    initializers: { w1: randn(rng, [6, 4]), b1: randn(rng, [6]), w2: randn(rng, [3, 6]), b2: randn(rng, [3]) },
    nodes: [
      node('Gemm', ['x', 'w1', 'b1'], ['h'], { transB: int(1) }, 'fc1'),
      node('Relu', ['h'], ['r'], {}, 'relu'),
      node('Gemm', ['r', 'w2', 'b2'], ['logits'], { transB: int(1) }, 'fc2'),
    ],
  });
}

/** Feeds a training graph from the forward model's own initializers. */
function feedsFor(tg: TrainingGraph, model: Model, input: Tensor, target: Tensor): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = { [tg.feeds.input]: input, [tg.feeds.target]: target };
  for (const p of tg.parameters) feeds[p] = model.graph.initializers.get(p)!;
  for (const s of tg.state) feeds[s.input] = model.graph.initializers.get(s.name)!;
  return feeds;
}

test('frozen parameters: gradients flow through a frozen Gemm to the trainable layer and to the input', async () => {
  const model = twoLayer();
  const { trainingGraph: tg } = await checkGradients({ model, trainable: ['w1', 'b1'], inputGradients: ['x', 'h'], loss: 'cross-entropy', batchSize: 3 });
  assert.deepEqual(Object.keys(tg.gradients), ['w1', 'b1']);
  assert.deepEqual(Object.keys(tg.inputGradients), ['x', 'h']);
  const g = tg.model.graph;
  assert.ok(g.initializers.has('w2') && g.initializers.has('b2'), 'frozen weights stay initializers');
  assert.ok(!g.initializers.has('w1') && g.inputs.some((v) => v.name === 'w1'), 'trainable weights become inputs');
  assert.ok(!g.outputs.some((o) => o.name.includes('w2') || o.name.includes('b2')), 'no gradient output for frozen weights');
  assert.deepEqual(
    g.outputs.map((o) => o.name),
    [tg.loss, tg.logits, 'grad/w1', 'grad/b1', 'grad/x', 'grad/h'],
  );
  assert.deepEqual(g.outputs[0]!.shape, []);
  validateModel(tg.model);
});

test('the logits and the cross-entropy loss: stable for huge logits, gradient (softmax - onehot) / B', async () => {
  const model = buildModel({
    inputs: [vi('x', ['N', 3])],
    outputs: ['logits'],
    initializers: { s: float32([3], [1000, 1, -1000]) },
    nodes: [node('Mul', ['x', 's'], ['logits'])],
  });
  const tg = buildTrainingGraph({ model, trainable: ['s'], loss: 'cross-entropy', batchSize: 2, batchNorm: 'eval', inputGradients: ['logits'] });
  const x = [1, 2, 3, 0.001, 0.5, -0.002];
  const out = await runOrt(tg.model, feedsFor(tg, model, float32([2, 3], x), int64([2], [2, 1])));
  const z = [
    [1000, 2, -3000],
    [1, 0.5, 2],
  ];
  const lse = z.map((r) => {
    const m = Math.max(...r);
    return m + Math.log(r.reduce((s, v) => s + Math.exp(v - m), 0));
  });
  const expected = (lse[0]! - z[0]![2]! + (lse[1]! - z[1]![1]!)) / 2;
  assert.ok(Number.isFinite(out[tg.loss]!.data[0] as number));
  close([out[tg.loss]!.data[0] as number], [expected], 1e-5);
  const dz = z.flatMap((r, b) => r.map((v, k) => (Math.exp(v - lse[b]!) - (k === [2, 1][b] ? 1 : 0)) / 2));
  close(out[tg.inputGradients['logits']!]!.data as Float32Array, dz, 1e-5);
  close(out[tg.logits]!.data as Float32Array, z.flat(), 1e-5);
});

test('mean squared error: value and gradient', async () => {
  const model = twoLayer();
  const tg = buildTrainingGraph({ model, trainable: [], loss: 'mse', batchSize: 2, batchNorm: 'eval', inputGradients: ['logits'] });
  const target = [0.5, -1, 2, 0, 0, 1];
  const out = await runOrt(tg.model, feedsFor(tg, model, float32([2, 4], [1, 2, 3, 4, -1, 0, 1, 0.5]), float32([2, 3], target)));
  const z = Array.from(out[tg.logits]!.data as Float32Array);
  const mse = z.reduce((s, v, i) => s + (v - target[i]!) ** 2, 0) / 6;
  close([out[tg.loss]!.data[0] as number], [mse]);
  close(
    out[tg.inputGradients['logits']!]!.data as Float32Array,
    z.map((v, i) => (2 * (v - target[i]!)) / 6),
  );
});

/** x [N,3,2,2] -> BatchNormalization (momentum 0.8) -> Flatten -> Gemm -> logits */
function bnModel(): Model {
  const rng = new Rng(9);
  return buildModel({
    inputs: [vi('x', ['N', 3, 2, 2])],
    outputs: ['logits'],
    initializers: {
      scale: float32([3], [1.5, 0.5, -1]),
      bias: float32([3], [0.1, -0.2, 0.3]),
      mean: float32([3], [0.2, -0.1, 0.4]),
      var: float32([3], [1.2, 0.8, 2]),
      w: randn(rng, [2, 12]),
    },
    nodes: [
      node('BatchNormalization', ['x', 'scale', 'bias', 'mean', 'var'], ['bn'], { epsilon: float(1e-3), momentum: float(0.8) }, 'bn'),
      node('Flatten', ['bn'], ['flat'], { axis: int(1) }, 'flatten'),
      node('Gemm', ['flat', 'w'], ['logits'], { transB: int(1) }, 'fc'),
    ],
  });
}

test('BatchNormalization train: batch statistics, biased variance to normalise, unbiased running update', async () => {
  const model = bnModel();
  const tg = buildTrainingGraph({ model, trainable: [], loss: 'mse', batchSize: 4, batchNorm: 'train', inputGradients: ['bn'] });
  assert.deepEqual(
    tg.state.map((s) => s.name),
    ['mean', 'var'],
  );
  assert.ok(tg.model.graph.inputs.some((v) => v.name === 'mean') && !tg.model.graph.initializers.has('mean'));
  const rng = new Rng(2);
  const x = Array.from({ length: 48 }, () => rng.normal() * 2 + 1);
  const out = await runOrt(tg.model, feedsFor(tg, model, float32([4, 3, 2, 2], x), float32([4, 2])));
  const scale = [1.5, 0.5, -1],
    bias = [0.1, -0.2, 0.3],
    rm = [0.2, -0.1, 0.4],
    rv = [1.2, 0.8, 2];
  const values = (c: number): number[] => x.filter((_, i) => Math.floor(i / 4) % 3 === c);
  const bn = new Array<number>(48);
  const newMean: number[] = [];
  const newVar: number[] = [];
  for (let c = 0; c < 3; c++) {
    const v = values(c);
    const mu = v.reduce((a, b) => a + b, 0) / 16;
    const biased = v.reduce((a, b) => a + (b - mu) ** 2, 0) / 16;
    newMean.push(0.8 * rm[c]! + 0.2 * mu);
    newVar.push(0.8 * rv[c]! + (0.2 * biased * 16) / 15);
    x.forEach((val, i) => {
      if (Math.floor(i / 4) % 3 === c) bn[i] = ((val - mu) / Math.sqrt(biased + 1e-3)) * scale[c]! + bias[c]!;
    });
  }
  const grads = (name: string): OrtValue => out[tg.state.find((s) => s.name === name)!.output]!;
  close(grads('mean').data as Float32Array, newMean, 1e-5);
  close(grads('var').data as Float32Array, newVar, 1e-5);
  // the BN output itself is not an output of the graph: read it through its (mse) gradient's graph instead
  const tap = buildTrainingGraph({
    model: { ...model, graph: { ...model.graph, outputs: [{ name: 'bn', dtype: 'float32' }] } },
    trainable: [],
    loss: 'mse',
    batchSize: 4,
    batchNorm: 'train',
  });
  const direct = await runOrt(tap.model, feedsFor(tap, model, float32([4, 3, 2, 2], x), float32([4, 3, 2, 2])));
  close(direct[tap.logits]!.data as Float32Array, bn, 1e-4);
});

test('BatchNormalization train: normalises the centred values, and its backward reads them instead of recomputing x_hat', () => {
  const model = bnModel();
  const tg = buildTrainingGraph({ model, trainable: ['scale', 'bias'], loss: 'mse', batchSize: 4, batchNorm: 'train', inputGradients: ['x'] });
  const nodes = tg.model.graph.nodes;
  const bn = nodes.find((n) => n.name === 'bn')!;
  const sub = nodes.find((n) => n.outputs[0] === bn.inputs[0])!;
  assert.equal(sub.opType, 'Sub', 'the forward BatchNormalization reads X - mean');
  assert.deepEqual(Array.from(tg.model.graph.initializers.get(bn.inputs[3]!)!.data as Float32Array), [0, 0, 0]);
  const backward = nodes.filter((n) => n.name.startsWith('grad/bn/'));
  assert.ok(backward.length > 0);
  // one BatchNormalization in the backward (the dX statistics term), none for x_hat; dScale from dY * (X - mean)
  assert.equal(backward.filter((n) => n.opType === 'BatchNormalization').length, 1);
  assert.ok(backward.some((n) => n.opType === 'Mul' && n.inputs.includes(sub.outputs[0]!)));
  // the mean's own gradient path is cut: the rule's formula already runs through the statistics
  assert.ok(!nodes.some((n) => n.name.startsWith('grad/') && n.opType === 'Neg'));
});

test('BatchNormalization eval: the affine map with running statistics; logits equal the forward model', async () => {
  const model = bnModel();
  const tg = buildTrainingGraph({ model, trainable: ['w'], loss: 'mse', batchSize: 4, batchNorm: 'eval' });
  assert.deepEqual(tg.state, []);
  assert.ok(tg.model.graph.initializers.has('mean'));
  const x = float32(
    [4, 3, 2, 2],
    Array.from({ length: 48 }, (_, i) => Math.sin(i)),
  );
  const out = await runOrt(tg.model, feedsFor(tg, model, x, float32([4, 2])));
  const reference = await runOrt(model, { x });
  close(out[tg.logits]!.data as Float32Array, reference['logits']!.data as Float32Array, 1e-6);
});

test('Dropout: active becomes a product with a fed mask; inactive disappears', async () => {
  const rng = new Rng(4);
  const model = buildModel({
    inputs: [vi('x', ['N', 5])],
    outputs: ['logits'],
    initializers: { ratio: float32([], [0.25]), w: randn(rng, [3, 5]) },
    nodes: [node('Dropout', ['x', 'ratio'], ['d'], {}, 'drop'), node('Gemm', ['d', 'w'], ['logits'], { transB: int(1) }, 'fc')],
  });
  const active = buildTrainingGraph({ model, trainable: ['w'], loss: 'mse', batchSize: 2, batchNorm: 'train' });
  assert.deepEqual(active.masks, [{ input: 'mask/drop', shape: [2, 5], ratio: 0.25 }]);
  assert.ok(!active.model.graph.nodes.some((n) => n.opType === 'Dropout'));
  const inactive = buildTrainingGraph({ model, trainable: ['w'], loss: 'mse', batchSize: 2, batchNorm: 'train', dropout: false });
  assert.deepEqual(inactive.masks, []);
  assert.ok(!inactive.model.graph.nodes.some((n) => n.opType === 'Dropout' || n.opType === 'Identity'));
  const report = await checkGradients({ model, trainable: ['w'], inputGradients: ['x'], dropout: true, batchSize: 2 });
  assert.ok(report.checked > 10);
});

test('a parameter the loss does not depend on gets a zero gradient', async () => {
  const model = twoLayer();
  model.graph.initializers.set('unused', float32([2], [1, 2]));
  const tg = buildTrainingGraph({ model, trainable: ['w2', 'unused'], loss: 'mse', batchSize: 2, batchNorm: 'eval' });
  const out = await runOrt(tg.model, feedsFor(tg, model, float32([2, 4], [1, 2, 3, 4, 5, 6, 7, 8]), float32([2, 3])));
  assert.deepEqual(Array.from(out[tg.gradients['unused']!]!.data as Float32Array), [0, 0]);
});

test('a tensor read by several nodes sums their gradients', async () => {
  const rng = new Rng(8);
  const model = buildModel({
    inputs: [vi('x', ['N', 3])],
    outputs: ['y'],
    initializers: { w: randn(rng, [3]), v: randn(rng, [3]) },
    nodes: [
      node('Mul', ['x', 'w'], ['a']),
      node('Mul', ['a', 'a'], ['sq']),
      node('Add', ['sq', 'a'], ['s']),
      node('Mul', ['s', 'v'], ['t']),
      node('Sub', ['t', 'a'], ['y']),
    ],
  });
  await checkGradients({ model, trainable: ['w', 'v'], inputGradients: ['x', 'a'], batchSize: 2 });
});

test('an operator without a gradient rule on the differentiated path is a UserError naming it', () => {
  const model = buildModel({
    inputs: [vi('x', ['N', 3])],
    outputs: ['y'],
    initializers: { w: float32([3], [1, 2, 3]) },
    nodes: [node('Mul', ['x', 'w'], ['a']), node('Softsign', ['a'], ['y'], {}, 'soft')],
  });
  assert.throws(
    () => buildTrainingGraph({ model, trainable: ['w'], loss: 'mse', batchSize: 2, batchNorm: 'eval' }),
    (e: unknown) => e instanceof UserError && e.message === 'no gradient rule for operator Softsign (node soft)',
  );
  // the same operator off the path (nothing trainable before it) is fine
  assert.doesNotThrow(() => buildTrainingGraph({ model, trainable: [], loss: 'mse', batchSize: 2, batchNorm: 'eval' }));
  // a rule that gives no gradient for an input on the path (Clip's bounds) must not freeze it silently
  const clip = buildModel({
    inputs: [vi('x', ['N', 3])],
    outputs: ['y'],
    initializers: { lo: float32([], [-0.5]) },
    nodes: [node('Clip', ['x', 'lo'], ['y'], {}, 'clip')],
  });
  assert.throws(
    () => buildTrainingGraph({ model: clip, trainable: ['lo'], loss: 'mse', batchSize: 2, batchNorm: 'eval' }),
    /no gradient rule for input 1 \("lo"\) of operator Clip \(node clip\)/,
  );
});

test('bad specifications are UserErrors naming the problem', () => {
  const model = twoLayer();
  const build = (over: object) => () => buildTrainingGraph({ model, trainable: ['w1'], loss: 'mse', batchSize: 2, batchNorm: 'eval', ...over });
  assert.throws(build({ trainable: ['nope'] }), /trainable parameter "nope" is not an initializer/);
  assert.throws(build({ trainable: ['w1', 'w1'] }), /listed twice/);
  assert.throws(build({ batchSize: 0 }), /batch size must be a positive integer/);
  assert.throws(build({ inputGradients: ['missing'] }), /tensor "missing" does not exist/);
  const fixed = twoLayer();
  fixed.graph.inputs = [vi('x', [5, 4])];
  assert.throws(() => buildTrainingGraph({ model: fixed, trainable: [], loss: 'mse', batchSize: 2, batchNorm: 'eval' }), /fixed batch size of 5/);
  const old = twoLayer();
  old.opsets = [{ domain: '', version: 11 }];
  assert.throws(() => buildTrainingGraph({ model: old, trainable: [], loss: 'mse', batchSize: 2, batchNorm: 'eval' }), /opset 11/);
  const bn = bnModel();
  assert.throws(() => buildTrainingGraph({ model: bn, trainable: ['mean'], loss: 'mse', batchSize: 2, batchNorm: 'train' }), /running statistic/);
  const flat = buildModel({
    inputs: [vi('x', ['N', 3])],
    outputs: ['y'],
    initializers: { s: float32([3], [1, 1, 1]), b: float32([3]), m: float32([3]), v: float32([3], [1, 1, 1]) },
    nodes: [node('BatchNormalization', ['x', 's', 'b', 'm', 'v'], ['y'], {}, 'bn1d')],
  });
  assert.throws(
    () => buildTrainingGraph({ model: flat, trainable: [], loss: 'mse', batchSize: 1, batchNorm: 'train' }),
    /bn1d.*more than one value per channel/,
  );
});

test('a model read back from its file gives the same training graph, byte for byte (exact resume)', () => {
  // momentum 0.8 is 0.8 in memory but 0.800000011920929 once stored as an ONNX float attribute
  const model = bnModel();
  const spec = { trainable: ['w', 'scale', 'bias'], loss: 'mse', batchSize: 4, batchNorm: 'train' } as const;
  const a = encodeModel(buildTrainingGraph({ ...spec, model }).model);
  const b = encodeModel(buildTrainingGraph({ ...spec, model: decodeModel(encodeModel(model)) }).model);
  assert.ok(Buffer.from(a).equals(Buffer.from(b)));
});

test('the forward model is not modified', () => {
  const model = bnModel();
  const before = JSON.stringify({ nodes: model.graph.nodes, inputs: model.graph.inputs, inits: [...model.graph.initializers.keys()] });
  buildTrainingGraph({ model, trainable: ['w'], loss: 'mse', batchSize: 4, batchNorm: 'train' });
  assert.equal(JSON.stringify({ nodes: model.graph.nodes, inputs: model.graph.inputs, inits: [...model.graph.initializers.keys()] }), before);
});
