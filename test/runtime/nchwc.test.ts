import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attrInts, int, ints } from '../../src/onnx/graph.js';
import { lowerConvs, nchwcBlockSize, NCHWC_DOMAIN } from '../../src/runtime/nchwc.js';
import { ModelSession, type Feed } from '../../src/runtime/session.js';
import type { Model } from '../../src/onnx/types.js';
import { createZooModel } from '../../src/nn/zoo.js';
import { trainableParameters } from '../../src/onnx/parameters.js';
import { TrainingSession, type TrainingSessionOptions } from '../../src/autodiff/trainer.js';
import { Rng } from '../../src/util/random.js';
import { buildModel, node, randn, vi } from '../helpers/graphs.js';

const block = await nchwcBlockSize();

/** The model's outputs with and without the lowering agree to `tolerance` (relative, plus as much absolute). */
async function assertLoweredMatches(model: Model, feeds: Record<string, Feed>, tolerance: number): Promise<void> {
  const plain = await ModelSession.create(model, { threads: 1, nchwc: false });
  const fast = await ModelSession.create(model, { threads: 1 });
  const a = await plain.run(feeds);
  const b = await fast.run(feeds);
  for (const name of Object.keys(a)) {
    const x = a[name]!.data as Float32Array;
    const y = b[name]!.data as Float32Array;
    assert.deepEqual(b[name]!.dims, a[name]!.dims, name);
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i]! - y[i]!) <= tolerance * (1 + Math.abs(x[i]!)), `${name}[${i}]: ${x[i]} vs ${y[i]}`);
  }
  await plain.release();
  await fast.release();
}

const largestMagnitude = (v: Float32Array): number => v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

/**
 * One training step with and without the lowering: the same loss, and every gradient
 * within 1e-4 of max(its largest magnitude, floor(all gradients)).
 */
async function assertLoweredStepMatches(
  model: Model,
  spec: Omit<TrainingSessionOptions, 'session'>,
  x: Float32Array,
  t: BigInt64Array,
  floor: (grads: Map<string, Float32Array>) => number,
): Promise<void> {
  const plain = await TrainingSession.create(model, { ...spec, session: { threads: 1, nchwc: false } });
  const fast = await TrainingSession.create(model, { ...spec, session: { threads: 1 } });
  const a = await plain.step(x, t);
  const b = await fast.step(x, t);
  assert.ok(Math.abs(a.loss - b.loss) < 1e-5, `${a.loss} vs ${b.loss}`);
  const least = floor(a.grads);
  for (const [name, g] of a.grads) {
    const h = b.grads.get(name)!;
    const scale = Math.max(largestMagnitude(g), least);
    for (let i = 0; i < g.length; i++) assert.ok(Math.abs(g[i]! - h[i]!) <= 1e-4 * scale, `${name}[${i}]: ${g[i]} vs ${h[i]}`);
  }
  await plain.release();
  await fast.release();
}

/** Conv variants on 16 channels with run-time weights, plus ones the lowering must leave alone. */
function convs(): ReturnType<typeof buildModel> {
  const rng = new Rng(4);
  return buildModel({
    inputs: [
      vi('x', [2, 16, 9, 9]),
      vi('w', [16, 16, 3, 3]),
      vi('wg', [16, 8, 3, 3]),
      vi('w3', [3, 16, 1, 1]),
      vi('x48', [2, 48, 7, 6]),
      vi('w48', [32, 48, 3, 2]),
    ],
    outputs: ['plain', 'strided', 'dilated', 'grouped', 'odd', 'constant', 'blocks'],
    initializers: { b: randn(rng, [16]), wc: randn(rng, [16, 16, 3, 3]) },
    nodes: [
      node('Conv', ['x', 'w', 'b'], ['plain'], { pads: ints([1, 1, 1, 1]) }, 'plain'),
      node('Conv', ['x', 'w'], ['strided'], { strides: ints([2, 2]), pads: ints([0, 1, 1, 0]) }, 'strided'),
      node('Conv', ['x', 'w'], ['dilated'], { dilations: ints([2, 2]), pads: ints([2, 2, 2, 2]) }, 'dilated'),
      node('Conv', ['x', 'wg'], ['grouped'], { group: int(2) }, 'grouped'),
      node('Conv', ['x', 'w3'], ['odd'], {}, 'odd'),
      node('Conv', ['x', 'wc'], ['constant'], {}, 'constant'),
      // several channel blocks on both sides of the weight and a non-square kernel: both weight reorders do work
      node('Conv', ['x48', 'w48'], ['blocks'], { pads: ints([1, 0, 1, 1]) }, 'blocks'),
    ],
  });
}

test('the NCHWc block size is detected (x86 builds of ONNX Runtime have the blocked kernels)', { skip: process.arch !== 'x64' }, () => {
  assert.ok(block === 8 || block === 16, `block size ${block}`);
});

