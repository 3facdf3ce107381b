/**
 * Training works on every torchvision-family export (fixtures/torchvision): the
 * training graph builds in training mode (batch statistics, live Dropout masks), its
 * gradients are finite and reach every parameter, and a small step along them lowers
 * the loss; the exporter's Identity aliases of equal initializers train apart.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../src/onnx/proto.js';
import { untieAliases } from '../../src/onnx/fold.js';
import { trainableParameters } from '../../src/onnx/parameters.js';
import { TrainingSession } from '../../src/autodiff/trainer.js';
import { train } from '../../src/autodiff/train.js';
import { openDataset } from '../../src/data/resolve.js';
import { buildModel, node, randn, vi } from '../helpers/graphs.js';
import { int, ints } from '../../src/onnx/graph.js';
import { Rng } from '../../src/util/random.js';
import { int64 } from '../../src/onnx/tensor.js';
import { fixture, tempDir } from '../helpers/paths.js';

const NAMES = [
  'tv_resnet18',
  'tv_resnet50',
  'tv_googlenet',
  'tv_mobilenet_v2',
  'tv_mobilenet_v3_small',
  'tv_efficientnet_b0',
  'tv_densenet',
  'tv_regnet_x',
  'tv_regnet_y',
  'tv_convnext',
  'tv_shufflenet_v2',
  'tv_squeezenet',
  'tv_vgg_bn',
  'tv_vit',
  'tv_swin',
];
const LABELS = BigInt64Array.from([3, 1, 4, 1], BigInt);

function ioInput(name: string): Float32Array {
  const io = JSON.parse(readFileSync(fixture('torchvision', `${name}.io.json`), 'utf8')) as { input: string };
  const bytes = Buffer.from(io.input, 'base64');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

const norm = (grads: Map<string, Float32Array>): number => Math.sqrt([...grads.values()].reduce((s, g) => s + g.reduce((t, v) => t + v * v, 0), 0));

for (const name of NAMES) {
  test(`${name}: training mode gives finite gradients for every parameter, and a step along them lowers the loss`, async () => {
    const model = untieAliases(loadModel(fixture('torchvision', `${name}.onnx`)));
    const trainable = trainableParameters(model.graph);
    const x = ioInput(name);
    const live = await TrainingSession.create(model, { trainable, loss: 'cross-entropy', batchSize: 4, batchNorm: 'train', seed: 1, session: { threads: 1 } });
    try {
      const r = await live.step(x, LABELS);
      assert.ok(Number.isFinite(r.loss), `loss ${r.loss}`);
      for (const [p, g] of r.grads) {
        assert.ok(g.every(Number.isFinite), `${p}: non-finite gradient`);
        assert.ok(
          g.some((v) => v !== 0),
          `${p}: zero gradient`,
        );
      }
    } finally {
      await live.release();
    }
    // Without Dropout masks the batch's loss is a fixed function of the weights: a short normalised step must lower it.
    const t = await TrainingSession.create(model, {
      trainable,
      loss: 'cross-entropy',
      batchSize: 4,
      batchNorm: 'train',
      dropout: false,
      session: { threads: 1 },
    });
    try {
      const before = await t.step(x, LABELS);
      const scale = 0.05 / norm(before.grads);
      for (const [p, v] of t.params) {
        const g = before.grads.get(p)!;
        for (let i = 0; i < v.length; i++) v[i]! -= scale * g[i]!;
      }
      const after = await t.step(x, LABELS);
      assert.ok(after.loss < before.loss, `loss ${before.loss} -> ${after.loss}`);
    } finally {
      await t.release();
    }
  });
}

test("train unties the exporter's Identity aliases: equal initializers become separate parameters and train apart", async () => {
  // torch.onnx.export keeps one of several equal tensors (here the zero biases) and makes the others Identity copies of it
  const rng = new Rng(3);
  const model = buildModel({
    inputs: [vi('input', ['N', 1, 28, 28])],
    outputs: [vi('logits', ['N', 4])],
    initializers: { 'conv.weight': randn(rng, [4, 1, 5, 5]), 'conv.bias': randn(rng, [4], 0), 'fc.weight': randn(rng, [4, 4], 0.3) },
    nodes: [
      node('Identity', ['conv.bias'], ['fc.bias'], {}, 'alias'),
      node('Conv', ['input', 'conv.weight', 'conv.bias'], ['c'], { kernel_shape: ints([5, 5]), strides: ints([4, 4]) }),
      node('Relu', ['c'], ['r']),
      node('GlobalAveragePool', ['r'], ['p']),
      node('Flatten', ['p'], ['f'], { axis: int(1) }),
      node('Gemm', ['f', 'fc.weight', 'fc.bias'], ['logits'], { transB: int(1) }),
    ],
  });
  const data = await openDataset('fashion-mnist-sample', 'train');
  const out = join(tempDir(), 'untied.onnx');
  const job = {
    model,
    data,
    classes: [0, 1, 2, 3],
    epochs: 2,
    batchSize: 32,
    lr: 0.05,
    optimizer: { kind: 'sgd' as const, momentum: 0.9, weightDecay: 0 },
    schedule: { kind: 'constant' as const, warmupSteps: 0 },
    seed: 1,
    session: { threads: 1 },
    output: out,
    parentHash: 'aliased',
  };
  await train({ ...job, stopAfter: 1 });
  // the checkpoint holds the untied model: resuming from the aliased file must accept it
  const r = await train({ ...job, resume: true });
  assert.equal(r.epochs.length, 2);
  assert.equal(r.trainable, 4, 'conv.weight, conv.bias, fc.weight and fc.bias');
  const m = loadModel(out);
  assert.ok(!m.graph.nodes.some((n) => n.opType === 'Identity'), 'the alias is gone');
  const bias = (n: string): number[] => Array.from(m.graph.initializers.get(n)!.data as Float32Array);
  assert.ok(bias('conv.bias').some((v) => v !== 0) && bias('fc.bias').some((v) => v !== 0), 'both biases trained');
  assert.notDeepEqual(bias('conv.bias'), bias('fc.bias'), 'and apart');
});

test('untieAliases: aliases of aliases too; an alias that is a graph output and a non-float alias stay', () => {
  const model = buildModel({
    inputs: [vi('x', ['N', 2])],
    outputs: ['y', 'b2'],
    initializers: { b: randn(new Rng(1), [2]), k: int64([1], [1]) },
    nodes: [
      node('Identity', ['b'], ['b1']),
      node('Identity', ['b1'], ['b2']),
      node('Identity', ['b'], ['b3']),
      node('Identity', ['k'], ['k1']),
      node('Add', ['x', 'b1'], ['a']),
      node('Add', ['a', 'b3'], ['y0']),
      node('Reshape', ['y0', 'k1'], ['y1']),
      node('Reshape', ['y0', 'two'], ['y']),
    ],
  });
  model.graph.initializers.set('two', int64([2], [-1, 2]));
  const u = untieAliases(model);
  assert.deepEqual([...u.graph.initializers.keys()].filter((n) => n.startsWith('b')).sort(), ['b', 'b1', 'b3']);
  assert.deepEqual(
    u.graph.nodes
      .filter((n) => n.opType === 'Identity')
      .map((n) => n.outputs[0])
      .sort(),
    ['b2', 'k1'],
  );
  assert.notEqual(u.graph.initializers.get('b1')!.data, u.graph.initializers.get('b')!.data, 'copies, not shared arrays');
  assert.equal(model.graph.nodes.filter((n) => n.opType === 'Identity').length, 4, 'the input model is unchanged');
});
