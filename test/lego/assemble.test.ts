import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Model } from '../../src/onnx/types.js';
import { createZooModel } from '../../src/nn/zoo.js';
import { float32, numel } from '../../src/onnx/tensor.js';
import { getArch, getLabels, getProvenance, setInputSpec, setLabels } from '../../src/onnx/metadata.js';
import { assemble, findOverlaps } from '../../src/lego/assemble.js';
import { mergeBlockDiagonal } from '../../src/lego/blockdiag.js';
import { runOrt } from '../helpers/graphs.js';
import { Rng } from '../../src/util/random.js';
import { UserError } from '../../src/util/errors.js';

const DS = 'fashion-mnist';

function component(arch: string, opts: Record<string, unknown>, classes: number[], seed: number, input: [number, number, number] = [1, 16, 16]): Model {
  const m = createZooModel(arch, { input, classes: classes.length, seed, ...opts });
  setLabels(
    m,
    classes.map((c) => ({ dataset: DS, class: c })),
  );
  return m;
}

function randomImages(n: number, shape: readonly number[], seed = 7): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n * numel([...shape]) }, () => rng.normal());
}

async function logits(m: Model, x: Float32Array, n: number, shape: readonly number[]): Promise<{ data: Float32Array; k: number }> {
  const r = await runOrt(m, { [m.graph.inputs[0]!.name]: float32([n, ...shape], x) });
  const out = r[m.graph.outputs[0]!.name]!;
  return { data: out.data as Float32Array, k: out.dims[1]! };
}

/** Asserts assembled logits == concatenation of the parts' logits (to 1e-5, relative to the logits' scale). */
async function assertConcat(assembled: Model, parts: Model[], shape: readonly number[], n = 4): Promise<void> {
  const x = randomImages(n, shape);
  const whole = await logits(assembled, x, n, shape);
  const pieces = await Promise.all(parts.map((p) => logits(p, x, n, shape)));
  assert.equal(
    whole.k,
    pieces.reduce((a, p) => a + p.k, 0),
  );
  let worst = 0;
  let scale = 1;
  for (let b = 0; b < n; b++) {
    let col = 0;
    for (const p of pieces) {
      for (let j = 0; j < p.k; j++) {
        const want = p.data[b * p.k + j]!;
        scale = Math.max(scale, Math.abs(want));
        worst = Math.max(worst, Math.abs(whole.data[b * whole.k + col + j]! - want));
      }
      col += p.k;
    }
  }
  assert.ok(worst <= 1e-5 * scale, `max |assembled - concat| = ${worst} (logit scale ${scale})`);
}

test('block-diagonal assembly of ResNets of different widths equals the concatenated logits (residual Adds)', async () => {
  const a = component('resnet', { blocks: [1, 1, 1, 1], width: 0.25 }, [0, 1, 2], 1);
  const b = component('resnet', { blocks: [2, 1, 1, 1], width: 0.125 }, [3, 4], 2);
  const c = component('resnet', { blocks: [1, 1, 1, 1], width: 0.125 }, [5, 6, 7, 8, 9], 3);
  assert.ok('reason' in mergeBlockDiagonal([a, b]), 'different block counts are different topologies');
  const c2 = component('resnet', { blocks: [2, 1, 1, 1], width: 0.25 }, [5, 6], 4);
  const r = await assemble([{ model: b }, { model: c2 }]);
  assert.equal(r.method, 'block-diagonal');
  await assertConcat(r.model, [b, c2], [1, 16, 16]);
  const three = await assemble([{ model: a }, { model: c }, { model: component('resnet', { blocks: [1, 1, 1, 1], width: 0.0625 }, [3, 4], 5) }]);
  assert.equal(three.method, 'block-diagonal');
  assert.deepEqual(
    three.labels.map((l) => l.class),
    [0, 1, 2, 5, 6, 7, 8, 9, 3, 4],
  );
});

