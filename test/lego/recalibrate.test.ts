import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Model } from '../../src/onnx/types.js';
import type { Dataset } from '../../src/data/types.js';
import { loadModel } from '../../src/onnx/proto.js';
import { openDataset } from '../../src/data/resolve.js';
import { getInputSpec } from '../../src/onnx/metadata.js';
import { analyzeChannels, indicesOf, maskOf } from '../../src/lego/channels.js';
import { changedLayers, channelLayout, disassemble, planDisassembly } from '../../src/lego/disassemble.js';
import { maskedOriginal, pruneModel } from '../../src/lego/prune.js';
import { layerOutputStatistics, recalibrateAffine, type ChannelStatistics } from '../../src/lego/recalibrate.js';
import { Rng } from '../../src/util/random.js';
import { fixture } from '../helpers/paths.js';
import { torchViewNet } from '../helpers/graphs.js';
import { firstImages, logitsOf, maxRelDiff, randomBatch } from './disassemble-helpers.js';

const train = firstImages(await openDataset('fashion-mnist-sample', 'train'), 600);
const norm = { mean: [0.286], std: [0.353] };

/** Seeded uniform images of any shape, labels i mod classes: enough to measure statistics on hand-built graphs. */
function syntheticImages(shape: [number, number, number], size: number, seed = 1): Dataset {
  const n = shape[0] * shape[1] * shape[2];
  const pixels = Float32Array.from(
    { length: size * n },
    (() => {
      const r = new Rng(seed);
      return () => r.next();
    })(),
  );
  return {
    name: 'synthetic',
    split: 'train',
    source: 'synthetic',
    shape,
    classes: 10,
    size,
    label: (i) => i % 10,
    read: async (indices, out) => {
      indices.forEach((i, k) => out.set(pixels.subarray(i * n, (i + 1) * n), k * n));
    },
  };
}

test('a component of a BatchNorm-folded PyTorch export equals the masked parent before recalibration (1e-4), and differs after', async () => {
  const model = loadModel(fixture('torch', 'vgg_small.onnx'));
  assert.ok(!model.graph.nodes.some((n) => n.opType === 'BatchNormalization'), 'the default export folds BatchNorm');
  const opts = { task: [1, 4, 7], samplesPerClass: 4, batchSize: 32, label: '', session: { threads: 1 }, ...norm };
  const plain = await disassemble(model, train, { ...opts, recalibration: 'none' });
  const plan = await planDisassembly(model, train, opts);
  const batch = randomBatch(4, [1, 28, 28], 11);
  const a = await logitsOf(plain.model, batch);
  const b = await logitsOf(maskedOriginal(plan.cg, plan.keep), batch);
  assert.equal(a.length, 4 * 3);
  assert.ok(maxRelDiff(a, b) < 1e-4, `max difference ${maxRelDiff(a, b)}`);
  assert.equal(plain.recalibration.samples, 0);
  assert.match(plain.recalibration.skipped ?? '', /masked parent/);
  // affine recalibration works without BatchNorm nodes: it changes the layers that lost inputs, and says which
  const fixed = await disassemble(model, train, { ...opts, recalibration: 'affine', recalibrationSamples: 128 });
  assert.ok(fixed.recalibration.layers.length > 0 && fixed.recalibration.samples === 128, JSON.stringify(fixed.recalibration));
  assert.deepEqual(
    fixed.recalibration.layers.map((l) => l.output),
    changedLayers(plan.cg, plan.keep).map((t) => t.output),
  );
  assert.ok(maxRelDiff(await logitsOf(fixed.model, batch), a) > 1e-3, 'recalibration changed the component');
  // batchnorm recalibration on a folded export does nothing, and says so
  const bn = await disassemble(model, train, { ...opts, recalibration: 'batchnorm' });
  assert.equal(bn.recalibration.samples, 0);
  assert.match(bn.recalibration.skipped ?? '', /no BatchNormalization/);
  // the component carries the normalisation it was fed with
  assert.deepEqual(getInputSpec(fixed.model), { shape: [1, 28, 28], mean: [0.286], std: [0.353] });
  assert.deepEqual(fixed.normalization, { mean: [0.286], std: [0.353], from: '--mean/--std' });
});

