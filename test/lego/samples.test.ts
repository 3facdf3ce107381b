import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BoundedHeap, sampleCounts, selectSamples, sleefExpf, softmaxProb } from '../../src/lego/samples.js';
import { taskOutputs } from '../../src/lego/task.js';
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
  const a = await selectSamples(model, ds, { task: taskOutputs(model, ds, task), samplesPerClass: 6, normalization, batchSize: 13, ranking: 'float64' });
  const b = await selectSamples(model, ds, { task: taskOutputs(model, ds, task), samplesPerClass: 6, normalization, batchSize: 256, ranking: 'float64' });
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
    const want = all
      .filter((s) => s.label === c)
      .sort((x, y) => y.prob - x.prob || x.index - y.index)
      .slice(0, 6)
      .map((s) => s.index);
    assert.deepEqual(
      a.perClass.get(c)!.map((s) => s.index),
      want,
    );
    assert.deepEqual(
      b.perClass.get(c)!.map((s) => s.index),
      want,
    );
  }
});

/** 24 rows of 10 logits (half of them confident in output 3) and torch.softmax(z, 1) of them, torch 1.13 on an AVX2 CPU. */
const TORCH_Z =
  'Gd0wQa9AR0AuWCTBnKtyQEDdQUHAS86/NshIv+L9CcEUDhZAahPpvaXbAcEoUYzAW669QHQCT0GamWDAVjWWwPVuhUH8oOpAUTIBwKNKucBwKUe/+BNnwMK3Xj++FIBBA/YnwOaclUAFOLO+c+1CwYxcDkHrtT1AaGa/Pwy3J0EY9si/RYJfQTEDI0FkmYm/H504QTwl3T9s3bNAcrNmwSAqY7/NKqxA3HtSQEu8H0HwRC7B1rCevxz3ScB8+yLB9dKcQHBNHUB6EaY/Rz7RQIXihD/IL7JBy1nawJyZncAJGizBjmuoQH7BT0FofY6/JTS+QMCTjkB84PNACU/1QbP0RsAIExZB+0PtQPKiD0HLrTVASRhpQNKPqMDik47AvHfZP7QWc0GMae2/VPlnwPraPMF+DlK/k40zQYQqZz+ampzAtGcTwDhkGkChRIhBRPbevj4RUsDiUjtA+Fh6wB7bC8DsGslAaIi/QA7usUBA0ThBT3PWQXgnR0ASUnpA5c6fwDCCjr8yV+1AmiIKwZMKq8Csese/eDCyv0O4+UHwZMQ/uLzIQI6VJEFQE+fAHjuMvwImSz9uQ0FA5Puqv3HPK7816eVBWGiyQLPkj8Ac5oc+sHDAQOgxEMGrpP3AEjpwv5F+2kCZgf/AwK8tQeTEC0DLW+e/PF8ewawNMD7MZxRA4i26QHT2kT8K840/aK+pQO6o/UD2Rkq/9msNweqaIsCL5aQ/IBMwwLhFWkDKGV9A3PfLv4I9H0BRHHJBwmnpwLr30b2mljvAOg+3QKfAqsCB1I1AC45JwBV9nL4OcSDA+7QnwYKQ20Ci1FU+p8KoQIS05z6ClUs/91EHwUm6NkBwohNB68qTQOJVF0GAKQnB8TnjwBQP9UBqOqFAu2rfwP+wo8As6NJA0ixgv8PdPsEsE1VANbgFQOSpJjyJkS/AmWwIwH/QP8BVIQxAEsi5Ptyk8T7WNkzALLgbwCACTT8yxqG/2igCwCpipcBbJSDARvQbQO5gtUB6kzO+zteSQHdAHcE42RJAqeWEwA6sSUAqlQ/BxinOPkjNoD9vA0xBAGqIv+2OY0B/8Z7ABN/rwLqznT66QqbAGpncv8JLDUGYDyI/eD8jQZx6BMHilMC+InLwv7NEWkA4ZylB5BDXwK7akz/wjSxBsBnuv4KE0z4Z8gLB9qM+P1DRMsGjSb/APl2yPydzVEB0VjfAibYSQTsJiUHoruS/xFjHP1psksCI5eDANL/qP5vJ2UDaEt1ApLyOwLLwUUDoCJfA';
