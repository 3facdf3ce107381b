import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ZOO, ZOO_NAMES, createZooModel } from '../../src/nn/zoo.js';
import { trainableParameterCount, trainableParameters } from '../../src/onnx/parameters.js';
import { getArch, getCuts, getInputSpec, getProvenance } from '../../src/onnx/metadata.js';
import { tensorNames } from '../../src/onnx/graph.js';
import { modelStats } from '../../src/onnx/stats.js';
import { validateModel } from '../../src/onnx/validate.js';
import { inferShapes } from '../../src/onnx/shapes.js';
import { UserError } from '../../src/util/errors.js';
import { randomInput, recordedShapes, runModel } from './run-model.js';

/** Published parameter counts (PyTorch parameters(), i.e. without BN running statistics). */
const REFERENCE: readonly { arch: string; input: [number, number, number]; params: number; blocks?: number[] }[] = [
  { arch: 'mlp', input: [1, 28, 28], params: 235_146 },
  { arch: 'lenet5', input: [1, 28, 28], params: 61_706 },
  { arch: 'lenet5', input: [1, 32, 32], params: 61_706 },
  { arch: 'vgg11', input: [3, 32, 32], params: 9_231_114 },
  { arch: 'vgg16', input: [3, 32, 32], params: 14_728_266 },
  { arch: 'resnet18', input: [3, 32, 32], params: 11_173_962 },
  { arch: 'resnet', input: [3, 32, 32], params: 11_173_962, blocks: [2, 2, 2, 2] },
  { arch: 'resnet34', input: [3, 32, 32], params: 21_282_122 },
  { arch: 'resnet50', input: [3, 32, 32], params: 23_520_842 },
  { arch: 'inception', input: [3, 32, 32], params: 6_166_250 },
];

for (const ref of REFERENCE) {
  test(`${ref.arch} ${ref.input.join('x')} has the standard parameter count ${ref.params}`, () => {
    const m = createZooModel(ref.arch, { input: ref.input, ...(ref.blocks ? { blocks: ref.blocks } : {}) });
    assert.equal(trainableParameterCount(m.graph), ref.params);
  });
}

/** Full-width models are too slow to run in the suite; thin ones have the same structure. */
const RUN_WIDTH: Record<string, number> = { mlp: 1, lenet5: 1 };
const INPUTS: [number, number, number][] = [
  [1, 28, 28],
  [3, 32, 32],
];

for (const arch of ZOO_NAMES) {
  for (const input of INPUTS) {
    test(`${arch} builds for ${input.join('x')}, runs, and its tracked shapes match the runtime's`, async () => {
      const classes = 7;
      const width = RUN_WIDTH[arch] ?? 0.125;
      const model = createZooModel(arch, { input, classes, width, seed: 3, ...(arch === 'resnet' ? { blocks: [1, 1, 1, 1] } : {}) });
      assert.deepEqual(
        model.graph.inputs.map((v) => [v.name, v.shape]),
        [['input', ['N', ...input]]],
      );
      assert.deepEqual(
        model.graph.outputs.map((v) => [v.name, v.shape]),
        [['logits', ['N', classes]]],
      );
      validateModel(model, `${arch}.onnx`);
      assert.deepEqual(inferShapes(model).get('logits')?.shape, ['N', classes], 'IR shape inference agrees with the builder');

      const shapes = recordedShapes(model, 2);
      const n = 2 * input[0] * input[1] * input[2];
      const { outputs } = await runModel(model, { input: { dims: [2, ...input], data: randomInput(n) } }, [...shapes.keys()]);
      const logits = outputs.get('logits')!;
      assert.deepEqual(logits.dims, [2, classes]);
      assert.ok(logits.data.every(Number.isFinite), 'logits are finite');
      assert.ok(
        logits.data.some((v) => v !== logits.data[0]),
        'logits are not constant',
      );
      for (const [name, dims] of shapes) assert.deepEqual(outputs.get(name)?.dims, dims, `shape of ${name}`);
    });
  }
}