/** |mean difference| / parent std and |std ratio - 1|, worst over channels. */
function worst(parent: ChannelStatistics, channels: readonly number[], got: ChannelStatistics): { shift: number; scale: number } {
  let shift = 0,
    scale = 0;
  channels.forEach((c, j) => {
    const sd = Math.sqrt(parent.variance[c]!);
    if (sd < 1e-3) return;
    shift = Math.max(shift, Math.abs(got.mean[j]! - parent.mean[c]!) / sd);
    scale = Math.max(scale, Math.abs(Math.sqrt(got.variance[j]!) / sd - 1));
  });
  return { shift, scale };
}

async function checkMatchesParent(model: Model, ds: Dataset, task: number[], normalization: { mean: number[]; std: number[] }): Promise<void> {
  const plan = await planDisassembly(model, ds, { task, samplesPerClass: 8, label: '', session: { threads: 1 }, flatten: 'prune', ...normalization });
  const cg = plan.cg;
  const layoutOf = channelLayout(cg);
  const targets = changedLayers(cg, plan.keep);
  assert.ok(targets.length > 0, 'some layer lost input channels');
  const indices = Array.from({ length: 256 }, (_, i) => i);
  const common = { indices, normalization, session: { threads: 1 } };
  const parent = await layerOutputStatistics(
    model,
    cg.layers.map((l) => l.output),
    layoutOf,
    ds,
    common,
  );
  const pruned = pruneModel(cg, plan.keep);
  const before = await layerOutputStatistics(
    pruned,
    targets.map((t) => t.output),
    layoutOf,
    ds,
    common,
  );
  const r = await recalibrateAffine(pruned, targets, parent, layoutOf, ds, { ...common, batchSize: 64 });
  assert.equal(r.samples, 256);
  const after = await layerOutputStatistics(
    r.model,
    targets.map((t) => t.output),
    layoutOf,
    ds,
    common,
  );
  // the first corrected layer reads unchanged inputs: its output statistics become the parent's (up to batch-vs-global variance)
  const first = targets[0]!;
  const w0 = worst(parent.get(first.output)!, first.channels, after.get(first.output)!);
  assert.ok(w0.shift < 0.02 && w0.scale < 0.02, `${first.output}: ${JSON.stringify(w0)}`);
  // every corrected layer ends closer to the parent than the pruned model was
  for (const t of targets) {
    const b = worst(parent.get(t.output)!, t.channels, before.get(t.output)!);
    const a = worst(parent.get(t.output)!, t.channels, after.get(t.output)!);
    assert.ok(a.shift + a.scale < 0.2 && a.shift + a.scale <= b.shift + b.scale, `${t.output}: before ${JSON.stringify(b)}, after ${JSON.stringify(a)}`);
  }
}

test("affine recalibration gives each corrected layer the parent's per-channel statistics: Conv without bias, MatMul (hand-built)", async () => {
  await checkMatchesParent(torchViewNet(), syntheticImages([3, 8, 8], 300), [2, 5], { mean: [0.5, 0.5, 0.5], std: [0.3, 0.3, 0.3] });
});

test("affine recalibration gives each corrected layer the parent's per-channel statistics: unfolded PyTorch export (Conv, BatchNorm, Gemm)", async () => {
  await checkMatchesParent(loadModel(fixture('torch', 'vgg_small.nofold.onnx')), train, [0, 3], norm);
});

test('changedLayers: only layers that lost input channels, with their kept outputs', async () => {
  const model = loadModel(fixture('torch', 'resnet_small.onnx'));
  const plan = await planDisassembly(model, train, { task: [2], samplesPerClass: 4, label: '', session: { threads: 1 }, ...norm });
  const cg = analyzeChannels(model);
  const targets = changedLayers(plan.cg, plan.keep);
  for (const l of plan.cg.layers) {
    const lost = !maskOf(plan.cg, plan.cg.refs.get(l.input)!, plan.keep).every((x) => x);
    const t = targets.find((x) => x.output === l.output);
    assert.equal(Boolean(t), lost, l.node.name);
    if (t) assert.deepEqual(t.channels, indicesOf(maskOf(plan.cg, plan.cg.refs.get(l.output)!, plan.keep)));
  }
  assert.equal(cg.layers.length, plan.cg.layers.length);
});

test('affine recalibration of a Vision Transformer export: token MatMuls ([N, tokens, hidden]) are corrected per hidden unit', async () => {
  const model = loadModel(fixture('torchvision', 'tv_vit.onnx'));
  const [c, h, w] = model.graph.inputs[0]!.shape!.slice(1) as number[];
  await checkMatchesParent(model, syntheticImages([c!, h!, w!], 300), [1, 4], { mean: [0.5, 0.5, 0.5], std: [0.3, 0.3, 0.3] });
});
