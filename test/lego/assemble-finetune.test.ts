import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { createZooModel } from '../../src/nn/zoo.js';
import { getLabels, getProvenance, setInputSpec, setLabels } from '../../src/onnx/metadata.js';
import { loadModel } from '../../src/onnx/proto.js';
import { openDataset } from '../../src/data/resolve.js';
import { evaluate } from '../../src/runtime/evaluate.js';
import { assemble } from '../../src/lego/assemble.js';
import { finetuneAssembled, UnionDataset } from '../../src/lego/finetune.js';
import { tempDir } from '../helpers/paths.js';
import { UserError } from '../../src/util/errors.js';

const DS = 'fashion-mnist';

function part(classes: number[], seed: number) {
  const m = createZooModel('mlp', { hidden: [32], input: [1, 28, 28], classes: classes.length, seed });
  setLabels(
    m,
    classes.map((c) => ({ dataset: DS, class: c })),
  );
  setInputSpec(m, { shape: [1, 28, 28], mean: [0.286], std: [0.353] });
  return m;
}

test('the union dataset relabels images with the assembled output index and drops other classes', async () => {
  const train = await openDataset('fashion-mnist-sample', 'train');
  const u = new UnionDataset(
    [train],
    [
      { dataset: DS, class: 7 },
      { dataset: DS, class: 2 },
    ],
  );
  assert.equal(u.classes, 2);
  assert.equal(u.size, 1000); // 500 per class in the balanced sample
  const counts = [0, 0];
  for (let i = 0; i < u.size; i++) counts[u.label(i)]!++;
  assert.deepEqual(counts, [500, 500]);
  const x = new Float32Array(2 * 784);
  await u.read([0, u.size - 1], x);
  assert.ok(x.some((v) => v > 0));
  assert.throws(
    () => new UnionDataset([train], [{ dataset: 'cifar10', class: 0 }]),
    (e: unknown) => e instanceof UserError && /cifar10/.test(e.message),
  );
});

test('fine-tuning the assembled model improves its union accuracy and keeps labels and provenance', async () => {
  const train = await openDataset('fashion-mnist-sample', 'train');
  const testSet = await openDataset('fashion-mnist-sample', 'test');
  const r = await assemble([{ model: part([0, 1, 2, 3, 4], 1) }, { model: part([5, 6, 7, 8, 9], 2) }]);
  const before = await evaluate(r.model, testSet);
  const out = join(tempDir(), 'tuned.onnx');
  const ft = await finetuneAssembled(r.model, [train], { epochs: 1, output: out, batchSize: 64, lr: 0.05, session: { threads: 1 } });
  const after = await evaluate(ft.model, testSet);
  assert.ok(after.accuracy > before.accuracy + 0.2, `before ${before.accuracy}, after ${after.accuracy}`);
  assert.equal(ft.epochs.length, 1);
  const saved = loadModel(out);
  assert.deepEqual(getLabels(saved), getLabels(r.model));
  assert.equal(getProvenance(saved)!.operation, 'assembled');
  assert.ok(getProvenance(saved)!['finetune']);
  assert.ok(!existsSync(`${out}.ckpt`), 'the checkpoint is removed');
});

for (const method of ['fit', 'mean-max'] as const)
  test(`two disassembled components of two models assemble to the concatenation of the ${method}-scaled components' logits`, async () => {
    const { disassemble } = await import('../../src/lego/disassemble.js');
    const { applyAffine } = await import('../../src/lego/scale.js');
    const { runOrt } = await import('../helpers/graphs.js');
    const { float32 } = await import('../../src/onnx/tensor.js');
    const { Rng } = await import('../../src/util/random.js');
    const train = await openDataset('fashion-mnist-sample', 'train');
    const full = (seed: number, width: number) => {
      const m = createZooModel('lenet5', { input: [1, 28, 28], classes: 10, seed, width });
      setLabels(
        m,
        Array.from({ length: 10 }, (_, c) => ({ dataset: DS, class: c })),
      );
      setInputSpec(m, { shape: [1, 28, 28], mean: [0.286], std: [0.353] });
      return m;
    };
    const a = (await disassemble(full(1, 1), train, { task: [0, 1, 2, 3, 4], samplesPerClass: 5, label: '', session: { threads: 1 } })).model;
    const b = (await disassemble(full(2, 1.5), train, { task: [5, 6, 7, 8, 9], samplesPerClass: 5, label: '', session: { threads: 1 } })).model;
    const r = await assemble([{ model: a }, { model: b }], { scaleData: [train], scaleSamplesPerClass: 50, scaleMethod: method, session: { threads: 1 } });
    assert.equal(r.method, 'block-diagonal');
    assert.ok(r.scales.every((s) => s !== null && s.factors.length === 5 && s.method === method));
    assert.ok(
      r.scales.every((s) => s!.factors.every((f) => f > 0)),
      'scales are positive',
    );
    if (method === 'fit') {
      assert.ok(r.calibration && r.calibration.images === 500 && r.calibration.after >= r.calibration.before, JSON.stringify(r.calibration));
      assert.ok(r.scales.every((s) => s!.shifts!.length === 5));
    } else assert.equal(r.calibration, undefined);
    const shift = (k: number): number[] => r.scales[k]!.shifts ?? new Array(5).fill(0);
    const parts = [applyAffine(a, r.scales[0]!.factors, shift(0)), applyAffine(b, r.scales[1]!.factors, shift(1))];
    const n = 4;
    const rng = new Rng(5);
    const x = float32(
      [n, 1, 28, 28],
      Array.from({ length: n * 784 }, () => rng.normal()),
    );
    const whole = (await runOrt(r.model, { input: x }))[r.model.graph.outputs[0]!.name]!.data as Float32Array;
    const pa = (await runOrt(parts[0]!, { input: x }))[parts[0]!.graph.outputs[0]!.name]!.data as Float32Array;
    const pb = (await runOrt(parts[1]!, { input: x }))[parts[1]!.graph.outputs[0]!.name]!.data as Float32Array;
    let worst = 0,
      scale = 1;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < 5; j++) {
        scale = Math.max(scale, Math.abs(pa[i * 5 + j]!), Math.abs(pb[i * 5 + j]!));
        worst = Math.max(worst, Math.abs(whole[i * 10 + j]! - pa[i * 5 + j]!), Math.abs(whole[i * 10 + 5 + j]! - pb[i * 5 + j]!));
      }
    }
    assert.ok(worst <= 1e-5 * scale, `max difference ${worst}`);
    assert.deepEqual(
      getLabels(r.model)!.map((l) => l.class),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
  });
