import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createZooModel } from '../../src/nn/zoo.js';
import { vitParameterCount } from '../../src/nn/arch/vit.js';
import { trainableParameterCount } from '../../src/onnx/parameters.js';
import { getArch, getCuts } from '../../src/onnx/metadata.js';
import { float32 } from '../../src/onnx/tensor.js';
import { validateModel } from '../../src/onnx/validate.js';
import { UserError } from '../../src/util/errors.js';
import { fixture, tempDir } from '../helpers/paths.js';
import { isOneLineError, runCli } from '../helpers/cli.js';
import { randomInput, recordedShapes, runModel } from './run-model.js';

interface FixtureModel {
  config: { input: [number, number, number]; patch: number; layers: number; heads: number; hidden: number; mlp: number; classes: number };
  input_shape: number[];
  input: string;
  logits_shape: number[];
  logits: string;
  parameters: number;
  state: Record<string, { shape: number[]; data: string }>;
}

const floats = (b64: string): Float32Array => {
  const bytes = Buffer.from(b64, 'base64');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
};

/** tools/torch/make_vit_fixture.py: tiny torchvision VisionTransformers with random weights and PyTorch's logits. */
const FIXTURE = JSON.parse(readFileSync(fixture('torch', 'vit_tiny.json'), 'utf8')) as { models: FixtureModel[] };

for (const fx of FIXTURE.models) {
  const c = fx.config;
  test(`vit ${c.input.join('x')} patch ${c.patch}: torchvision's state_dict loads by name and the logits equal PyTorch's`, async () => {
    const model = createZooModel('vit', {
      input: c.input,
      classes: c.classes,
      patch: c.patch,
      layers: c.layers,
      heads: c.heads,
      hidden: [c.hidden],
      mlp: c.mlp,
    });
    validateModel(model, 'vit.onnx');
    const ours = [...model.graph.initializers]
      .filter(([, t]) => t.dtype === 'float32')
      .map(([n, t]) => `${n} [${t.dims.join(',')}]`)
      .sort();
    const theirs = Object.entries(fx.state)
      .map(([n, t]) => `${n} [${t.shape.join(',')}]`)
      .sort();
    assert.deepEqual(ours, theirs, 'the same parameter names and shapes as torchvision');
    assert.equal(trainableParameterCount(model.graph), fx.parameters);
    for (const [name, t] of Object.entries(fx.state)) model.graph.initializers.set(name, float32(t.shape, floats(t.data)));
    const { outputs } = await runModel(model, { input: { dims: fx.input_shape, data: floats(fx.input) } });
    const got = outputs.get('logits')!;
    const want = floats(fx.logits);
    assert.deepEqual(got.dims, fx.logits_shape);
    const scale = Math.max(...want.map(Math.abs));
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got.data[i]! - want[i]!) <= 1e-4 * scale, `logit ${i}: ${got.data[i]} vs PyTorch ${want[i]}`);
  });
}

test("vit parameter counts follow torchvision's formula (values from torchvision 0.14)", () => {
  // VisionTransformer(32, 4, 4, 4, 128, 512); at 1x28x28 conv_proj takes 1 channel
  const cases: [[number, number, number], Parameters<typeof vitParameterCount>[0], number][] = [
    [[3, 32, 32], { patch: 4, layers: 4, heads: 4, hidden: 128, mlp: 512 }, 809_354],
    [[1, 28, 28], { patch: 4, layers: 4, heads: 4, hidden: 128, mlp: 512 }, 803_338],
    [[1, 28, 28], { patch: 7, layers: 2, heads: 4, hidden: 64, mlp: 128 }, 72_074],
  ];
  for (const [input, shape, count] of cases) {
    assert.equal(vitParameterCount(shape, input, 10), count);
    const m = createZooModel('vit', { input, patch: shape.patch, layers: shape.layers, heads: shape.heads, hidden: [shape.hidden], mlp: shape.mlp });
    assert.equal(trainableParameterCount(m.graph), count, `${input.join('x')} ${JSON.stringify(shape)}`);
  }
});

