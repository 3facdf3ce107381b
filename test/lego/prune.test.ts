import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Model } from '../../src/onnx/types.js';
import { createZooModel } from '../../src/nn/zoo.js';
import { loadModel } from '../../src/onnx/proto.js';
import { openDataset } from '../../src/data/resolve.js';
import { validateModel } from '../../src/onnx/validate.js';
import { trainableParameterCount } from '../../src/onnx/parameters.js';
import { planDisassembly } from '../../src/lego/disassemble.js';
import { pruneModel, maskedOriginal, sliceAxis } from '../../src/lego/prune.js';
import { float32 } from '../../src/onnx/tensor.js';
import { fixture } from '../helpers/paths.js';
import { firstImages, logitsOf, maxRelDiff, randomBatch } from './disassemble-helpers.js';

const train = firstImages(await openDataset('fashion-mnist-sample', 'train'), 400);

const cases: [string, () => Model][] = [
  ['VGG-16 (zoo, width 1/16)', () => createZooModel('vgg16', { width: 0.0625, seed: 3 })],
  ['ResNet basic blocks (zoo)', () => createZooModel('resnet', { blocks: [2, 1, 1, 1], width: 0.125, seed: 3 })],
  ['ResNet-50 bottleneck (zoo)', () => createZooModel('resnet50', { width: 0.0625, seed: 3 })],
  ['Inception (zoo)', () => createZooModel('inception', { width: 0.0625, seed: 3 })],
  ['MLP (zoo)', () => createZooModel('mlp', { hidden: [64, 32], seed: 3 })],
  ['LeNet-5 (zoo)', () => createZooModel('lenet5', { seed: 3 })],
  ['PyTorch vgg_small', () => loadModel(fixture('torch', 'vgg_small.onnx'))],
  ['PyTorch vgg_small.nofold (BatchNorm, Shape/Reshape)', () => loadModel(fixture('torch', 'vgg_small.nofold.onnx'))],
  ['PyTorch resnet_small', () => loadModel(fixture('torch', 'resnet_small.onnx'))],
  ['PyTorch resnet_small.nofold', () => loadModel(fixture('torch', 'resnet_small.nofold.onnx'))],
  ['PyTorch inception_small', () => loadModel(fixture('torch', 'inception_small.onnx'))],
  ['PyTorch inception_small.nofold', () => loadModel(fixture('torch', 'inception_small.nofold.onnx'))],
];

for (const [name, make] of cases) {
  test(`pruned component computes what the masked original computes: ${name}`, async () => {
    const model = make();
    const plan = await planDisassembly(model, train, { task: [1, 4, 7], samplesPerClass: 4, batchSize: 32, label: '' });
    const pruned = pruneModel(plan.cg, plan.keep);
    validateModel(pruned);
    assert.ok(trainableParameterCount(pruned.graph) < trainableParameterCount(model.graph), 'the component is smaller');
    const batch = randomBatch(3, [1, 28, 28], 7);
    const a = await logitsOf(pruned, batch);
    const b = await logitsOf(maskedOriginal(plan.cg, plan.keep), batch);
    assert.equal(a.length, 3 * 3);
    assert.ok(maxRelDiff(a, b) < 1e-5, `max difference ${maxRelDiff(a, b)}`);
    // and the kept rows are the parent's rows 1, 4, 7 only where nothing upstream was cut: not asserted
  });
}

test('residual groups keep one channel set: every identity shortcut reads what the previous block writes', async () => {
  const model = createZooModel('resnet', { blocks: [3, 1, 1, 1], width: 0.125, seed: 5 });
  const plan = await planDisassembly(model, train, { task: [0, 9], samplesPerClass: 4, label: '' });
  const layer = (n: string) => plan.masks.layers.find((l) => l.node === n)!;
  // layer1.1 and layer1.2 have identity shortcuts: their input is the residual stream
  const stream = layer('layer1.1.conv1').task.in;
  assert.deepEqual(layer('layer1.2.conv1').task.in, stream);
  assert.deepEqual(layer('layer1.0.conv2').task.out, stream);
  assert.deepEqual(layer('layer1.1.conv2').task.out, stream);
  assert.deepEqual(layer('layer1.2.conv2').task.out, stream);
  assert.ok(stream.length < layer('layer1.1.conv1').inChannels, 'something was pruned from the stream');
});

test("Concat offsets: the layer after an Inception module reads the branches' kept channels at their offsets", async () => {
  const model = createZooModel('inception', { width: 0.0625, seed: 5 });
  const plan = await planDisassembly(model, train, { task: [3], samplesPerClass: 4, label: '' });
  const layer = (n: string) => plan.masks.layers.find((l) => l.node === n)!;
  const branches = ['a3.b1.0', 'a3.b2.3', 'a3.b3.6', 'a3.b4.1'].map(layer);
  let off = 0;
  const expected: number[] = [];
  for (const b of branches) {
    expected.push(...b.task.out.map((c) => c + off));
    off += b.outChannels;
  }
  assert.deepEqual(layer('b3.b1.0').task.in, expected);
});

test('sliceAxis keeps the chosen indices along one axis', () => {
  const t = float32([2, 3, 2], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  assert.deepEqual(Array.from(sliceAxis(t, 1, [0, 2]).data as Float32Array), [0, 1, 4, 5, 6, 7, 10, 11]);
  assert.deepEqual(sliceAxis(t, 1, [0, 2]).dims, [2, 2, 2]);
  assert.deepEqual(Array.from(sliceAxis(t, 0, [1]).data as Float32Array), [6, 7, 8, 9, 10, 11]);
});