test('metadata: arch, input spec, provenance and cut points that exist in the graph', () => {
  for (const arch of ZOO_NAMES)
    for (const input of INPUTS) {
      const model = createZooModel(arch, { input, classes: 5, width: 0.125, seed: 11 });
      const info = getArch(model)!;
      assert.equal(info.name, arch);
      assert.equal(info['width'], 0.125);
      assert.equal(info['classes'], 5);
      assert.equal(info['seed'], 11);
      assert.deepEqual(info['input'], input);
      if (arch.startsWith('resnet')) assert.equal((info['blocks'] as number[]).length, 4);
      assert.deepEqual(getInputSpec(model), { shape: input });
      assert.deepEqual(getProvenance(model), { operation: 'created', parents: [], seed: 11 });

      const cuts = getCuts(model)!;
      const names = tensorNames(model.graph);
      for (const c of cuts) assert.ok(names.has(c.tensor), `${arch}: cut ${c.name} -> ${c.tensor} exists`);
      assert.equal(new Set(cuts.map((c) => c.name)).size, cuts.length, `${arch}: cut names are unique`);
      assert.equal(new Set(cuts.map((c) => c.tensor)).size, cuts.length, `${arch}: cut tensors are distinct`);
      const kinds = cuts.map((c) => c.kind);
      assert.equal(kinds[0], 'stem', arch);
      assert.deepEqual(kinds.slice(-2), ['features', 'logits'], arch);
      assert.ok(kinds.includes('block'), `${arch} has block cuts`);
      assert.equal(cuts.at(-1)!.tensor, 'logits');
    }
});

test('resnet cut points: stem, one per residual block, pooled features', () => {
  const model = createZooModel('resnet', { input: [3, 32, 32], width: 0.125, blocks: [1, 2, 1, 1] });
  assert.deepEqual(
    getCuts(model)!.map((c) => `${c.name}=${c.tensor}`),
    [
      'stem=stem.relu',
      'layer1.0=layer1.0.relu2',
      'layer2.0=layer2.0.relu2',
      'layer2.1=layer2.1.relu2',
      'layer3.0=layer3.0.relu2',
      'layer4.0=layer4.0.relu2',
      'features=flatten',
      'logits=logits',
    ],
  );
});

test('initializer names read like a PyTorch state_dict', () => {
  const r = createZooModel('resnet18', { input: [3, 32, 32], width: 0.125 }).graph.initializers;
  for (const k of [
    'conv1.weight',
    'bn1.running_var',
    'layer1.0.conv1.weight',
    'layer1.0.bn1.running_var',
    'layer2.0.downsample.0.weight',
    'layer2.0.downsample.1.bias',
    'fc.weight',
    'fc.bias',
  ]) {
    assert.ok(r.has(k), k);
  }
  assert.ok(!r.has('layer1.0.downsample.0.weight'), 'identity shortcut where the shape is kept');
  const v = createZooModel('vgg11', { input: [3, 32, 32], width: 0.125 }).graph.initializers;
  for (const k of ['features.0.weight', 'features.0.bias', 'features.1.running_mean', 'features.4.weight', 'classifier.weight']) assert.ok(v.has(k), k);
});

test('running statistics are initializers but not trainable parameters', () => {
  const m = createZooModel('resnet', { input: [3, 32, 32], width: 0.125, blocks: [1, 1, 1, 1] });
  const trainable = trainableParameters(m.graph);
  assert.ok(trainable.includes('bn1.weight'));
  assert.ok(!trainable.some((n) => n.endsWith('running_mean') || n.endsWith('running_var')));
  const stats = [...m.graph.initializers.keys()].filter((n) => n.includes('running_'));
  const statCount = stats.reduce((s, n) => s + m.graph.initializers.get(n)!.data.length, 0);
  const all = [...m.graph.initializers.values()].reduce((s, t) => s + t.data.length, 0);
  assert.equal(all, trainableParameterCount(m.graph) + statCount);
  assert.equal(modelStats(m).parameters, trainableParameterCount(m.graph), 'inspect reports PyTorch-style counts');
});

