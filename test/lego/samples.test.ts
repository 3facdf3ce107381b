import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BoundedHeap, sampleCounts, selectSamples } from '../../src/lego/samples.js';
import { createZooModel } from '../../src/nn/zoo.js';
import { openDataset } from '../../src/data/resolve.js';
import { subsetIndices } from '../../src/data/classes.js';
import { inferBatches } from '../../src/runtime/infer.js';
import { Rng } from '../../src/util/random.js';
import { assertUserError } from '../helpers/assertions.js';

test('BoundedHeap keeps the k most confident, best first, ties to the lower index', () => {
  const rng = new Rng(4);
  const items = Array.from({ length: 200 }, (_, index) => ({ index, prob: Math.round(rng.next() * 50) / 50 }));
  const h = new BoundedHeap(7);
  for (const s of items) h.offer(s);
  const want = [...items].sort((a, b) => b.prob - a.prob || a.index - b.index).slice(0, 7);
  assert.deepEqual(h.sorted(), want);
});

test('unbalanced counts are seeded draws in [lo, hi], independent per class', () => {
  const a = sampleCounts([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 0, { lo: 5, hi: 50, seed: 3 });
  const b = sampleCounts([3, 7], 0, { lo: 5, hi: 50, seed: 3 });
  for (const v of a.values()) assert.ok(v >= 5 && v <= 50);
  assert.ok(new Set(a.values()).size > 3, 'counts vary');
  assert.equal(b.get(3), a.get(3));
  assert.equal(b.get(7), a.get(7));
  assert.notDeepEqual([...sampleCounts([0, 1, 2, 3], 0, { lo: 5, hi: 50, seed: 4 }).values()], [...a.values()].slice(0, 4));
  assertUserError(() => sampleCounts([0], 0, { lo: 9, hi: 3, seed: 0 }), 'lo=9', 'hi=3');
  assertUserError(() => sampleCounts([0], 0), 'positive integer');
});

test('selectSamples picks the top-k true-label probabilities per class, for any batch size', async () => {
  const ds = await openDataset('fashion-mnist-sample', 'train');
  const model = createZooModel('mlp', { hidden: [32], seed: 9 });
  const normalization = { mean: [0.286], std: [0.353] };
  const task = [1, 8];
  const a = await selectSamples(model, ds, { task, outputs: task, samplesPerClass: 6, normalization, batchSize: 13 });
  const b = await selectSamples(model, ds, { task, outputs: task, samplesPerClass: 6, normalization, batchSize: 256 });
  // brute force: every probability
  const all: { index: number; label: number; prob: number }[] = [];
  for await (const { batch, outputs } of inferBatches(model, ds, { normalization, indices: subsetIndices(ds, task) })) {
    const z = outputs['logits']!.data as Float32Array;
    for (let i = 0; i < batch.size; i++) {
      const row = Array.from(z.subarray(i * 10, i * 10 + 10));
      const m = Math.max(...row);
      const e = row.map((v) => Math.exp(v - m));
      all.push({ index: batch.indices[i]!, label: batch.labels[i]!, prob: e[batch.labels[i]!]! / e.reduce((s, v) => s + v, 0) });
    }
  }
  for (const c of task) {
    const want = all.filter((s) => s.label === c).sort((x, y) => y.prob - x.prob || x.index - y.index).slice(0, 6).map((s) => s.index);
    assert.deepEqual(a.perClass.get(c)!.map((s) => s.index), want);
    assert.deepEqual(b.perClass.get(c)!.map((s) => s.index), want);
  }
});
