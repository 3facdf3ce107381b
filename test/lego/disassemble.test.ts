import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createZooModel } from '../../src/nn/zoo.js';
import { saveModel, loadModel } from '../../src/onnx/proto.js';
import { openDataset } from '../../src/data/resolve.js';
import { evaluate } from '../../src/runtime/evaluate.js';
import { train } from '../../src/autodiff/train.js';
import { getLabels, getProvenance } from '../../src/onnx/metadata.js';
import { trainableParameterCount } from '../../src/onnx/parameters.js';
import { modelStats } from '../../src/onnx/stats.js';
import { int64 } from '../../src/onnx/tensor.js';
import { collapsed, disassemble } from '../../src/lego/disassemble.js';
import { analyzeChannels } from '../../src/lego/channels.js';
import type { Model } from '../../src/onnx/types.js';
import { UserError } from '../../src/util/errors.js';
import { tempDir } from '../helpers/paths.js';
import { runCli, isOneLineError } from '../helpers/cli.js';
import { assertUserError } from '../helpers/assertions.js';

const dir = tempDir();
const trainSet = await openDataset('fashion-mnist-sample', 'train');
const testSet = await openDataset('fashion-mnist-sample', 'test');

/** A LeNet-5 trained for 2 epochs on the 5,000-image sample (about 10 s on 2 cores). */
let trained: Promise<Model> | undefined;
function trainedLenet(): Promise<Model> {
  trained ??= (async () => {
    const output = join(dir, 'lenet.onnx');
    await train({
      model: createZooModel('lenet5', { seed: 1 }),
      data: trainSet,
      output,
      epochs: 2,
      batchSize: 64,
      lr: 0.05,
      optimizer: { kind: 'sgd', momentum: 0.9, weightDecay: 5e-4 },
      schedule: { kind: 'cosine' },
      seed: 1,
      validation: 0,
    });
    return loadModel(output);
  })();
  return trained;
}

/** An MLP with a Softmax in the middle: not something the pruner can slice. */
/** An MLP with an operator the pruner does not follow (Tile) after its first activation. */
function withUnknownOperator(): Model {
  const m = createZooModel('mlp', { hidden: [16, 8], seed: 1 });
  const g = m.graph;
  const relu = g.nodes.find((n) => n.opType === 'Relu')!;
  const out = relu.outputs[0]!;
  relu.outputs[0] = `${out}.pre`;
  g.initializers.set('odd.repeats', int64([2], [1, 1]));
  g.nodes.splice(g.nodes.indexOf(relu) + 1, 0, { name: 'odd_tile', opType: 'Tile', inputs: [`${out}.pre`, 'odd.repeats'], outputs: [out], attributes: {} });
  return m;
}

test('a component of a trained model keeps its accuracy on the task and is smaller', async () => {
  const model = await trainedLenet();
  for (const task of [[0, 1, 2], [0]]) {
    const c = await disassemble(model, trainSet, { task, samplesPerClass: 20, label: '' });
    const base = await evaluate(model, testSet, { classes: task });
    const comp = await evaluate(c.model, testSet, { classes: task });
    assert.equal(comp.samples, base.samples);
    assert.ok(base.accuracy > 0.6, `base model trained: ${base.accuracy}`);
    assert.ok(comp.accuracy >= base.accuracy - 0.02, `task ${task}: component ${comp.accuracy} vs base ${base.accuracy}`);
    assert.ok(trainableParameterCount(c.model.graph) < trainableParameterCount(model.graph));
    assert.ok(modelStats(c.model).flopsPerImage < modelStats(model).flopsPerImage);
    assert.deepEqual(c.task, task);
    assert.deepEqual(
      getLabels(c.model)!.map((l) => l.class),
      task,
    );
    const p = getProvenance(c.model)!;
    assert.equal(p.operation, 'disassembled');
    assert.equal(p.parents.length, 1);
    // the reference thresholds, unless the accuracy guard lowered them (then they are the chosen candidate's)
    const expected =
      c.search?.kind === 'guard' ? c.search.candidates[c.search.chosen]!.thresholds : { alphaConv: 0.3, betaConv: 0.2, alphaLinear: 0.4, betaLinear: 0.3 };
    assert.deepEqual(p['thresholds'], expected);
    assert.equal(p['dataset'], 'fashion-mnist');
    assert.deepEqual(c.samples[String(task[0])]!.length, 20);
  }
});

