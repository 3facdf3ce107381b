/**
 * Model LEGO on every torchvision family (fixtures/torchvision, 3x32x32, default
 * torch.onnx.export) and on the older PyTorch fixtures:
 * (a) with every channel kept, the component computes exactly what the parent does;
 * (b) with a random subset of channels kept, the component is a valid smaller model
 *     computing the parent's logits with the removed channels zeroed where layers read
 *     them (maskedOriginal): the test that proves consistency through shuffles,
 *     concatenations, squeeze-excitation gates, grouped convolutions and residuals;
 * (c) two components of one family assemble block-diagonally, and components of two
 *     families as parallel branches, both equal to the components' logits side by side;
 * and disassembly end to end on data (sample selection, contributions, masks).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Model } from '../../src/onnx/types.js';
import { loadModel } from '../../src/onnx/proto.js';
import { setLabels } from '../../src/onnx/metadata.js';
import { validateModel } from '../../src/onnx/validate.js';
import { trainableParameterCount } from '../../src/onnx/parameters.js';
import { openDataset } from '../../src/data/resolve.js';
import { analyzeChannels, findSpace, indicesOf, maskOf } from '../../src/lego/channels.js';
import { maskedOriginal, pruneModel } from '../../src/lego/prune.js';
import { assemble } from '../../src/lego/assemble.js';
import { disassemble } from '../../src/lego/disassemble.js';
import { firstImages, logitsOf, maxRelDiff, randomBatch } from './disassemble-helpers.js';
import { allKept, nameOf, randomKeep, TORCH_FIXTURES, TV_FIXTURES } from './families-helpers.js';

const FILES = [...TV_FIXTURES, ...TORCH_FIXTURES];
const inputShape = (m: Model): number[] => m.graph.inputs[0]!.shape!.slice(1) as number[];

for (const file of FILES) {
  test(`${nameOf(file)}: every channel kept -> the component is the parent; a random subset -> the parent with those channels zeroed`, async () => {
    const model = loadModel(file);
    const cg = analyzeChannels(model);
    const batch = randomBatch(3, inputShape(model), 11);
    const parent = await logitsOf(model, batch);
    const whole = pruneModel(cg, allKept(cg));
    validateModel(whole);
    assert.ok(maxRelDiff(await logitsOf(whole, batch), parent) < 1e-5, 'all-ones component = parent');
    for (const seed of [1, 2]) {
      const keep = randomKeep(cg, seed);
      const pruned = pruneModel(cg, keep);
      validateModel(pruned);
      assert.ok(trainableParameterCount(pruned.graph) < trainableParameterCount(model.graph), 'the component is smaller');
      const rows = indicesOf(maskOf(cg, cg.refs.get(cg.logits)!, keep));
      const a = await logitsOf(pruned, batch);
      const b = await logitsOf(maskedOriginal(cg, keep), batch);
      assert.equal(a.length, 3 * rows.length);
      assert.ok(maxRelDiff(a, b) < 1e-5, `seed ${seed}: max difference ${maxRelDiff(a, b)}`);
    }
  });

  test(`${nameOf(file)}: two components assemble block-diagonally into their logits side by side`, async () => {
    const model = loadModel(file);
    const cg = analyzeChannels(model);
    const parts = [3, 4].map((seed, k) => {
      const keep = randomKeep(cg, seed);
      const m = pruneModel(cg, keep);
      setLabels(
        m,
        indicesOf(maskOf(cg, cg.refs.get(cg.logits)!, keep)).map((c) => ({ dataset: `task${k}`, class: c })),
      );
      return m;
    });
    const r = await assemble(parts.map((m) => ({ model: m })));
    assert.equal(r.method, 'block-diagonal', r.fallbackReason);
    await assertSideBySide(r.model, parts, inputShape(model));
  });
}

test('components of different families assemble as parallel branches: ResNet-18 + ViT + ShuffleNet + ConvNeXt', async () => {
  const files = ['tv_resnet18', 'tv_vit', 'tv_shufflenet_v2', 'tv_convnext'].map((n) => TV_FIXTURES.find((f) => nameOf(f) === n)!);
  const parts = files.map((file, k) => {
    const cg = analyzeChannels(loadModel(file));
    const keep = randomKeep(cg, 10 + k);
    const m = pruneModel(cg, keep);
    setLabels(
      m,
      indicesOf(maskOf(cg, cg.refs.get(cg.logits)!, keep)).map((c) => ({ dataset: `task${k}`, class: c })),
    );
    return m;
  });
  const r = await assemble(parts.map((model) => ({ model })));
  assert.equal(r.method, 'parallel');
  await assertSideBySide(r.model, parts, [3, 32, 32]);
});

async function assertSideBySide(merged: Model, parts: Model[], shape: number[]): Promise<void> {
  validateModel(merged);
  const n = 2;
  const batch = randomBatch(n, shape, 5);
  const outs = await Promise.all(parts.map((m) => logitsOf(m, batch)));
  const widths = outs.map((o) => o.length / n);
  const want = new Float32Array(n * widths.reduce((a, b) => a + b, 0));
  let p = 0;
  for (let b = 0; b < n; b++)
    outs.forEach((o, k) => {
      want.set(o.subarray(b * widths[k]!, (b + 1) * widths[k]!), p);
      p += widths[k]!;
    });
  const got = await logitsOf(merged, batch);
  assert.ok(maxRelDiff(got, want) < 1e-5, `max difference ${maxRelDiff(got, want)}`);
}

// Fashion-MNIST made RGB and resized to the fixtures' 3x32x32 (a dataset view, as --fit makes it)
const train = firstImages(await openDataset('fashion-mnist-sample::resize=32;channels=3', 'train', { announce: false }), 300);

for (const file of TV_FIXTURES) {
  test(`${nameOf(file)}: disassembly on data keeps the task's outputs, prunes something and runs`, async () => {
    const model = loadModel(file);
    const c = await disassemble(model, train, { task: [2, 7], samplesPerClass: 3, batchSize: 16, recalibrationSamples: 0, label: '' });
    validateModel(c.model);
    assert.deepEqual(c.task, [2, 7]);
    assert.ok(trainableParameterCount(c.model.graph) < trainableParameterCount(model.graph), 'something was pruned');
    const out = await logitsOf(c.model, randomBatch(2, [3, 32, 32], 3));
    assert.equal(out.length, 4);
    assert.ok(out.every(Number.isFinite));
  });
}

test("ConvNeXt on data: the LayerNorm'd streams stay whole in the task masks, MLP hidden units are pruned", async () => {
  const model = loadModel(TV_FIXTURES.find((f) => nameOf(f) === 'tv_convnext')!);
  const c = await disassemble(model, train, { task: [0], samplesPerClass: 2, batchSize: 16, recalibrationSamples: 0, label: '' });
  const cg = analyzeChannels(model);
  // every LayerNorm'd stream keeps all its channels; the MLP hidden layers may lose some
  for (const l of c.masks.layers) {
    const layer = cg.layers.find((x) => x.node.name === l.node)!;
    const inFixed = layer.inRef.kind === 'space' && cg.spaces[findSpace(cg, layer.inRef.id)]!.fixed;
    if (inFixed) assert.equal(l.task.in.length, l.inChannels, `${l.node} reads a LayerNorm'd stream: kept whole`);
  }
  assert.ok(
    c.masks.layers.some((l) => l.op === 'MatMul' && l.task.out.length < l.outChannels),
    'some MLP hidden units are pruned',
  );
});