test('block-diagonal assembly of VGG, MLP, LeNet and the Inception net equals the concatenated logits', async () => {
  for (const [arch, opts, shape] of [
    ['vgg11', { width: 0.125 }, [1, 16, 16]],
    ['mlp', { hidden: [16, 8] }, [1, 8, 8]],
    ['lenet5', { width: 0.5 }, [1, 28, 28]],
    ['inception', { width: 0.0625 }, [1, 8, 8]],
  ] as const) {
    const a = component(arch, { ...opts }, [0, 1], 11, [...shape] as [number, number, number]);
    const b = component(arch, { ...opts, width: (('width' in opts ? opts.width : 1) as number) * 2 }, [2, 3, 4], 12, [...shape] as [number, number, number]);
    const r = await assemble([
      { model: a, file: 'a.onnx' },
      { model: b, file: 'b.onnx' },
    ]);
    assert.equal(r.method, 'block-diagonal', `${arch}: ${r.fallbackReason}`);
    await assertConcat(r.model, [a, b], shape);
  }
});

test('different architectures assemble as parallel branches joined by a Concat', async () => {
  const a = component('vgg11', { width: 0.125 }, [0, 1, 2], 1);
  const b = component('resnet', { blocks: [1, 1, 1, 1], width: 0.125 }, [3, 4], 2);
  const r = await assemble([{ model: a }, { model: b }]);
  assert.equal(r.method, 'parallel');
  assert.match(r.fallbackReason ?? '', /topolog|nodes/);
  await assertConcat(r.model, [a, b], [1, 16, 16]);
});

test('components with different input normalisations get adapters and stay exact', async () => {
  const a = component('lenet5', {}, [0, 1], 1, [1, 28, 28]);
  const b = component('lenet5', {}, [2, 3], 2, [1, 28, 28]);
  setInputSpec(a, { shape: [1, 28, 28], mean: [0.5], std: [0.25] });
  setInputSpec(b, { shape: [1, 28, 28], mean: [0.1], std: [2] });
  const r = await assemble([{ model: a }, { model: b }]);
  assert.equal(r.method, 'parallel');
  // feed raw pixels normalised as the assembled model says (a's); b's branch must see its own normalisation
  const n = 3,
    shape = [1, 28, 28];
  const raw = randomImages(n, shape, 3).map((v) => Math.abs(v) % 1);
  const xa = raw.map((v) => (v - 0.5) / 0.25),
    xb = raw.map((v) => (v - 0.1) / 2);
  const whole = await logits(r.model, xa, n, shape);
  const la = await logits(a, xa, n, shape),
    lb = await logits(b, xb, n, shape);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < 2; j++) {
      assert.ok(Math.abs(whole.data[i * 4 + j]! - la.data[i * 2 + j]!) < 1e-4);
      assert.ok(Math.abs(whole.data[i * 4 + 2 + j]! - lb.data[i * 2 + j]!) < 1e-4);
    }
  }
});

test('overlapping class sets are refused by default, naming the classes and files', async () => {
  const a = component('mlp', { hidden: [8] }, [0, 1, 2], 1, [1, 8, 8]);
  const b = component('mlp', { hidden: [8] }, [2, 3], 2, [1, 8, 8]);
  assert.deepEqual(
    findOverlaps([getLabels(a)!, getLabels(b)!]).map((o) => [o.class, o.components]),
    [[2, [0, 1]]],
  );
  await assert.rejects(
    assemble([
      { model: a, file: 'a.onnx' },
      { model: b, file: 'b.onnx' },
    ]),
    (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /class 2 \(a\.onnx, b\.onnx\)/);
      assert.match(e.message, /pass overlap=merge to average/);
      return true;
    },
  );
});