test('a task naming classes the model does not have is refused', async () => {
  const model = await trainedLenet();
  const c = await disassemble(model, trainSet, { task: [4, 6], samplesPerClass: 3, label: '' });
  await assert.rejects(
    disassemble(c.model, trainSet, { task: [4, 5], label: '' }),
    (e: unknown) => e instanceof UserError && /task class 5 is not one of the model's classes: it classifies classes 4,6/.test(e.message),
  );
  await assert.rejects(disassemble(model, trainSet, { task: [10], label: '' }), (e: unknown) => e instanceof UserError && /task class 10/.test(e.message));
  await assert.rejects(disassemble(model, trainSet, { task: [], label: '' }), UserError);
  await assert.rejects(
    disassemble(model, trainSet, { task: [1], alphaConv: 1.5, label: '' }),
    (e: unknown) => e instanceof UserError && /alphaConv/.test(e.message),
  );
});

test('a mask that would empty a layer keeps the strongest channel and warns', async () => {
  const model = await trainedLenet();
  const c = await disassemble(model, trainSet, { task: [1], samplesPerClass: 5, alphaConv: 1, alphaLinear: 1, flatten: 'prune', label: '' });
  assert.ok(
    c.warnings.some((w) => /no input channel passed the thresholds/.test(w)),
    c.warnings.join('\n'),
  );
  const inputs = (name: string): number => c.masks.layers.find((x) => x.node === name)!.task.in.length;
  assert.equal(inputs('conv2'), 1, 'conv2 keeps one input channel');
  assert.equal(inputs('fc1'), 25, 'fc1 keeps one channel: one 5x5 block of flattened features');
  assert.equal(inputs('fc2'), 1);
  const r = await evaluate(c.model, testSet, { classes: [1] });
  assert.equal(r.accuracy, 1, 'a one-class component always answers that class');
  // --flatten keep (the official behaviour): the channels feeding the Flatten all stay, layers before it are still masked
  const k = await disassemble(model, trainSet, { task: [1], samplesPerClass: 5, alphaConv: 1, alphaLinear: 1, flatten: 'keep', label: '' });
  const kin = (name: string): number => k.masks.layers.find((x) => x.node === name)!.task.in.length;
  assert.equal(kin('fc1'), 400);
  assert.equal(k.masks.layers.find((x) => x.node === 'conv2')!.task.out.length, 16);
  assert.equal(kin('conv2'), 1);
  assert.equal(k.masks.flatten, 'keep');
});

test('a class that collapses on held-out training images is detected and its masks relaxed until it recovers', async () => {
  const model = await trainedLenet();
  // high thresholds, masks pruned through the Flatten and no recalibration: class 0 starves
  const opts = {
    task: [0, 6],
    samplesPerClass: 10,
    alphaConv: 0.7,
    betaConv: 0.7,
    alphaLinear: 0.7,
    betaLinear: 0.7,
    flatten: 'prune' as const,
    recalibration: 'none' as const,
    guard: 1,
    label: '',
  };
  const unchecked = await disassemble(model, trainSet, { ...opts, validationPerClass: 0 });
  assert.equal(unchecked.validation, undefined);
  const c = await disassemble(model, trainSet, { ...opts, validationPerClass: 100 });
  const v = c.validation!;
  assert.equal(v.samples, 196, '98 held-out images per class (a fifth of what is left after the samples)');
  assert.ok(v.relaxed.length > 0, JSON.stringify(v));
  for (const r of v.relaxed) {
    assert.ok(collapsed(r.before, r.base, v.classDrop), `class ${r.class} had collapsed: ${r.before} vs base ${r.base}`);
    assert.ok(!collapsed(r.after, r.base, v.classDrop), `class ${r.class} recovered: ${r.after} vs base ${r.base}`);
    assert.ok(r.thresholds.alphaConv < 0.7 && r.rounds >= 1);
    assert.deepEqual(c.masks.classThresholds![String(r.class)], r.thresholds);
    assert.ok(
      c.warnings.some((w) => w.startsWith(`class ${r.class} collapsed to`)),
      c.warnings.join('\n'),
    );
  }
  assert.deepEqual(v.collapsed, []);
  // relaxing only grows the masks: the checked component is at least as large
  assert.ok(trainableParameterCount(c.model.graph) > trainableParameterCount(unchecked.model.graph));
  // the held-out images are training images, never the representative samples
  const held = await evaluate(c.model, trainSet, { classes: [0, 6] });
  assert.ok(held.samples > v.samples);
});