test('spatial size does not change the parameter count, only the input channels do', () => {
  for (const arch of ['vgg16', 'resnet34', 'resnet50', 'inception']) {
    const a = trainableParameterCount(createZooModel(arch, { input: [1, 28, 28], width: 0.25 }).graph);
    const b = trainableParameterCount(createZooModel(arch, { input: [1, 64, 64], width: 0.25 }).graph);
    const c = trainableParameterCount(createZooModel(arch, { input: [3, 64, 64], width: 0.25 }).graph);
    assert.equal(a, b, arch);
    const stemOut = arch === 'inception' ? 48 : 16;
    assert.equal(c - b, 2 * 9 * stemOut, arch);
  }
});

test('width and class count scale the layers', () => {
  const m = createZooModel('mlp', { input: [1, 28, 28], classes: 3, width: 0.5, hidden: [100, 50, 25] });
  const dims = (n: string): number[] => m.graph.initializers.get(n)!.dims;
  assert.deepEqual(dims('fc1.weight'), [50, 784]);
  assert.deepEqual(dims('fc3.weight'), [13, 25]);
  assert.deepEqual(dims('fc4.weight'), [3, 13]);
  const linear = createZooModel('mlp', { hidden: [] });
  assert.deepEqual(
    getCuts(linear)!.map((c) => `${c.kind}:${c.tensor}`),
    ['features:flatten', 'logits:logits'],
  );
  const tiny = createZooModel('resnet', { input: [3, 32, 32], width: 0.001, blocks: [1, 1, 1, 1] });
  assert.deepEqual(tiny.graph.initializers.get('conv1.weight')!.dims, [1, 3, 3, 3], 'channels never drop below 1');
});

test('every zoo entry has a one-line description and creates its own architecture', () => {
  for (const [name, e] of Object.entries(ZOO)) {
    assert.ok(e.description.length > 10 && !e.description.includes('\n'), name);
  }
  assert.equal(getArch(ZOO['lenet5']!.create({ input: [1, 28, 28] }))!.name, 'lenet5');
});

test('bad options are UserErrors naming what was expected', () => {
  const bad: [string, Parameters<typeof createZooModel>[1], RegExp][] = [
    ['resnet', { blocks: [2, 2, 2] }, /four positive integers/],
    ['resnet', { blocks: [2, 0, 2, 2] }, /four positive integers/],
    ['vgg11', { blocks: [1, 1, 1, 1] }, /only to arch resnet/],
    ['resnet18', { blocks: [1, 1, 1, 1] }, /only to arch resnet/],
    ['lenet5', { hidden: [10] }, /only to arch mlp/],
    ['mlp', { hidden: [10, 0] }, /positive integers/],
    ['mlp', { width: 0 }, /width/],
    ['mlp', { width: Number.NaN }, /width/],
    ['mlp', { input: [3, 32] }, /C,H,W/],
    ['mlp', { input: [3, 32, 0] }, /C,H,W/],
    ['mlp', { classes: 0 }, /classes/],
    ['mlp', { seed: -1 }, /seed/],
    ['lenet5', { input: [1, 8, 8] }, /too small/],
  ];
  for (const [arch, opts, msg] of bad) {
    assert.throws(
      () => createZooModel(arch, opts),
      (e: unknown) => e instanceof UserError && msg.test(e.message),
      `${arch} ${JSON.stringify(opts)}`,
    );
  }
  assert.throws(
    () => createZooModel('resnet99'),
    (e: unknown) => e instanceof UserError && /unknown architecture "resnet99"; known: mlp, lenet5, .*inception/.test(e.message),
  );
  assert.throws(() => createZooModel('toString'), UserError);
});
