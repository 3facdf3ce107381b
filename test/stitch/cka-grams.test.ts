import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDataset } from '../../src/data/resolve.js';
import { createZooModel } from '../../src/nn/zoo.js';
import { saveModel } from '../../src/onnx/proto.js';
import { openModel } from '../../src/onnx/open.js';
import { inferBatches } from '../../src/runtime/infer.js';
import { resolveNormalization } from '../../src/runtime/normalization.js';
import { computeGrams, planPasses } from '../../src/stitch/cka-grams.js';
import { computeCkaGrid, sampleIndices } from '../../src/stitch/cka-grid.js';
import { listCuts } from '../../src/stitch/cuts.js';
import { centerGram, gramMatrix } from '../../src/stitch/cka.js';
import { UserError } from '../../src/util/errors.js';
import { tempDir } from '../helpers/paths.js';

const ds = await openDataset('fashion-mnist-sample', 'test');
const model = createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.125, input: [1, 28, 28], seed: 7 });
const normalization = resolveNormalization(model, 1).normalization;
const cuts = listCuts(model).filter((c) => ['stem', 'layer2.0', 'features'].includes(c.name));
const indices = sampleIndices(ds.size, 37, 3);

function maxRelDiff(a: Float64Array, b: Float64Array): number {
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]!));
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
  }
  return diff / scale;
}

test('row-block planning covers every row of every cut within the budget', () => {
  const passes = planPasses([1000, 10, 500], 50, 30_000);
  assert.ok(passes.length > 1);
  for (const pass of passes) {
    const bytes = pass.reduce((s, j) => s + (j.end - j.start) * [1000, 10, 500][j.cut]! * 4, 0);
    assert.ok(bytes <= 30_000, `pass holds ${bytes} bytes`);
  }
  for (let cut = 0; cut < 3; cut++) {
    const rows = passes
      .flat()
      .filter((j) => j.cut === cut)
      .sort((x, y) => x.start - y.start);
    assert.equal(rows[0]!.start, 0);
    assert.equal(rows[rows.length - 1]!.end, 50);
    rows.slice(1).forEach((j, i) => assert.equal(j.start, rows[i]!.end));
  }
  assert.equal(planPasses([1000, 10], 50, 1e9).length, 1);
});