test('the default accuracy guard: reference thresholds far below the base on held-out images are lowered together until within the guard', async () => {
  const model = await trainedLenet();
  const opts = {
    task: [2, 4, 6],
    samplesPerClass: 10,
    alphaConv: 0.8,
    betaConv: 0.8,
    alphaLinear: 0.8,
    betaLinear: 0.8,
    recalibration: 'none' as const,
    validationPerClass: 100,
    label: '',
  };
  const off = await disassemble(model, trainSet, { ...opts, guard: 1 });
  const v0 = off.validation!;
  assert.ok(v0.component.accuracy < v0.base.accuracy - 0.02, `the fixture needs a lossy component: ${v0.component.accuracy} vs base ${v0.base.accuracy}`);
  assert.equal(off.search, undefined, 'no guard, no search');
  const c = await disassemble(model, trainSet, opts);
  const s = c.search!;
  assert.equal(s.kind, 'guard');
  assert.equal(s.maxDrop, 0.02);
  assert.deepEqual(
    { scale: s.candidates[0]!.scale, accepted: s.candidates[0]!.accepted },
    { scale: 1, accepted: false },
    'the reference component was refused',
  );
  assert.ok(
    s.candidates.every((x) => x.scale <= 1),
    'the guard only lowers thresholds',
  );
  const chosen = s.candidates[s.chosen]!;
  assert.ok(chosen.accepted, JSON.stringify(s.candidates));
  assert.ok(c.validation!.component.accuracy >= c.validation!.base.accuracy - 0.02);
  assert.ok(trainableParameterCount(c.model.graph) > trainableParameterCount(off.model.graph), 'lower thresholds keep more');
});

test('--max-drop: the smallest candidate within the drop of the base on held-out images', async () => {
  const model = await trainedLenet();
  const c = await disassemble(model, trainSet, { task: [1, 3, 8], samplesPerClass: 10, maxDrop: 0.02, validationPerClass: 100, label: '' });
  const s = c.search!;
  assert.ok(s.candidates.length >= 3, JSON.stringify(s));
  assert.equal(s.candidates[0]!.scale, 1, 'the search starts at the reference thresholds');
  const chosen = s.candidates[s.chosen]!;
  assert.ok(chosen.accepted && chosen.accuracy >= s.baseAccuracy - 0.02);
  for (const x of s.candidates) if (x.accepted) assert.ok(x.parameters >= chosen.parameters);
  assert.equal(trainableParameterCount(c.model.graph), chosen.parameters);
  assert.deepEqual(c.masks.thresholds, chosen.thresholds);
  assert.equal(c.validation!.component.accuracy, chosen.accuracy);
});

test('--max-drop 0 never returns a component below the base on held-out images: the last resort is the parent restricted to the task', async () => {
  const model = await trainedLenet();
  const c = await disassemble(model, trainSet, { task: [2, 4, 6], samplesPerClass: 10, maxDrop: 0, recalibration: 'none', validationPerClass: 100, label: '' });
  const s = c.search!;
  assert.equal(s.kind, 'max-drop');
  const chosen = s.candidates[s.chosen]!;
  assert.ok(chosen.accepted, JSON.stringify(s.candidates.map((x) => [x.scale, x.accuracy, x.accepted])));
  assert.ok(c.validation!.component.accuracy >= c.validation!.base.accuracy - 1e-12);
  if (chosen.scale === -1)
    assert.ok(
      s.candidates.slice(0, -1).every((x) => !x.accepted),
      'the last resort only when no scale was accepted',
    );
});

test('an operator the pruner does not understand is named, before any data is read', () => {
  assertUserError(() => analyzeChannels(withUnknownOperator()), 'Tile', 'odd_tile');
});

