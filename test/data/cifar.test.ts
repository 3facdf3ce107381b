import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCifar } from '../../src/data/cifar.js';
import { openDataset } from '../../src/data/resolve.js';
import { UserError } from '../../src/util/errors.js';
import { tempDir } from '../helpers/paths.js';

const root = tempDir();
const PIXELS = 3072;

/** Records whose pixel j of record r is (r * 7 + j) mod 256. */
function records(labels: number[][], firstRecord = 0): Buffer {
  const size = labels[0]!.length + PIXELS;
  const buf = Buffer.alloc(labels.length * size);
  labels.forEach((ls, r) => {
    ls.forEach((l, k) => { buf[r * size + k] = l; });
    for (let j = 0; j < PIXELS; j++) buf[r * size + ls.length + j] = ((firstRecord + r) * 7 + j) % 256;
  });
  return buf;
}

const expectedPixel = (record: number, j: number): number => Math.fround(((record * 7 + j) % 256) / 255);

test('CIFAR-10 test batch: 3 records read back exactly, in any order', async () => {
  const dir = join(root, 'c10', 'cifar-10-batches-bin');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'test_batch.bin'), records([[3], [9], [0]]));
  const ds = await openCifar('cifar10', join(root, 'c10'), 'test');
  assert.equal(ds.size, 3);
  assert.deepEqual(ds.shape, [3, 32, 32]);
  assert.deepEqual([0, 1, 2].map((i) => ds.label(i)), [3, 9, 0]);
  assert.equal(ds.classNames?.[3], 'cat');
  const x = new Float32Array(2 * PIXELS);
  await ds.read([2, 0], x);
  for (const j of [0, 1, 1023, 1024, 2048, 3071]) {
    assert.equal(x[j], expectedPixel(2, j));
    assert.equal(x[PIXELS + j], expectedPixel(0, j));
  }
  assert.match(ds.source, /cifar10 test split: 3 images/);
});

test('CIFAR-10 train spans five files', async () => {
  const dir = join(root, 'c10train');
  mkdirSync(dir, { recursive: true });
  for (let f = 1; f <= 5; f++) writeFileSync(join(dir, `data_batch_${f}.bin`), records([[f], [f + 1]], (f - 1) * 2));
  const ds = await openDataset(`cifar10:${dir}`, 'train', { announce: false });
  assert.equal(ds.size, 10);
  assert.equal(ds.label(9), 6);
  const x = new Float32Array(PIXELS);
  await ds.read([7], x);
  assert.equal(x[5], expectedPixel(7, 5));
});

test('CIFAR-100: fine labels by default, coarse on request', async () => {
  const dir = join(root, 'c100');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'test.bin'), records([[4, 99], [19, 0]]));
  const fine = await openCifar('cifar100', dir, 'test');
  assert.equal(fine.classes, 100);
  assert.deepEqual([fine.label(0), fine.label(1)], [99, 0]);
  const coarse = await openCifar('cifar100', dir, 'test', { labels: 'coarse' });
  assert.equal(coarse.classes, 20);
  assert.deepEqual([coarse.label(0), coarse.label(1)], [4, 19]);
  const x = new Float32Array(PIXELS);
  await coarse.read([1], x);
  assert.equal(x[100], expectedPixel(1, 100));
});

test('a file that is not whole records, a label past the class count, a missing batch', async () => {
  const dir = join(root, 'bad');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'test_batch.bin');
  writeFileSync(file, records([[1], [2]]).subarray(0, 2 * 3073 - 1));
  await assert.rejects(openCifar('cifar10', dir, 'test'), (e: unknown) =>
    e instanceof UserError && e.message.includes(file) && /not a whole number of 3073-byte/.test(e.message));
  writeFileSync(file, records([[1], [10]]));
  await assert.rejects(openCifar('cifar10', dir, 'test'), (e: unknown) =>
    e instanceof UserError && e.message.includes(file) && e.message.includes('label 10'));
  writeFileSync(join(dir, 'data_batch_1.bin'), records([[1]]));
  await assert.rejects(openCifar('cifar10', dir, 'train'), /missing data_batch_2\.bin/);
});