test('Gram matrices from ORT match float64 Grams of the tapped activations, in one pass or many', async () => {
  const one = await computeGrams(model, ds, cuts, { normalization, indices, threads: 1, batchSize: 16 });
  // a budget of a few rows forces row blocks, several passes, and blocks that start mid-batch
  const many = await computeGrams(model, ds, cuts, { normalization, indices, threads: 1, batchSize: 16, activationBytes: 12 * 8 * 14 * 14 * 4 });
  const n = indices.length;
  const chunks = cuts.map(() => [] as Float32Array[]);
  for await (const { outputs } of inferBatches(model, ds, { normalization, indices, taps: cuts.map((c) => c.tensor), threads: 1, batchSize: 16 })) {
    cuts.forEach((c, i) => chunks[i]!.push(Float32Array.from(outputs[c.tensor]!.data as Float32Array)));
  }
  const acts = chunks.map((parts) => {
    const out = new Float64Array(parts.reduce((s, p) => s + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  });
  cuts.forEach((c, i) => {
    assert.equal(
      one[i]!.features,
      c.shape.reduce((a, b) => a * b, 1),
    );
    const direct = centerGram(gramMatrix(acts[i]!, n, one[i]!.features), n);
    // the stored Grams are of mean-shifted features: equal after centring
    assert.ok(maxRelDiff(centerGram(one[i]!.gram, n), direct) < 1e-4, `${c.name} one pass`);
    assert.ok(maxRelDiff(centerGram(many[i]!.gram, n), direct) < 1e-4, `${c.name} many passes`);
    assert.ok(maxRelDiff(many[i]!.gram, one[i]!.gram) < 1e-5, `${c.name} passes agree`);
  });
  // a cut point and its tensor name are one tensor: one Gram, not shifted twice
  const twice = await computeGrams(model, ds, [cuts[0]!, { ...cuts[0]!, name: cuts[0]!.tensor }], { normalization, indices, threads: 1, batchSize: 16 });
  assert.equal(twice[0]!.gram, twice[1]!.gram);
  assert.ok(maxRelDiff(twice[0]!.gram, one[0]!.gram) < 1e-6);
});

test('a network against itself (two copies of the file) gives CKA 1 on the diagonal', async () => {
  const dir = tempDir();
  const fa = join(dir, 'a.onnx');
  const fb = join(dir, 'b.onnx');
  saveModel(model, fa);
  copyFileSync(fa, fb);
  const names = ['stem', 'layer1.0', 'layer3.0', 'features'];
  for (const [x, y] of [
    [fa, fb],
    [fa, fa],
  ] as const) {
    const r = await computeCkaGrid({ model: openModel(x), file: x }, { model: openModel(y), file: y }, ds, {
      samples: 40,
      senders: names,
      receivers: names,
      threads: 1,
      debiased: true,
    });
    assert.equal(r.samples, 40);
    assert.deepEqual(r.senders, names);
    const biased = r.matrices.biased.trained!;
    const debiased = r.matrices.debiased.trained!;
    for (let i = 0; i < names.length; i++) {
      assert.ok(Math.abs(biased[i]![i]! - 1) < 1e-5, `biased ${names[i]}: ${biased[i]![i]}`);
      assert.ok(Math.abs(debiased[i]![i]! - 1) < 1e-5, `debiased ${names[i]}`);
      for (let j = 0; j < names.length; j++) {
        assert.ok(biased[i]![j]! <= 1 + 1e-6 && biased[i]![j]! >= 0);
        if (i !== j) assert.ok(biased[i]![j]! < 0.9999, 'different cuts are different representations');
      }
    }
    assert.deepEqual(r.values, debiased);
  }
});

test('default cuts follow the stitching layout; a different network differs from the diagonal', async () => {
  const other = createZooModel('resnet', { blocks: [2, 2, 2, 2], width: 0.125, input: [1, 28, 28], seed: 8 });
  const r = await computeCkaGrid({ model, file: 'a.onnx' }, { model: other, file: 'b.onnx' }, ds, { samples: 24, threads: 1 });
  assert.deepEqual(r.senders, ['stem', 'layer1.0', 'layer2.0', 'layer3.0', 'layer4.0']);
  assert.equal(r.receivers[r.receivers.length - 1], 'features');
  assert.deepEqual(r.kinds, ['trained']);
  const biased = r.matrices.biased.trained!;
  assert.equal(biased.length, 5);
  assert.ok(biased.every((row) => row.length === r.receivers.length && row.every((v) => v !== null && v > 0 && v < 1)));
});

test('unknown cuts, different input shapes and too few images are user errors', async () => {
  const wide = createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.125, input: [3, 32, 32], seed: 1 });
  const run = (b: typeof model, opts: object) =>
    computeCkaGrid({ model, file: 'a.onnx' }, { model: b, file: 'b.onnx' }, ds, { threads: 1, samples: 8, ...opts });
  await assert.rejects(
    run(model, { senders: ['layer9.9'] }),
    (e: Error) => e instanceof UserError && /cut "layer9.9" does not exist in a.onnx/.test(e.message),
  );
  await assert.rejects(run(model, { receivers: ['nope'] }), (e: Error) => e instanceof UserError && /"nope".*b.onnx/.test(e.message));
  await assert.rejects(run(wide, {}), (e: Error) => e instanceof UserError && /1x28x28.*3x32x32/.test(e.message));
  await assert.rejects(run(model, { samples: 3 }), (e: Error) => e instanceof UserError && /at least 4 images/.test(e.message));
  await assert.rejects(run(model, { samples: 900, memoryMiB: 4 }), (e: Error) => e instanceof UserError && /Gram matrices alone need/.test(e.message));
});

test('the image sample is seeded, sorted and capped by the split size', () => {
  assert.deepEqual(sampleIndices(100, 10, 1), sampleIndices(100, 10, 1));
  assert.notDeepEqual(sampleIndices(100, 10, 1), sampleIndices(100, 10, 2));
  const s = sampleIndices(100, 10, 1);
  assert.deepEqual(
    s,
    [...s].sort((a, b) => a - b),
  );
  assert.equal(new Set(s).size, 10);
  assert.equal(sampleIndices(5, 10, 0).length, 5);
});
