import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseClasses, subsetIndices, splitTrainValidation, labelMap } from '../../src/data/classes.js';
import { ByteImageDataset } from '../../src/data/memory.js';
import { UserError } from '../../src/util/errors.js';

function tinyDataset(labels: number[], classes = 10): ByteImageDataset {
  return new ByteImageDataset(
    { name: 'tiny', split: 'train', source: 'tiny', shape: [1, 1, 1], classes },
    new Uint8Array(labels.length), Uint8Array.from(labels), 'tiny-labels',
  );
}

test('parseClasses: ranges and lists, sorted and unique', () => {
  assert.deepEqual(parseClasses('0-2,5', 10), [0, 1, 2, 5]);
  assert.deepEqual(parseClasses('5, 0-2 ,1', 10), [0, 1, 2, 5]);
  assert.deepEqual(parseClasses('9', 10), [9]);
  assert.deepEqual(parseClasses('3-3', 10), [3]);
  assert.deepEqual(parseClasses('0-99', 100).length, 100);
});

test('parseClasses: out of range names the class and the class count', () => {
  assert.throws(() => parseClasses('12', 10), (e: unknown) => e instanceof UserError &&
    e.message === 'classes 12 is out of range: the dataset has 10 classes (0-9)');
  assert.throws(() => parseClasses('8-10', 10), /: classes 10 is out of range/);
});

test('parseClasses: garbage is a UserError', () => {
  for (const bad of ['', 'a', '1,,2', '-1', '1-', '2-1', '1.5', '0-2;5', 'all']) {
    assert.throws(() => parseClasses(bad, 10), UserError, bad);
  }
});

test('subsetIndices keeps dataset order', () => {
  const ds = tinyDataset([3, 0, 1, 3, 2, 0]);
  assert.deepEqual(subsetIndices(ds, [0, 3]), [0, 1, 3, 5]);
  assert.deepEqual(subsetIndices(ds, [0, 3], [5, 4, 3]), [5, 3]);
  assert.deepEqual(subsetIndices(ds, [7]), []);
  assert.throws(() => subsetIndices(ds, [10]), UserError);
});

test('labelMap sends a dataset label to its output index', () => {
  assert.deepEqual(Array.from(labelMap([2, 5], 6)), [-1, -1, 0, -1, -1, 1]);
});

test('splitTrainValidation: stratified, disjoint, complete, seeded', () => {
  const labels = Array.from({ length: 300 }, (_, i) => (i < 200 ? 0 : i < 280 ? 1 : 2));
  const ds = tinyDataset(labels, 3);
  const a = splitTrainValidation(ds, 0.1, 7);
  const b = splitTrainValidation(ds, 0.1, 7);
  const c = splitTrainValidation(ds, 0.1, 8);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.validation, c.validation);
  assert.deepEqual([...a.train, ...a.validation].sort((x, y) => x - y), labels.map((_, i) => i));
  const per = (idx: number[]): number[] => [0, 1, 2].map((k) => idx.filter((i) => labels[i] === k).length);
  assert.deepEqual(per(a.validation), [20, 8, 2]);
  assert.deepEqual(a.validation, [...a.validation].sort((x, y) => x - y));
  // restricted to given indices
  const sub = splitTrainValidation(ds, 0.5, 1, [200, 201, 202, 203]);
  assert.equal(sub.validation.length, 2);
  assert.ok([...sub.train, ...sub.validation].every((i) => i >= 200 && i <= 203));
  assert.throws(() => splitTrainValidation(ds, 1, 0), UserError);
});
