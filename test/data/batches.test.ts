import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batches, batchCount, loadBatch } from '../../src/data/batches.js';
import { padCrop, flipHorizontal } from '../../src/data/augment.js';
import { subsetIndices } from '../../src/data/classes.js';
import { ByteImageDataset } from '../../src/data/memory.js';
import { openDataset } from '../../src/data/resolve.js';
import type { Batch, BatchOptions, Dataset, ImageShape } from '../../src/data/types.js';
import { UserError } from '../../src/util/errors.js';

const SHAPE: ImageShape = [2, 3, 4];
const N = 24; // image size
const COUNT = 10;

/** Image i's pixel j is (i * 24 + j) mod 251 + 1 (never 0, so zero padding is visible); label i mod 3. */
function dataset(): ByteImageDataset {
  const pixels = Uint8Array.from({ length: COUNT * N }, (_, k) => (k % 251) + 1);
  const labels = Uint8Array.from({ length: COUNT }, (_, i) => i % 3);
  return new ByteImageDataset({ name: 'tiny', split: 'train', source: 'tiny', shape: SHAPE, classes: 3 }, pixels, labels, 'tiny');
}

const pixel = (i: number, j: number): number => Math.fround((((i * N + j) % 251) + 1) / 255);
const image = (i: number): number[] => Array.from({ length: N }, (_, j) => pixel(i, j));

async function collect(ds: Dataset, opts: BatchOptions): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of batches(ds, opts)) out.push(b);
  return out;
}
const order = (bs: Batch[]): number[] => bs.flatMap((b) => Array.from(b.indices));

test('every index exactly once per epoch; same seed same order, another seed another', async () => {
  const ds = dataset();
  const a = order(await collect(ds, { batchSize: 3, shuffle: true, seed: 5 }));
  assert.deepEqual([...a].sort((x, y) => x - y), [...Array(COUNT).keys()]);
  assert.deepEqual(order(await collect(ds, { batchSize: 4, shuffle: true, seed: 5 })), a);
  assert.notDeepEqual(order(await collect(ds, { batchSize: 3, shuffle: true, seed: 6 })), a);
  assert.deepEqual(order(await collect(ds, { batchSize: 3 })), [...Array(COUNT).keys()]);
});

test('batches hold the right images and labels, and stay valid after the next one', async () => {
  const ds = dataset();
  const bs = await collect(ds, { batchSize: 4, shuffle: true, seed: 1 });
  for (const b of bs) {
    assert.equal(b.x.length, b.size * N);
    b.indices.forEach((i, k) => {
      assert.equal(b.labels[k], i % 3);
      assert.deepEqual(Array.from(b.x.subarray(k * N, (k + 1) * N)), image(i));
    });
  }
});

test('last batch: kept partial, or dropped', async () => {
  const ds = dataset();
  assert.deepEqual((await collect(ds, { batchSize: 4 })).map((b) => b.size), [4, 4, 2]);
  assert.deepEqual((await collect(ds, { batchSize: 4, dropLast: true })).map((b) => b.size), [4, 4]);
  assert.deepEqual((await collect(ds, { batchSize: 5, dropLast: true })).map((b) => b.size), [5, 5]);
  assert.equal(batchCount(10, 4), 3);
  assert.equal(batchCount(10, 4, true), 2);
  assert.equal(batchCount(0, 4), 0);
  assert.deepEqual(await collect(ds, { batchSize: 4, indices: [] }), []);
});

test('normalisation is exact, per channel', async () => {
  const ds = dataset();
  const mean = [0.25, 0.5], std = [0.5, 0.125];
  const [b] = await collect(ds, { batchSize: 2, indices: [7, 3], normalization: { mean, std } });
  [7, 3].forEach((i, k) => {
    for (let j = 0; j < N; j++) {
      const ch = Math.floor(j / 12);
      assert.equal(b!.x[k * N + j], Math.fround((pixel(i, j) - mean[ch]!) / std[ch]!));
    }
  });
  // one value for every channel
  const [c] = await collect(ds, { batchSize: 1, indices: [2], normalization: { mean: [0.5], std: [0.25] } });
  assert.equal(c!.x[N - 1], Math.fround((pixel(2, N - 1) - 0.5) / 0.25));
  assert.throws(() => batches(ds, { batchSize: 1, normalization: { mean: [0, 0, 0], std: [1, 1, 1] } }), UserError);
  assert.throws(() => batches(ds, { batchSize: 1, normalization: { mean: [0], std: [0] } }), UserError);
});

