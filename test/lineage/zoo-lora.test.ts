import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { makeLineageZoo } from '../../src/lineage/zoo/make.js';
import { matrixRank } from '../../src/lineage/rank.js';
import { addLora, mergeLora, loraTargets, classifierParams } from '../../src/lineage/zoo/lora.js';
import { createZooModel } from '../../src/nn/zoo.js';
import { cloneModel } from '../../src/onnx/graph.js';
import { float32 } from '../../src/onnx/tensor.js';
import { ModelSession } from '../../src/runtime/session.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { Rng } from '../../src/util/random.js';
import { tempDir } from '../helpers/paths.js';

/** rank(a - b), the difference taken in float32, with numpy's default tolerance as lineage uses it. */
function rank(a: Float32Array, b: Float32Array, m: number, n: number): number {
  return matrixRank(
    a.map((v, i) => v - b[i]!),
    m,
    n,
  );
}

function read(dir: string, name: string): Map<string, { shape: number[]; v: Float32Array }> {
  const f = openSafetensors(join(dir, `${name}.safetensors`));
  try {
    return new Map(f.tensors.map((t) => [t.name, { shape: t.shape, v: f.readFloat32(t.name) }]));
  } finally {
    f.close();
  }
}

const equal = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

test('the LoRA rewrite computes X (W0 + B A)^T + b: it equals the merged model, and with B = 0 the base', async () => {
  const base = createZooModel('mlp', { hidden: [16, 12], seed: 4 });
  assert.deepEqual(loraTargets(base), ['fc1.weight', 'fc2.weight']);
  assert.deepEqual(classifierParams(base), ['fc3.weight', 'fc3.bias']);
  const { model: lora, adapters } = addLora(base, loraTargets(base), 3, new Rng(1));
  assert.deepEqual(
    adapters.map((a) => [a.weight, a.out, a.in, a.rank]),
    [
      ['fc1.weight', 16, 784, 3],
      ['fc2.weight', 12, 16, 3],
    ],
  );
  const x = { dims: [5, 1, 28, 28], data: Float32Array.from({ length: 5 * 784 }, (_, i) => Math.sin(i)) };
  const run = async (m: typeof base): Promise<Float32Array> => {
    const s = await ModelSession.create(m, { threads: 1 });
    try {
      return (await s.run({ input: x })).logits!.data as Float32Array;
    } finally {
      await s.release();
    }
  };
  const y0 = await run(base);
  const yB0 = await run(lora);
  for (let i = 0; i < y0.length; i++) assert.ok(Math.abs(y0[i]! - yB0[i]!) < 1e-5);
  // nonzero B: the adapted graph and the merged plain graph agree
  const rng = new Rng(2);
  for (const a of adapters)
    lora.graph.initializers.set(
      a.b,
      float32(
        [a.out, a.rank],
        Float32Array.from({ length: a.out * a.rank }, () => rng.normal() * 0.1),
      ),
    );
  const merged = mergeLora(lora, new Map(), adapters);
  const plain = cloneModel(base);
  for (const [k, v] of merged) plain.graph.initializers.set(k, float32(base.graph.initializers.get(k)!.dims, v));
  const yl = await run(lora);
  const ym = await run(plain);
  let moved = 0;
  for (let i = 0; i < yl.length; i++) {
    assert.ok(Math.abs(yl[i]! - ym[i]!) < 1e-4, `logit ${i}: ${yl[i]} vs ${ym[i]}`);
    moved = Math.max(moved, Math.abs(ym[i]! - y0[i]!));
  }
  assert.ok(moved > 1e-3, 'the adapters changed the function');
});