const TORCH_P =
  'xnODPnyqvzj6kxovQNw8OSExPj8OoFk1u+P4NaKgSDBStzE41lBzNhhrki008D4wimuvN6fbvTz3I+UwNSsMMC0Kej/2qbI4Jlr+MZBQOy/Ol1szkcxOMQ+jjjSyyX8/7JsKMhhVSDcucKgzcVAgK95sVTpYwxA2ithgNneB2zzbyCc0wj9gP3CbozycoIk0z8mdPV7VjTbXdFk5gUrnKg2ZnDd0PyE8JVSfOht3ez8X7WcwiCxcN1mkATYHy+owAKnHOzXRCjrRfFUw6ZAdNOS7JDDu+X8/GfmBKovp2Cvm7aIn+PwvM5fpwThRTZkuYq2hLYv+kSzmSNguAACAP2YVGyf55xww1umvLprb0S9k4Gcr6XIBLMJqrzBijkUxq6y1NQ1Dez8tXiYzQL/iMU9EAiwB/+kz5ZmXPPbrIzUt5qQvk3iJMQnf7zSE/n8/tHveMl2QzjBQpEg1YSpcMICumjHnE7Q39E55MKb5IjBXeX40/P9/PwlaYS4Oovou40eLKPznUivzaoIxpiTqJZrAGCUci9InvaT4JwAAgD9p/xAqf3aBLaDiXzDeM7sjLT0nKLJAiimVDe4sMo3DKQYQPioAAIA/K5m/LgyhhCd8cfIqIIcUL1iwOSR3fwkltET3NiF1jjxeeNwxiNN5PwpkLzl6X082AxyCME6iuzfSukg5BZPPO2QZiDrp5YM6opGIPSF5az/29R05OrpOMwB52zfgy506qdGxN7ayJDwe2xI3efdpM56SWDZa+H8/tUZIL8HkgTQ4pnUyyoOrOApmsTCuJr03g6AbOMkWJzr57JM4xnLQMoF4Uz92v4s6HOgsPntRsjqXNPs6jT1FNLiAMzryLs0+5dyCO4lKAT8LGQAyvYgLM7foqj3zI8c7giwdM4kJfjQ1nHA/FukMOv40EjLTjhM979AqPLHbqjrGKa44cIcgOT0ehzj8zzw8sNSpPblovT2fhxs76+elO3iUAz6TiYU86lj3O5w9rDmu0Zo7tuUoP8eMLT+RygA7Ne1rPkGOBzQHTr4872AaOO4ZYD1SQ580yZJlO8fDBjy1/Xo/q3ODNYC90DjxFKoyO+P1MBHQgTboUIcyXzIINRBinzzxq7M2+2dwPuWYFzESa8g2RnWyNf8dijmZmbA+ojI0MjWu5zcfC9c+H8K1NYIIbDN8fDItTGqkM9xSDysvpMouuEcdND3qhjXQaw4xzQC3OQrpfz9J8bQ4YzMgO/r4sTbgKfU0Pj1TO/sj7j6X8gM/07PHNrlQYDxSFpo2';
const f32 = (b64: string): Float32Array => {
  const b = Buffer.from(b64, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
};

test("float32 ranking is PyTorch's CPU softmax bit for bit; confident images tie at exactly 1.0 and the first seen wins", async () => {
  const z = f32(TORCH_Z),
    p = f32(TORCH_P);
  for (let i = 0; i < z.length; i++) assert.equal(softmaxProb(z, i - (i % 10), 10, i % 10), p[i], `row ${Math.floor(i / 10)}, output ${i % 10}`);
  assert.equal(sleefExpf(0), 1);
  assert.equal(sleefExpf(-105), 0);
  // three rows round to exactly 1.0 in float32: ties that float64 separates
  const ones = Array.from({ length: 24 }, (_, r) => r).filter((r) => softmaxProb(z, r * 10, 10, 3) === 1);
  assert.equal(ones.length, 3);
  assert.ok(ones.every((r) => softmaxProb(z, r * 10, 10, 3, 'float64') < 1));
  const h = new BoundedHeap(2);
  for (const r of [...ones].reverse()) h.offer({ index: r, prob: softmaxProb(z, r * 10, 10, 3) });
  assert.deepEqual(
    h.sorted().map((s) => s.index),
    ones.slice(0, 2),
    'ties go to the first in dataset order',
  );
});