test('vit: block cuts are token tensors [T, D], the features the class token; forward shapes match the runtime', async () => {
  const model = createZooModel('vit', { input: [1, 28, 28], patch: 7, layers: 3, heads: 2, hidden: [8], mlp: 16, classes: 4, seed: 5 });
  const cuts = getCuts(model)!;
  assert.deepEqual(
    cuts.map((c) => [c.name, c.kind]),
    [
      ['embedding', 'stem'],
      ['encoder_layer_0', 'block'],
      ['encoder_layer_1', 'block'],
      ['encoder_layer_2', 'block'],
      ['features', 'features'],
      ['logits', 'logits'],
    ],
  );
  assert.equal(cuts[1]!.tensor, 'encoder.layers.encoder_layer_0');
  const shapes = recordedShapes(model, 2);
  for (const c of cuts.slice(0, 4)) assert.deepEqual(shapes.get(c.tensor), [2, 17, 8], c.name);
  assert.deepEqual(shapes.get(cuts[4]!.tensor), [2, 8]);
  assert.deepEqual(getArch(model), { name: 'vit', patch: 7, layers: 3, hidden: 8, heads: 2, mlp: 16, width: 1, input: [1, 28, 28], classes: 4, seed: 5 });
  const { outputs } = await runModel(model, { input: { dims: [2, 1, 28, 28], data: randomInput(2 * 784) } }, [...shapes.keys()]);
  for (const [name, dims] of shapes) assert.deepEqual(outputs.get(name)?.dims, dims, `shape of ${name}`);
  const logits = outputs.get('logits')!.data;
  assert.ok(logits.every(Number.isFinite) && logits.some((v) => v !== logits[0]));
});

test('vit: seeded torchvision-style init (same seed same bits; pos embedding ~N(0, 0.02^2), class token 0, in_proj bias 0)', () => {
  const make = (seed: number) => createZooModel('vit', { input: [1, 28, 28], patch: 7, layers: 1, heads: 2, hidden: [32], mlp: 64, seed });
  const a = make(1),
    b = make(1),
    c = make(2);
  const w = (m: ReturnType<typeof make>, n: string): Float32Array => m.graph.initializers.get(n)!.data as Float32Array;
  const name = 'encoder.layers.encoder_layer_0.self_attention.in_proj_weight';
  assert.deepEqual(w(a, name), w(b, name));
  assert.notDeepEqual(w(a, name), w(c, name));
  const pos = w(a, 'encoder.pos_embedding');
  const std = Math.sqrt(pos.reduce((s, v) => s + v * v, 0) / pos.length);
  assert.ok(Math.abs(std - 0.02) < 0.003, `pos_embedding std ${std}`);
  assert.ok(w(a, 'class_token').every((v) => v === 0));
  assert.ok(w(a, 'encoder.layers.encoder_layer_0.self_attention.in_proj_bias').every((v) => v === 0));
  // Xavier uniform: |w| <= sqrt(6 / (fan_in + fan_out)), here sqrt(6 / (32 + 96))
  assert.ok(w(a, name).every((v) => Math.abs(v) <= Math.sqrt(6 / 128)));
});

test('vit: bad structure options are refused in one line', () => {
  const bad: [Parameters<typeof createZooModel>[1], RegExp][] = [
    [{ input: [1, 28, 28], patch: 5 }, /28x28 is not divisible into 5x5 patches/],
    [{ hidden: [30], heads: 4 }, /hidden size 30 must be a multiple of heads \(4\)/],
    [{ hidden: [64, 64] }, /hidden is the one embedding size/],
    [{ layers: 0 }, /layers must be a positive integer/],
  ];
  for (const [opts, msg] of bad)
    assert.throws(
      () => createZooModel('vit', opts),
      (e: unknown) => e instanceof UserError && msg.test(e.message),
    );
  assert.throws(() => createZooModel('resnet18', { patch: 4 }), /option patch applies only to arch vit/);
  assert.throws(() => createZooModel('mlp', { heads: 4 }), /option heads applies only to arch vit/);
});

test('zoo create vit (CLI): flags reach the model; a patch that does not divide the input is one error line', () => {
  const dir = tempDir();
  const file = join(dir, 'vit.onnx');
  const r = runCli([
    'zoo',
    'create',
    'vit',
    '--patch',
    '7',
    '--layers',
    '2',
    '--hidden',
    '32',
    '--heads',
    '4',
    '--mlp',
    '64',
    '--seed',
    '3',
    '-o',
    file,
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { parameters: number };
  assert.equal(out.parameters, vitParameterCount({ patch: 7, layers: 2, hidden: 32, heads: 4, mlp: 64 }, [1, 28, 28], 10));
  const info = runCli(['inspect', file, '--json']);
  assert.equal(info.code, 0, info.stderr);
  const cuts = (JSON.parse(info.stdout) as { cuts: { name: string }[] }).cuts.map((c) => c.name);
  assert.deepEqual(cuts, ['embedding', 'encoder_layer_0', 'encoder_layer_1', 'features', 'logits']);
  const bad = runCli(['zoo', 'create', 'vit', '--patch', '5', '-o', join(dir, 'bad.onnx')]);
  assert.ok(isOneLineError(bad), bad.stderr);
  assert.match(bad.stderr, /not divisible into 5x5 patches/);
  assert.ok(!existsSync(join(dir, 'bad.onnx')));
});
