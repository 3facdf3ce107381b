import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createZooModel } from '../../src/nn/zoo.js';
import { openDataset } from '../../src/data/resolve.js';
import { randomControl, randomCounterpart } from '../../src/stitch/controls.js';
import { openModel } from '../../src/onnx/open.js';
import { toFloat32 } from '../../src/onnx/tensor.js';
import { fixture } from '../helpers/paths.js';
import { StitchContext } from '../../src/stitch/context.js';

const trained = createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.125, seed: 9 });
const train = await openDataset('fashion-mnist-sample', 'train');
const meanOf = (m: typeof trained) => m.graph.initializers.get(m.graph.nodes.find((n) => n.opType === 'BatchNormalization')!.inputs[3]!)!.data as Float32Array;

test('random controls re-estimate BatchNorm statistics on data by default, keep 0/1 with init, and are seeded', async () => {
  const opts = { samples: 128, session: { threads: 1 } };
  const data = await randomControl(trained, 11, train, opts);
  const again = await randomControl(trained, 11, train, opts);
  const init = await randomControl(trained, 11, train, { ...opts, batchNorm: 'init' });
  assert.ok(
    meanOf(init).every((v) => v === 0),
    'init keeps the fresh 0 means',
  );
  assert.ok(
    meanOf(data).some((v) => v !== 0),
    'data re-estimates them',
  );
  assert.deepEqual(meanOf(again), meanOf(data));
  // the weights are the same random draw either way: only the statistics differ
  const conv = trained.graph.nodes.find((n) => n.opType === 'Conv')!.inputs[1]!;
  assert.deepEqual(data.graph.initializers.get(conv)!.data, init.graph.initializers.get(conv)!.data);
  assert.notDeepEqual(data.graph.initializers.get(conv)!.data, trained.graph.initializers.get(conv)!.data);
});

test('a grid context makes the random networks its kinds need, and refuses to hand out unprepared ones', async () => {
  const ctx = new StitchContext({
    a: trained,
    b: trained,
    train,
    test: train,
    trainLimit: 64,
    testLimit: 64,
    session: { threads: 1 },
    randomBatchNorm: 'init',
  });
  try {
    assert.throws(() => ctx.source('B0'), /not prepared/);
    await ctx.prepare(['random-receiver']);
    assert.ok(meanOf(ctx.source('B0').model).every((v) => v === 0));
    assert.throws(() => ctx.source('A0'), /not prepared/);
  } finally {
    await ctx.release();
  }
});

test('the random counterpart of a ViT export re-draws its weights, biases, LayerNorms and embeddings by role', () => {
  const vit = openModel(fixture('torchvision', 'tv_vit.onnx'));
  const fresh = randomCounterpart(vit, 11);
  const get = (m: typeof vit, name: string): Float32Array => toFloat32(m.graph.initializers.get(name)!);
  const std = (v: Float32Array): number => Math.sqrt(v.reduce((s, x) => s + x * x, 0) / v.length);
  for (const name of ['class_token', 'encoder.pos_embedding']) {
    assert.notDeepEqual(get(fresh, name), get(vit, name), name);
    assert.ok(Math.abs(std(get(fresh, name)) - 0.02) < 0.006, `${name} std ${std(get(fresh, name))}`);
  }
  assert.ok(
    get(fresh, 'encoder.layers.encoder_layer_0.self_attention.in_proj_bias').every((x) => x === 0),
    'an attention bias added by a separate Add is 0',
  );
  assert.ok(
    get(fresh, 'encoder.layers.encoder_layer_0.ln_1.weight').every((x) => x === 1),
    'LayerNorm scale 1',
  );
  assert.ok(
    get(fresh, 'encoder.layers.encoder_layer_0.ln_1.bias').every((x) => x === 0),
    'LayerNorm shift 0',
  );
  // MatMul holds its weight as [in, out]: Kaiming normal with fan-in = rows
  const mm = vit.graph.nodes.find((n) => n.opType === 'MatMul' && vit.graph.initializers.has(n.inputs[1]!))!.inputs[1]!;
  const dims = fresh.graph.initializers.get(mm)!.dims;
  const w = get(fresh, mm);
  assert.ok(Math.abs(std(w) / Math.sqrt(2 / dims[0]!) - 1) < 0.15, `MatMul weight std ${std(w)} for fan-in ${dims[0]}`);
});
