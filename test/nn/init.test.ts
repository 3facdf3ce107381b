import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createZooModel } from '../../src/nn/zoo.js';
import { initValues } from '../../src/nn/init.js';
import type { Model } from '../../src/onnx/types.js';

const small = (seed: number, blocks = [1, 1, 1, 1]): Model => createZooModel('resnet', { input: [3, 32, 32], width: 0.25, blocks, seed });

const weights = (m: Model, name: string): Float32Array => m.graph.initializers.get(name)!.data as Float32Array;

function stats(a: Float32Array): { mean: number; std: number } {
  let s = 0,
    s2 = 0;
  for (const v of a) {
    s += v;
    s2 += v * v;
  }
  const mean = s / a.length;
  return { mean, std: Math.sqrt(s2 / a.length - mean * mean) };
}

test('the same seed gives bit-identical weights; another seed changes every random tensor', () => {
  const a = small(5),
    b = small(5),
    c = small(6);
  for (const [name, t] of a.graph.initializers) {
    const bytes = (m: Model): Buffer => Buffer.from((m.graph.initializers.get(name)!.data as Float32Array).buffer);
    assert.ok(bytes(a).equals(Buffer.from((t.data as Float32Array).buffer)));
    assert.ok(bytes(a).equals(bytes(b)), `${name} identical for equal seeds`);
    const random = name.endsWith('.weight') && !name.includes('bn') && !name.includes('downsample.1');
    if (random || name === 'fc.bias') assert.ok(!bytes(a).equals(bytes(c)), `${name} differs for another seed`);
  }
});

test('adding a block leaves the weights of every other layer unchanged', () => {
  const a = small(1, [1, 1, 1, 1]),
    b = small(1, [2, 1, 1, 1]);
  assert.ok(b.graph.initializers.has('layer1.1.conv1.weight'));
  for (const name of ['conv1.weight', 'layer1.0.conv2.weight', 'layer3.0.conv1.weight', 'fc.weight']) {
    assert.deepEqual(weights(a, name), weights(b, name), name);
  }
});

test('convolution weights are Kaiming normal: mean 0, std sqrt(2 / fan_in)', () => {
  const m = small(2);
  for (const name of ['layer3.0.conv2.weight', 'layer4.0.conv1.weight', 'layer4.0.downsample.0.weight']) {
    const [, cin, kh, kw] = m.graph.initializers.get(name)!.dims as [number, number, number, number];
    const expected = Math.sqrt(2 / (cin * kh * kw));
    const { mean, std } = stats(weights(m, name));
    assert.ok(Math.abs(std / expected - 1) < 0.03, `${name}: std ${std} vs ${expected}`);
    assert.ok(Math.abs(mean) < 0.05 * expected, `${name}: mean ${mean}`);
  }
});

test("BatchNorm starts as identity; the classifier uses PyTorch's default uniform init", () => {
  const m = small(3);
  assert.ok(weights(m, 'bn1.weight').every((v) => v === 1));
  assert.ok(weights(m, 'layer1.0.bn2.bias').every((v) => v === 0));
  assert.ok(weights(m, 'layer2.0.downsample.1.running_mean').every((v) => v === 0));
  assert.ok(weights(m, 'layer2.0.downsample.1.running_var').every((v) => v === 1));
  const fanIn = m.graph.initializers.get('fc.weight')!.dims[1]!;
  const bound = 1 / Math.sqrt(fanIn);
  for (const name of ['fc.weight', 'fc.bias']) {
    const w = weights(m, name);
    assert.ok(
      w.every((v) => Math.abs(v) <= bound),
      `${name} within +-${bound}`,
    );
  }
  const w = weights(m, 'fc.weight');
  assert.ok(Math.max(...w) > 0.8 * bound && Math.min(...w) < -0.8 * bound, 'spread over the whole interval');
  // Hidden Linear layers: Kaiming normal weights, zero bias.
  const mlp = createZooModel('mlp', { hidden: [512] });
  const { std } = stats(weights(mlp, 'fc1.weight'));
  assert.ok(Math.abs(std / Math.sqrt(2 / 784) - 1) < 0.03, `fc1 std ${std}`);
  assert.ok(weights(mlp, 'fc1.bias').every((v) => v === 0));
  // Convolution bias, where present, starts at zero.
  assert.ok(weights(createZooModel('vgg11', { width: 0.125 }), 'features.0.bias').every((v) => v === 0));
});

test('initValues depends only on seed and name', () => {
  const spec = { kind: 'uniform', bound: 2 } as const;
  assert.deepEqual(initValues(spec, [10], 1, 'a'), initValues(spec, [10], 1, 'a'));
  assert.notDeepEqual(initValues(spec, [10], 1, 'a'), initValues(spec, [10], 1, 'b'));
  assert.notDeepEqual(initValues(spec, [10], 1, 'a'), initValues(spec, [10], 2, 'a'));
  assert.deepEqual(initValues({ kind: 'constant', value: 3 }, [2, 2], 0, 'x'), new Float32Array([3, 3, 3, 3]));
});