test('LoRA on a ViT adapts the attention in/out projections and MLP weights (MatMul form); merged equals adapted', async () => {
  const base = createZooModel('vit', { input: [1, 28, 28], patch: 7, layers: 2, heads: 2, hidden: [8], mlp: 12, seed: 4 });
  const layer = (i: number): string[] => [
    `encoder.layers.encoder_layer_${i}.self_attention.in_proj_weight`,
    `encoder.layers.encoder_layer_${i}.self_attention.out_proj.weight`,
    `encoder.layers.encoder_layer_${i}.mlp.0.weight`,
    `encoder.layers.encoder_layer_${i}.mlp.3.weight`,
  ];
  assert.deepEqual(loraTargets(base), [...layer(0), ...layer(1)]);
  assert.deepEqual(classifierParams(base), ['heads.head.weight', 'heads.head.bias']);
  const { model: lora, adapters } = addLora(base, loraTargets(base), 2, new Rng(1));
  assert.deepEqual(
    adapters.slice(0, 4).map((a) => [a.out, a.in]),
    [
      [24, 8],
      [8, 8],
      [12, 8],
      [8, 12],
    ],
  );
  const x = { dims: [3, 1, 28, 28], data: Float32Array.from({ length: 3 * 784 }, (_, i) => Math.cos(i)) };
  const run = async (m: typeof base): Promise<Float32Array> => {
    const s = await ModelSession.create(m, { threads: 1 });
    try {
      return (await s.run({ input: x })).logits!.data as Float32Array;
    } finally {
      await s.release();
    }
  };
  const y0 = await run(base);
  const yB0 = await run(lora);
  for (let i = 0; i < y0.length; i++) assert.ok(Math.abs(y0[i]! - yB0[i]!) < 1e-5);
  const rng = new Rng(2);
  for (const a of adapters) {
    lora.graph.initializers.set(
      a.b,
      float32(
        [a.out, a.rank],
        Float32Array.from({ length: a.out * a.rank }, () => rng.normal() * 0.3),
      ),
    );
  }
  const merged = mergeLora(lora, new Map(), adapters);
  const plain = cloneModel(base);
  for (const [k, v] of merged) plain.graph.initializers.set(k, float32(base.graph.initializers.get(k)!.dims, v));
  const yl = await run(lora);
  const ym = await run(plain);
  let moved = 0;
  for (let i = 0; i < yl.length; i++) {
    assert.ok(Math.abs(yl[i]! - ym[i]!) < 1e-4, `logit ${i}: ${yl[i]} vs ${ym[i]}`);
    moved = Math.max(moved, Math.abs(ym[i]! - y0[i]!));
  }
  assert.ok(moved > 1e-3, 'the adapters changed the function');
});

test('a LoRA zoo: weight differences have rank <= r on adapted layers, biases untouched, the head retrained', async () => {
  const dir = join(tempDir(), 'lora');
  const r = await makeLineageZoo({
    data: 'fashion-mnist-sample',
    outDir: dir,
    trees: 1,
    children: 2,
    depth: 2,
    lowrank: [2, 3],
    hidden: [64, 64, 64],
    steps: 120,
    rootSteps: 30,
    batchSize: 64,
    seed: 7,
    threads: 1,
  });
  const byName = new Map(r.models.map((m) => [m.name, m]));
  const adapted = ['fc1.weight', 'fc2.weight', 'fc3.weight'];
  for (const m of r.models) {
    if (m.parent === null) {
      assert.equal(m.rank, null);
      continue;
    }
    assert.deepEqual(m.loraLayers, adapted);
    assert.ok(m.rank === 2 || m.rank === 3);
    const child = read(dir, m.name),
      parent = read(dir, m.parent);
    for (const w of adapted) {
      const {
        shape: [rows, cols],
        v,
      } = child.get(w)!;
      const k = rank(v, parent.get(w)!.v, rows!, cols!);
      assert.ok(k >= 1 && k <= m.rank!, `${m.name} ${w}: rank ${k} of the update should be in 1..${m.rank}`);
    }
    for (const b of ['fc1.bias', 'fc2.bias', 'fc3.bias']) assert.ok(equal(child.get(b)!.v, parent.get(b)!.v), `${m.name} ${b} is frozen`);
    assert.ok(!equal(child.get('fc4.weight')!.v, parent.get('fc4.weight')!.v), 'the head is trained');
    // two LoRA steps from the grandparent: rank <= r1 + r2
    const grand = m.depth === 2 ? byName.get(m.parent)! : undefined;
    if (grand) {
      const gp = read(dir, grand.parent!);
      const {
        shape: [rows, cols],
        v,
      } = child.get('fc2.weight')!;
      const k = rank(v, gp.get('fc2.weight')!.v, rows!, cols!);
      assert.ok(k <= m.rank! + grand.rank!, `grandchild vs grandparent rank ${k} <= ${m.rank! + grand.rank!}`);
    }
  }
});