test('lowering rewrites only 2-D single-group convs with run-time weights and divisible channels', { skip: block === null }, () => {
  const lowered = lowerConvs(convs(), block!);
  const blocked = lowered.graph.nodes
    .filter((n) => n.domain === NCHWC_DOMAIN && n.opType === 'Conv')
    .map((n) => n.name)
    .sort();
  assert.deepEqual(blocked, ['blocks', 'dilated', 'plain', 'strided']);
  // plain, strided and dilated read x: one blocked copy of it serves all three
  assert.equal(lowered.graph.nodes.filter((n) => n.opType === 'ReorderInput' && n.inputs[0] === 'x').length, 1);
  assert.ok(lowered.opsets.some((o) => o.domain === NCHWC_DOMAIN));
  assert.equal(lowerConvs(createZooModel('lenet5'), block!).graph.nodes.length, createZooModel('lenet5').graph.nodes.length, 'constant weights untouched');
});

test('lowered convolutions compute what the plain ones compute', { skip: block === null }, async () => {
  const model = convs();
  const rng = new Rng(9);
  const feeds = {
    x: randn(rng, [2, 16, 9, 9]),
    w: randn(rng, [16, 16, 3, 3]),
    wg: randn(rng, [16, 8, 3, 3]),
    w3: randn(rng, [3, 16, 1, 1]),
    x48: randn(rng, [2, 48, 7, 6]),
    w48: randn(rng, [32, 48, 3, 2]),
  };
  await assertLoweredMatches(model, feeds, 1e-5);
});

test('a training step gives the same loss and gradients with and without the lowering', { skip: block === null }, async () => {
  const model = createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.125, input: [1, 16, 16], seed: 3 });
  const spec = { trainable: trainableParameters(model.graph), loss: 'cross-entropy' as const, batchSize: 8, batchNorm: 'train' as const };
  const x = Float32Array.from({ length: 8 * 256 }, (_, i) => Math.sin(i * 0.37));
  const t = BigInt64Array.from({ length: 8 }, (_, i) => BigInt(i % 10));
  await assertLoweredStepMatches(model, spec, x, t, () => 1e-6);
});

/** Convs on small maps with enough channels to be run width-stacked (lowerConvs' widthStack), and two that must not be. */
function smallMaps(): ReturnType<typeof buildModel> {
  const c = 768;
  return buildModel({
    inputs: [
      vi('x', [3, c, 2, 2]),
      vi('x34', [3, c, 3, 4]),
      vi('x43', [3, c, 4, 3]),
      vi('x24', [3, c, 2, 4]),
      vi('x44', [3, c, 4, 4]),
      vi('w', [c, c, 3, 3]),
      vi('x16', [3, 16, 2, 2]),
      vi('w16', [16, 16, 3, 3]),
    ],
    outputs: ['padded', 'asymmetric', 'rowStride', 'dilated', 'valid', 'colStride', 'thin'],
    nodes: [
      node('Conv', ['x', 'w'], ['padded'], { pads: ints([1, 1, 1, 1]) }, 'padded'),
      // gap 2 (the wider side pad), no left pad
      node('Conv', ['x34', 'w'], ['asymmetric'], { pads: ints([0, 0, 1, 2]) }, 'asymmetric'),
      node('Conv', ['x43', 'w'], ['rowStride'], { pads: ints([1, 1, 1, 1]), strides: ints([2, 1]) }, 'rowStride'),
      node('Conv', ['x24', 'w'], ['dilated'], { pads: ints([1, 2, 1, 2]), dilations: ints([1, 2]) }, 'dilated'),
      // no pads: no gap, the images touch
      node('Conv', ['x44', 'w'], ['valid'], {}, 'valid'),
      node('Conv', ['x44', 'w'], ['colStride'], { pads: ints([1, 1, 1, 1]), strides: ints([1, 2]) }, 'colStride'),
      node('Conv', ['x16', 'w16'], ['thin'], { pads: ints([1, 1, 1, 1]) }, 'thin'),
    ],
  });
}

test('convolutions on small maps run width-stacked and compute what the plain ones compute', { skip: block === null }, async () => {
  const model = smallMaps();
  const lowered = lowerConvs(model, block!);
  // the stacked convs read a [1, C, H, N x pitch] image: one per (input, gap), from a Transpose
  const wide = lowered.graph.nodes.filter((n) => n.opType === 'Transpose' && attrInts(n, 'perm')?.join() === '1,2,0,3');
  assert.equal(wide.length, 5, 'x, x34, x43, x24 and x44 (valid) each stacked once; colStride and thin not');
  const rng = new Rng(11);
  const feeds = Object.fromEntries(model.graph.inputs.map((i) => [i.name, randn(rng, i.shape as number[])]));
  await assertLoweredMatches(model, feeds, 1e-4);
});

test('a VGG-11 training step (its 512-channel convs at 4x4 and 2x2 run width-stacked) matches the unlowered step', { skip: block === null }, async () => {
  const model = createZooModel('vgg11', { input: [3, 32, 32], seed: 5 });
  const spec = { trainable: trainableParameters(model.graph), loss: 'cross-entropy' as const, batchSize: 2, batchNorm: 'train' as const };
  const x = Float32Array.from({ length: 2 * 3 * 32 * 32 }, (_, i) => Math.sin(i * 0.11));
  const t = BigInt64Array.from([3n, 7n]);
  // a conv bias before a training-mode BatchNorm has a zero gradient: its values are rounding noise (1e-8..5e-7 here), so tensors are compared against at least 1% of the largest gradient
  await assertLoweredStepMatches(model, spec, x, t, (grads) => 1e-2 * Math.max(...[...grads.values()].map(largestMagnitude)));
});