test("overlap merge averages the duplicate classes' logits", async () => {
  const a = component('mlp', { hidden: [8] }, [0, 1, 2], 1, [1, 8, 8]);
  const b = component('mlp', { hidden: [8] }, [2, 3], 2, [1, 8, 8]);
  const r = await assemble([{ model: a }, { model: b }], { overlap: 'merge' });
  assert.deepEqual(
    r.labels.map((l) => l.class),
    [0, 1, 2, 3],
  );
  assert.deepEqual(
    getLabels(r.model)!.map((l) => l.class),
    [0, 1, 2, 3],
  );
  const n = 3,
    shape = [1, 8, 8];
  const x = randomImages(n, shape);
  const w = await logits(r.model, x, n, shape),
    la = await logits(a, x, n, shape),
    lb = await logits(b, x, n, shape);
  for (let i = 0; i < n; i++) {
    const want = [la.data[i * 3]!, la.data[i * 3 + 1]!, (la.data[i * 3 + 2]! + lb.data[i * 2]!) / 2, lb.data[i * 2 + 1]!];
    want.forEach((v, j) => assert.ok(Math.abs(w.data[i * 4 + j]! - v) < 1e-5, `output ${j}`));
  }
});

test('components with different input shapes are refused', async () => {
  const a = component('mlp', { hidden: [8] }, [0, 1], 1, [1, 8, 8]);
  const b = component('mlp', { hidden: [8] }, [2, 3], 2, [1, 10, 10]);
  await assert.rejects(
    assemble([
      { model: a, file: 'a.onnx' },
      { model: b, file: 'b.onnx' },
    ]),
    (e: unknown) => e instanceof UserError && /different input shapes: a\.onnx expects 1x8x8, b\.onnx expects 1x10x10/.test(e.message),
  );
});

test('a component without label metadata is refused', async () => {
  const a = component('mlp', { hidden: [8] }, [0, 1], 1, [1, 8, 8]);
  const b = createZooModel('mlp', { hidden: [8], input: [1, 8, 8], classes: 2 });
  await assert.rejects(
    assemble([{ model: a }, { model: b, file: 'bare.onnx' }]),
    (e: unknown) => e instanceof UserError && /bare\.onnx carries no label metadata/.test(e.message),
  );
});

test('the assembled model carries labels with datasets, parent hashes and provenance', async () => {
  const a = component('mlp', { hidden: [8] }, [0, 1], 1, [1, 8, 8]);
  const b = component('mlp', { hidden: [8] }, [7], 2, [1, 8, 8]);
  const r = await assemble([
    { model: a, file: 'a.onnx', hash: 'aa'.repeat(32) },
    { model: b, file: 'b.onnx' },
  ]);
  assert.deepEqual(getLabels(r.model), [
    { dataset: DS, class: 0 },
    { dataset: DS, class: 1 },
    { dataset: DS, class: 7 },
  ]);
  const p = getProvenance(r.model)!;
  assert.equal(p.operation, 'assembled');
  assert.equal(p.parents.length, 2);
  assert.equal(p.parents[0], 'aa'.repeat(32));
  assert.match(p.parents[1]!, /^[0-9a-f]{64}$/);
  assert.equal(p['method'], 'block-diagonal');
  assert.equal(getArch(r.model)?.name, 'assembled');
});

test('PyTorch exports (view/reshape arithmetic, Inception, residual) assemble block-diagonally and exactly', async () => {
  const { openModel } = await import('../../src/onnx/open.js');
  const { fixture } = await import('../helpers/paths.js');
  for (const name of ['vgg_small.nofold.onnx', 'resnet_small.onnx', 'inception_small.onnx']) {
    const a = openModel(fixture('torch', name)),
      b = openModel(fixture('torch', name));
    const k = a.graph.outputs[0]!.shape![1] as number;
    setLabels(
      a,
      Array.from({ length: k }, (_, c) => ({ dataset: 'cifar10', class: c })),
    );
    setLabels(
      b,
      Array.from({ length: k }, (_, c) => ({ dataset: 'cifar100', class: c })),
    );
    const r = await assemble([{ model: a }, { model: b }]);
    assert.equal(r.method, 'block-diagonal', `${name}: ${r.fallbackReason}`);
    await assertConcat(r.model, [a, b], a.graph.inputs[0]!.shape!.slice(1) as number[], 2);
  }
});
