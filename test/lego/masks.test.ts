import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Layer } from '../../src/lego/channels.js';
import { layerInputMask } from '../../src/lego/masks.js';
import { sampleCounts } from '../../src/lego/samples.js';
import { planDisassembly, saveMasks } from '../../src/lego/disassemble.js';
import { createZooModel } from '../../src/nn/zoo.js';
import { openDataset } from '../../src/data/resolve.js';
import type { Masks } from '../../src/lego/types.js';
import { tempDir } from '../helpers/paths.js';
import { firstImages } from './disassemble-helpers.js';

/** Channel refs of a hand-made layer (they matter only to graph analysis). */
const refs = { inRef: { kind: 'space', id: 0 }, outRef: { kind: 'space', id: 1 }, inAxis: 1, batchAxis: 0 } as const;

const linear = (o: number, i: number): Layer => ({
  node: { name: 'fc', opType: 'Gemm', inputs: [], outputs: [], attributes: {} },
  kind: 'linear',
  input: 'x',
  output: 'y',
  weight: 'w',
  outChannels: o,
  inChannels: i,
  groupIn: i,
  w: new Float32Array(o * i),
  k: 1,
  ...refs,
});

test('layer input mask: min-max per output row, alpha, sum over kept outputs, min-max, beta', () => {
  // rows normalise to [0, .5, 1, .25] and [1, 0, .75, .5]; row 2 is not in the output mask
  const v = Float64Array.from([0, 2, 4, 1, 8, 0, 6, 4, 9, 9, 0, 9]);
  const { mask, rescued } = layerInputMask(linear(3, 4), v, Uint8Array.from([1, 1, 0]), 0.4, 0.3);
  // A rows (alpha .4): [0,1,1,0] and [1,0,1,1] -> S = [1,1,2,1] -> minmax [0,0,1,0] -> beta .3
  assert.deepEqual(Array.from(mask), [0, 0, 1, 0]);
  assert.equal(rescued, false);
  const low = layerInputMask(linear(3, 4), v, Uint8Array.from([1, 1, 0]), 0.4, 0);
  assert.deepEqual(Array.from(low.mask), [0, 0, 1, 0], 'minmax(S) > 0 keeps only inputs above the minimum');
  const one = layerInputMask(linear(3, 4), v, Uint8Array.from([1, 0, 0]), 0.2, 0.2);
  // row 0 alone: A = [0,1,1,1] -> S = [0,1,1,1] -> [0,1,1,1]
  assert.deepEqual(Array.from(one.mask), [0, 1, 1, 1]);
});

test('layer input mask: nothing passing the thresholds keeps the strongest input and says so', () => {
  const v = Float64Array.from([1, 5, 2, 3, 1, 1]);
  const r = layerInputMask(linear(2, 3), v, Uint8Array.from([1, 1]), 1, 0.2);
  assert.equal(r.rescued, true);
  assert.deepEqual(Array.from(r.mask), [0, 1, 0], 'input 1 has the largest total contribution (5 + 1)');
  const none = layerInputMask(linear(2, 3), v, Uint8Array.from([0, 0]), 0.3, 0.2);
  assert.deepEqual(Array.from(none.mask), [0, 0, 0], 'no output kept: no input needed');
  assert.equal(none.rescued, false);
});

test('depthwise layers keep exactly the inputs of their kept outputs', () => {
  const l: Layer = {
    ...linear(4, 4),
    kind: 'conv',
    groupIn: 1,
    conv: { kernel: [3, 3], stride: [1, 1], dilation: [1, 1], pad: [1, 1], inHW: [4, 4], outHW: [4, 4], groups: 4 },
  };
  const r = layerInputMask(l, Float64Array.from([1, 2, 3, 4]), Uint8Array.from([0, 1, 0, 1]), 0.3, 0.2);
  assert.deepEqual(Array.from(r.mask), [0, 1, 0, 1]);
});

test('masks per layer and class are written as JSON; the task mask is the union over classes', async () => {
  const train = firstImages(await openDataset('fashion-mnist-sample', 'train'), 400);
  const plan = await planDisassembly(createZooModel('vgg11', { width: 0.125, seed: 1 }), train, { task: [2, 5], samplesPerClass: 5, label: '' });
  const file = join(tempDir(), 'masks.json');
  saveMasks(plan.masks, file);
  const m = JSON.parse(readFileSync(file, 'utf8')) as Masks;
  assert.deepEqual(m.task, [2, 5]);
  assert.deepEqual(m.thresholds, { alphaConv: 0.3, betaConv: 0.2, alphaLinear: 0.4, betaLinear: 0.3 });
  assert.deepEqual(m.samples, { 2: 5, 5: 5 });
  assert.equal(m.layers.length, 8 + 1 - 1, 'every conv but the first (which reads the image) and the classifier');
  for (const l of m.layers) {
    assert.deepEqual(Object.keys(l.perClass).sort(), ['2', '5']);
    const union = [...new Set([...l.perClass['2']!.in, ...l.perClass['5']!.in])].sort((a, b) => a - b);
    assert.deepEqual(l.task.in, union, `${l.node}: task mask = union over classes`);
    assert.ok(l.task.in.length >= 1 && l.task.in.length <= l.inChannels);
  }
  const fc = m.layers.find((l) => l.op === 'Gemm')!;
  assert.deepEqual(fc.perClass['2']!.out, [2]);
  assert.deepEqual(fc.task.out, [2, 5]);
  assert.ok(fc.task.in.length < fc.inChannels, 'the classifier loses inputs');
});

test('unbalanced representative samples: seeded counts per class are used and recorded', async () => {
  const train = firstImages(await openDataset('fashion-mnist-sample', 'train'), 400);
  const plan = await planDisassembly(createZooModel('mlp', { hidden: [16], seed: 1 }), train, {
    task: [0, 3, 8],
    unbalanced: { lo: 2, hi: 9, seed: 5 },
    label: '',
  });
  const want = sampleCounts([0, 3, 8], 0, { lo: 2, hi: 9, seed: 5 });
  for (const c of [0, 3, 8]) {
    assert.equal(plan.masks.samples[String(c)], want.get(c));
    assert.equal(plan.samples[String(c)]!.length, want.get(c));
  }
});
