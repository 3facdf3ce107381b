import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDataset } from '../../src/data/resolve.js';
import { FASHION_MNIST_CLASSES } from '../../src/data/known.js';

test('the shipped sample: 5,000 train / 1,000 test, balanced, pixels in [0,1]', async () => {
  for (const [split, size] of [['train', 5000], ['test', 1000]] as const) {
    const ds = await openDataset('fashion-mnist-sample', split, { announce: false });
    assert.equal(ds.name, 'fashion-mnist');
    assert.equal(ds.size, size);
    assert.deepEqual(ds.shape, [1, 28, 28]);
    assert.equal(ds.classes, 10);
    assert.deepEqual(ds.classNames, FASHION_MNIST_CLASSES);
    assert.match(ds.source, /sample shipped with modelsmith/);
    assert.match(ds.source, new RegExp(`${split} split: ${size} images`));
    const counts = new Array<number>(10).fill(0);
    for (let i = 0; i < ds.size; i++) counts[ds.label(i)]!++;
    assert.deepEqual(counts, new Array<number>(10).fill(size / 10));

    const idx = [0, 1, ds.size - 1];
    const x = new Float32Array(idx.length * 784);
    await ds.read(idx, x);
    let min = Infinity, max = -Infinity;
    for (const v of x) { min = Math.min(min, v); max = Math.max(max, v); }
    assert.ok(min >= 0 && max <= 1, `${min}..${max}`);
    // real images: some black background and some bright pixels
    assert.equal(min, 0);
    assert.ok(max > 0.5);
  }
});

test('train and test samples are different images', async () => {
  const train = await openDataset('fashion-mnist-sample', 'train', { announce: false });
  const test_ = await openDataset('fashion-mnist-sample', 'test', { announce: false });
  const a = new Float32Array(784), b = new Float32Array(784);
  await train.read([0], a);
  await test_.read([0], b);
  assert.notDeepEqual(Array.from(a), Array.from(b));
});