test('CLI: disassemble prints base vs component accuracy, sizes, writes the component and masks', () => {
  const modelFile = join(dir, 'cli-mlp.onnx');
  saveModel(createZooModel('mlp', { hidden: [32, 16], seed: 2 }), modelFile);
  const out = join(dir, 'cli-comp.onnx');
  const masks = join(dir, 'cli-masks.json');
  const r = runCli([
    'disassemble',
    modelFile,
    '--data',
    'fashion-mnist-sample',
    '--task',
    '0-2',
    '--samples',
    '5',
    '--masks',
    masks,
    '-o',
    out,
    '--json',
    '--threads',
    '1',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as {
    task: number[];
    base: { accuracy: number; parameters: number; flopsPerImage: number };
    component: { accuracy: number; parameters: number; flopsPerImage: number };
    samples: number;
  };
  assert.deepEqual(j.task, [0, 1, 2]);
  assert.equal(j.samples, 300);
  assert.ok(j.component.parameters < j.base.parameters && j.component.flopsPerImage < j.base.flopsPerImage);
  assert.ok(existsSync(out));
  assert.deepEqual(
    getLabels(loadModel(out))!.map((l) => l.class),
    [0, 1, 2],
  );
  assert.deepEqual((JSON.parse(readFileSync(masks, 'utf8')) as { task: number[] }).task, [0, 1, 2]);
  const text = runCli([
    'disassemble',
    modelFile,
    '--data',
    'fashion-mnist-sample',
    '--task',
    '4',
    '--samples',
    '3',
    '-o',
    join(dir, 'c4.onnx'),
    '--threads',
    '1',
  ]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /base \(10-way\)/);
  assert.match(text.stdout, /component \(1-way\)/);
});

test('CLI: bad input gets one error line and writes nothing', () => {
  const modelFile = join(dir, 'tile.onnx');
  saveModel(withUnknownOperator(), modelFile);
  const out = join(dir, 'never.onnx');
  const r = runCli(['disassemble', modelFile, '--data', 'fashion-mnist-sample', '--task', '0-2', '-o', out]);
  assert.ok(isOneLineError(r), r.stderr);
  assert.match(r.stderr, /Tile/);
  assert.equal(existsSync(out), false);
  const plain = join(dir, 'plain.onnx');
  saveModel(createZooModel('mlp', { hidden: [8], seed: 2 }), plain);
  for (const [args, pattern] of [
    [['--task', '3-12'], /--task 12 is out of range/],
    [['--task', '1', '--alpha-conv', '2'], /--alpha-conv expects a number in \[0, 1\]/],
    [['--task', '1', '--unbalanced', '9,2'], /--unbalanced 9,2/],
  ] as [string[], RegExp][]) {
    const e = runCli(['disassemble', plain, '--data', 'fashion-mnist-sample', ...args, '-o', out]);
    assert.ok(isOneLineError(e), e.stderr);
    assert.match(e.stderr, pattern);
    assert.equal(existsSync(out), false);
  }
});

test("recalibration batchnorm re-estimates BatchNorm statistics on the task's training images; none keeps the parent's", async () => {
  const model = createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.125, seed: 2 });
  const task = [3, 4];
  const opts = { task, samplesPerClass: 4, batchSize: 32, label: '', session: { threads: 1 } };
  const kept = await disassemble(model, trainSet, { ...opts, recalibration: 'none' });
  const fresh = await disassemble(model, trainSet, { ...opts, recalibration: 'batchnorm', recalibrationSamples: 64, seed: 7 });
  const bnCount = model.graph.nodes.filter((n) => n.opType === 'BatchNormalization').length;
  assert.deepEqual(getProvenance(kept.model)!['recalibration'], { mode: 'none', samples: 0, layers: 0, batchNormLayers: 0, seed: 0 });
  assert.deepEqual(getProvenance(fresh.model)!['recalibration'], { mode: 'batchnorm', samples: 64, layers: 0, batchNormLayers: bnCount, seed: 7 });
  assert.equal(fresh.recalibration.batchNormLayers, bnCount);
  // the stem's BatchNorm keeps every channel: the parent's statistics survive unchanged with 0
  const bn = model.graph.nodes.find((n) => n.opType === 'BatchNormalization')!;
  const parentMean = model.graph.initializers.get(bn.inputs[3]!)!.data;
  const keptMean = kept.model.graph.initializers.get(bn.inputs[3]!)!.data;
  const freshMean = fresh.model.graph.initializers.get(bn.inputs[3]!)!.data as Float32Array;
  if (keptMean.length === parentMean.length) assert.deepEqual(keptMean, parentMean);
  assert.ok(
    freshMean.some((v) => v !== 0),
    "re-estimated means differ from the fresh model's zeros",
  );
  // same images (seeded) -> same statistics; both components run and keep the task's outputs
  const again = await disassemble(model, trainSet, { ...opts, recalibration: 'batchnorm', recalibrationSamples: 64, seed: 7 });
  assert.deepEqual(again.model.graph.initializers.get(bn.inputs[3]!)!.data, freshMean);
  assert.deepEqual(fresh.task, task);
  await assert.rejects(disassemble(model, trainSet, { ...opts, recalibrationSamples: -1 }), /recalibration samples must be a whole number/);
});