test('padCrop shifts with zero fill; centre offset is the identity; flip reverses rows', () => {
  const x = Float32Array.from({ length: N }, (_, j) => j + 1);
  const scratch = new Float32Array(N);
  const same = Float32Array.from(x);
  padCrop(same, 0, SHAPE, 2, 2, 2, scratch);
  assert.deepEqual(same, x);
  const shifted = Float32Array.from(x);
  padCrop(shifted, 0, SHAPE, 1, 0, 2, scratch); // content moves down 1 row and left 1 column
  assert.deepEqual(Array.from(shifted.subarray(0, 12)), [0, 0, 0, 0, 2, 3, 4, 0, 6, 7, 8, 0]);
  assert.deepEqual(Array.from(shifted.subarray(12, 24)), [0, 0, 0, 0, 14, 15, 16, 0, 18, 19, 20, 0]);
  const flipped = Float32Array.from(x);
  flipHorizontal(flipped, 0, SHAPE);
  assert.deepEqual(Array.from(flipped.subarray(0, 4)), [4, 3, 2, 1]);
  flipHorizontal(flipped, 0, SHAPE);
  assert.deepEqual(flipped, x);
});

/** Whether `got` is image i under some crop offset and optional flip. */
function isAugmentationOf(got: number[], i: number, padding: number): boolean {
  const src = Float32Array.from(image(i));
  const scratch = new Float32Array(N);
  for (let oy = 0; oy <= 2 * padding; oy++) {
    for (let ox = 0; ox <= 2 * padding; ox++) {
      for (const flip of [false, true]) {
        const t = Float32Array.from(src);
        padCrop(t, 0, SHAPE, padding, oy, ox, scratch);
        if (flip) flipHorizontal(t, 0, SHAPE);
        if (t.every((v, j) => v === got[j])) return true;
      }
    }
  }
  return false;
}

test('augmentation: deterministic by seed, shape-preserving, a crop/flip of the source', async () => {
  const ds = dataset();
  const opts: BatchOptions = { batchSize: 4, shuffle: true, seed: 3, augmentation: { cropPadding: 1, flip: true } };
  const a = await collect(ds, opts);
  const b = await collect(ds, opts);
  const c = await collect(ds, { ...opts, seed: 4 });
  assert.deepEqual(a.map((x) => Array.from(x.x)), b.map((x) => Array.from(x.x)));
  assert.notDeepEqual(a.map((x) => Array.from(x.x)), c.map((x) => Array.from(x.x)));
  let changed = 0;
  for (const batch of a) {
    assert.equal(batch.x.length, batch.size * N);
    batch.indices.forEach((i, k) => {
      const got = Array.from(batch.x.subarray(k * N, (k + 1) * N));
      assert.ok(isAugmentationOf(got, i, 1), `image ${i}`);
      if (got.some((v, j) => v !== pixel(i, j))) changed++;
    });
  }
  assert.ok(changed >= 5, `only ${changed} of 10 images augmented`);
  assert.throws(() => batches(ds, { batchSize: 2, augmentation: { cropPadding: -1 } }), UserError);
});

test('class subsets through indices', async () => {
  const ds = await openDataset('fashion-mnist-sample', 'test', { announce: false });
  const subset = subsetIndices(ds, [0, 2, 5]);
  assert.equal(subset.length, 300);
  const bs = await collect(ds, { batchSize: 64, shuffle: true, seed: 1, indices: subset });
  const labels = bs.flatMap((b) => Array.from(b.labels));
  assert.equal(labels.length, 300);
  assert.deepEqual([...new Set(labels)].sort(), [0, 2, 5]);
  assert.throws(() => batches(ds, { batchSize: 4, indices: [1000] }), UserError);
});

test('reads at most one batch ahead of the consumer', async () => {
  const ds = dataset();
  let reads = 0;
  const counting: Dataset = Object.assign(Object.create(ds) as Dataset, {
    read: (idx: readonly number[], out: Float32Array) => { reads++; return ds.read(idx, out); },
  });
  const it = batches(counting, { batchSize: 2 })[Symbol.asyncIterator]();
  assert.equal(reads, 0, 'nothing read before iteration');
  await it.next();
  assert.ok(reads <= 2, `${reads} reads after the first batch`);
  await it.next();
  assert.ok(reads <= 3);
  await it.return?.(undefined);
});

test('loadBatch reads given indices, and bad batch sizes are UserErrors', async () => {
  const ds = dataset();
  const b = await loadBatch(ds, [9, 1]);
  assert.deepEqual(Array.from(b.labels), [0, 1]);
  assert.deepEqual(Array.from(b.x.subarray(0, N)), image(9));
  for (const size of [0, -1, 1.5]) assert.throws(() => batches(ds, { batchSize: size }), UserError);
});
