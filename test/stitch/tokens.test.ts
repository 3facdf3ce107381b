/**
 * Transformers in stitching and CKA: token stitches (plans, shapes), the patchify /
 * unpatchify order and the class token checked against torchvision's ViT itself, a
 * ResNet <-> ViT least-squares grid with the three random controls, and CKA on token
 * features (flattened and token-pooled), batch-first or sequence-first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openModel } from '../../src/onnx/open.js';
import { float32, numel, toFloat32 } from '../../src/onnx/tensor.js';
import { int, ints } from '../../src/onnx/graph.js';
import { planStitch, type PlanOptions } from '../../src/stitch/plan.js';
import { buildStitch, mapWeightShape, MAP_WEIGHT, MAP_BIAS, CLASS_WEIGHT, CLASS_BIAS, type StitchWeights } from '../../src/stitch/build.js';
import { composeStitched } from '../../src/stitch/compose.js';
import { stitchGrid } from '../../src/stitch/run.js';
import { PAIR_KINDS } from '../../src/stitch/controls.js';
import { computeGrams } from '../../src/stitch/cka-grams.js';
import { computeCkaGrid } from '../../src/stitch/cka-grid.js';
import { gramMatrix } from '../../src/stitch/cka.js';
import { stitchCut } from '../../src/stitch/cuts.js';
import { openDataset } from '../../src/data/resolve.js';
import type { Dataset } from '../../src/data/types.js';
import { inferBatches } from '../../src/runtime/infer.js';
import { Rng } from '../../src/util/random.js';
import { assertUserError } from '../helpers/assertions.js';
import { buildModel, node, randn, runOrt, vi } from '../helpers/graphs.js';
import { fixture, tempDir } from '../helpers/paths.js';
import { tinyCifar } from './helpers.js';
import { tvIo } from '../helpers/fixtures.js';

const RESNET = fixture('torchvision', 'tv_resnet18.onnx');
const VIT = fixture('torchvision', 'tv_vit.onnx');

const PLANS: { from: number[]; to: number[]; opts?: PlanOptions; kind: string; weight: number[]; tokens?: string }[] = [
  // image -> tokens: onto the receiver's 8x8 grid, the class token from the sender's pool
  { from: [64, 16, 16], to: [65, 128], kind: 'downsample', weight: [128, 64, 2, 2], tokens: 'p1+8x8' },
  { from: [64, 4, 4], to: [65, 128], kind: 'upsample', weight: [128, 64, 1, 1], tokens: 'p1+8x8' },
  { from: [64, 8, 8], to: [64, 128], kind: 'conv1x1', weight: [128, 64, 1, 1], tokens: 'p0+8x8' },
  // tokens -> image: the class token dropped, the 8x8 grid unpatchified
  { from: [65, 128], to: [256, 4, 4], kind: 'downsample', weight: [256, 128, 2, 2], tokens: 'u1+8x8' },
  { from: [65, 128], to: [64, 16, 16], kind: 'upsample', weight: [64, 128, 1, 1], tokens: 'u1+8x8' },
  // tokens -> tokens
  { from: [65, 128], to: [65, 96], kind: 'token-linear', weight: [96, 128] },
  { from: [65, 128], to: [17, 96], kind: 'downsample', weight: [96, 128, 2, 2], tokens: 'u1+8x8p1+4x4' },
  // tokens -> the classifier input
  { from: [65, 128], to: [512], kind: 'pool-linear', weight: [512, 128] },
  { from: [65, 128], to: [512], opts: { flat: 'class' }, kind: 'class-linear', weight: [512, 128] },
  { from: [65, 128], to: [512], opts: { flat: 'flatten' }, kind: 'flatten-linear', weight: [512, 65 * 128] },
];

for (const p of PLANS) {
  test(`token stitch ${p.from.join('x')} -> ${p.to.join('x')}${p.opts ? ` ${JSON.stringify(p.opts)}` : ''}: ${p.kind}, runs and gives the receiver's shape`, async () => {
    const spec = planStitch(p.from, p.to, p.opts);
    assert.equal(spec.kind, p.kind);
    assert.deepEqual(mapWeightShape(spec), p.weight);
    const grids = `${spec.unpatchify ? `u${spec.unpatchify.extra}+${spec.unpatchify.grid.join('x')}` : ''}${spec.patchify ? `p${spec.patchify.extra}+${spec.patchify.grid.join('x')}` : ''}`;
    assert.equal(grids, p.tokens ?? '');
    const x = float32(
      [2, ...p.from],
      Array.from({ length: 2 * numel(p.from) }, (_, i) => Math.sin(i)),
    );
    const out = await runOrt(buildStitch(spec, { kind: 'random', seed: 1 }), { x });
    assert.deepEqual(out['y']!.dims, [2, ...p.to]);
  });
}

test('token stitches that cannot be made are clear errors', () => {
  assertUserError(() => planStitch([51, 8], [64, 4, 4]), "sender's 51 tokens are not a square grid");
  assertUserError(() => planStitch([64, 8, 8], [51, 8]), "receiver's 51 tokens are not a square grid");
  assertUserError(() => planStitch([128], [65, 8]), 'flat sender vector cannot feed a token receiver');
  assertUserError(() => planStitch([65, 8], [16, 4, 4], { bnBefore: true }), 'BatchNorm', 'not to tokens');
  assertUserError(() => planStitch([16, 4, 4], [8], { flat: 'class' }), 'image sender has no class token');
});

const eye = (n: number): Float32Array => Float32Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0));

/**
 * Stitching the ViT into itself through identity maps must give its own logits back:
 * this pins patchify/unpatchify to the ViT's own token order (patch (i, j) is token
 * extra + i*g + j) and the class token to position 0.
 */
const SELF: { from: string; to: string; weights: (classToken: Float32Array) => StitchWeights; what: string }[] = [
  {
    from: '/conv_proj/Conv_output_0',
    to: '/Transpose_output_0',
    what: 'image -> tokens (patchify)',
    weights: () =>
      new Map([
        [MAP_WEIGHT, eye(32)],
        [MAP_BIAS, new Float32Array(32)],
      ]),
  },
  {
    from: '/Transpose_output_0',
    to: '/conv_proj/Conv_output_0',
    what: 'tokens -> image (unpatchify)',
    weights: () =>
      new Map([
        [MAP_WEIGHT, eye(32)],
        [MAP_BIAS, new Float32Array(32)],
      ]),
  },
  {
    from: '/conv_proj/Conv_output_0',
    to: '/Concat_2_output_0',
    what: 'image -> tokens with the class token',
    weights: (cls) =>
      new Map([
        [MAP_WEIGHT, eye(32)],
        [MAP_BIAS, new Float32Array(32)],
        [CLASS_WEIGHT, new Float32Array(32 * 32)],
        [CLASS_BIAS, cls],
      ]),
  },
  {
    from: '/Concat_2_output_0',
    to: '/conv_proj/Conv_output_0',
    what: 'tokens with a class token -> image',
    weights: () =>
      new Map([
        [MAP_WEIGHT, eye(32)],
        [MAP_BIAS, new Float32Array(32)],
      ]),
  },
  {
    from: 'stem',
    to: 'stem',
    what: 'tokens -> tokens',
    weights: () =>
      new Map([
        [MAP_WEIGHT, eye(32)],
        [MAP_BIAS, new Float32Array(32)],
      ]),
  },
];

for (const c of SELF) {
  test(`ViT stitched into itself by an identity ${c.what} stitch (${c.from} -> ${c.to}) computes its own logits`, async () => {
    const vit = openModel(VIT);
    const io = tvIo('vit');
    const a = stitchCut(vit, c.from),
      b = stitchCut(vit, c.to);
    const spec = planStitch(a.shape, b.shape);
    const stitch = buildStitch(spec, { kind: 'weights', weights: c.weights(toFloat32(vit.graph.initializers.get('class_token')!)) });
    const m = composeStitched(vit, a, stitch, vit, b);
    const out = (await runOrt(m, { input: io.input }))[m.graph.outputs[0]!.name]!.data as Float32Array;
    for (let i = 0; i < io.logits.length; i++) assert.ok(Math.abs(out[i]! - io.logits[i]!) < 1e-4, `logit ${i}: ${out[i]} vs ${io.logits[i]}`);
  });
}

test('a ResNet <-> ViT least-squares stitching grid with the three random controls fills every cell', async () => {
  const dir = tempDir('tokens-grid-');
  const data = tinyCifar(join(dir, 'data'), 48, 24);
  const session = { threads: 1 };
  const r = await stitchGrid({
    a: RESNET,
    b: VIT,
    data,
    out: join(dir, 'rv'),
    kinds: [...PAIR_KINDS],
    options: { mode: 'lsq', batchSize: 16 },
    senders: ['stem', 'layer2.0', 'layer4.1'],
    receivers: ['stem', 'encoder_layer_0', 'features'],
    session,
    threads: 1,
  });
  const m = r.matrix;
  assert.ok(m.complete);
  assert.equal(m.cells.done, 3 * 3 * 4);
  assert.deepEqual(m.kinds, [...PAIR_KINDS]);
  for (const kind of PAIR_KINDS) {
    for (const measure of ['accuracy', 'fitError', 'testFitError'] as const) {
      const v = m.matrices[measure]![kind]!;
      assert.equal(v.length, 3);
      for (const row of v) for (const x of row) assert.ok(typeof x === 'number' && x >= 0 && (measure !== 'accuracy' || x <= 1), `${kind} ${measure}: ${x}`);
    }
  }
  // the stitches are the ones the shapes call for: 8x8x8 -> 4x4 grid by a strided conv, 16x1x1 upsampled
  const cell = (s: string, t: string): { stitch: { kind: string; patchify?: unknown } } =>
    JSON.parse(readFileSync(join(dir, 'rv', 'cells', `trained--${s}--${t}.json`), 'utf8'));
  assert.equal(cell('stem', 'stem').stitch.kind, 'downsample');
  assert.deepEqual(cell('stem', 'stem').stitch.patchify, { extra: 1, grid: [4, 4], classFrom: 'pool' });
  assert.equal(cell('layer4.1', 'encoder_layer_0').stitch.kind, 'upsample');
  assert.equal(cell('layer2.0', 'features').stitch.kind, 'pool-linear');
  // the other way: ViT tokens into the ResNet
  const back = await stitchGrid({
    a: VIT,
    b: RESNET,
    data,
    out: join(dir, 'vr'),
    options: { mode: 'lsq', batchSize: 16 },
    senders: ['stem', 'encoder_layer_1'],
    receivers: ['stem', 'layer3.0', 'features'],
    session,
    threads: 1,
  });
  assert.ok(back.matrix.complete);
  for (const row of back.matrix.matrices.accuracy!.trained!) for (const x of row) assert.ok(typeof x === 'number');
});

/** Features of `model` at `tensor` for the images, batch-first, as rows (optionally mean over tokens). */
async function features(
  model: ReturnType<typeof openModel>,
  ds: Dataset,
  indices: number[],
  tensor: string,
  perm: number[],
  meanTokens: boolean,
): Promise<Float32Array[]> {
  const rows: Float32Array[] = [];
  for await (const { outputs } of inferBatches(model, ds, { normalization: { mean: [0, 0, 0], std: [1, 1, 1] }, indices, taps: [tensor], batchSize: 8 })) {
    const t = outputs[tensor]!;
    const dims = t.dims;
    const data = t.data as Float32Array;
    // index of element (n, i, j) of the batch-first [N, T, D] view
    const nAxis = perm[0]!,
      tAxis = perm[1]!,
      dAxis = perm[2]!;
    const stride = [dims[1]! * dims[2]!, dims[2]!, 1];
    const [n, tok, d] = [dims[nAxis]!, dims[tAxis]!, dims[dAxis]!];
    for (let k = 0; k < n; k++) {
      const row = new Float32Array(meanTokens ? d : tok * d);
      for (let i = 0; i < tok; i++) {
        for (let j = 0; j < d; j++) {
          const v = data[k * stride[nAxis]! + i * stride[tAxis]! + j * stride[dAxis]!]!;
          if (meanTokens) row[j]! += v / tok;
          else row[i * d + j] = v;
        }
      }
      rows.push(row);
    }
  }
  return rows;
}

function assertGramsClose(got: Float64Array, rows: Float32Array[], what: string): void {
  const n = rows.length,
    p = rows[0]!.length;
  const flat = new Float64Array(n * p);
  rows.forEach((r, i) => flat.set(r, i * p));
  // centre both: computeGrams shifts features by a mean, which centring removes
  const want = centred(gramMatrix(flat, n, p), n),
    have = centred(got, n);
  let scale = 0;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(want[i]! - have[i]!) <= 1e-4 * scale, `${what}: gram[${i}] ${have[i]} vs ${want[i]}`);
}

function centred(k: Float64Array, n: number): Float64Array {
  const row = new Float64Array(n);
  let all = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) row[i]! += k[i * n + j]! / n;
    all += row[i]! / n;
  }
  return Float64Array.from(k, (v, ij) => v - row[Math.floor(ij / n)]! - row[ij % n]! + all);
}

test('CKA Gram matrices of ViT token cuts, flattened and token-pooled, equal ones computed by hand', async () => {
  const dir = tempDir('tokens-cka-');
  const ds = await openDataset(tinyCifar(join(dir, 'data'), 10, 12), 'test', { announce: false });
  const vit = openModel(VIT);
  const cut = stitchCut(vit, 'encoder_layer_1');
  const indices = Array.from({ length: 12 }, (_, i) => i);
  const opts = { normalization: { mean: [0, 0, 0], std: [1, 1, 1] }, indices, batchSize: 5, threads: 1 };
  const [flat] = await computeGrams(vit, ds, [cut], opts);
  assert.equal(flat!.features, 17 * 32);
  assertGramsClose(flat!.gram, await features(vit, ds, indices, cut.tensor, [0, 1, 2], false), 'flattened');
  const [pooled] = await computeGrams(vit, ds, [cut], { ...opts, pool: 'tokens' });
  assert.equal(pooled!.features, 32);
  assertGramsClose(pooled!.gram, await features(vit, ds, indices, cut.tensor, [0, 1, 2], true), 'token-pooled');
});

/** A tiny in-memory dataset of 3x8x8 images. */
function memoryDataset(n: number, seed: number): Dataset {
  const rng = new Rng(seed);
  const pixels = Float32Array.from({ length: n * 192 }, () => rng.uniform(0, 1));
  return {
    name: 'memory',
    split: 'test',
    source: 'memory',
    shape: [3, 8, 8],
    classes: 5,
    size: n,
    label: (i) => i % 5,
    read: async (idx, out) => {
      idx.forEach((i, k) => out.set(pixels.subarray(i * 192, (i + 1) * 192), k * 192));
    },
  };
}

test('CKA reads a sequence-first token cut [T, N, D] batch-first', async () => {
  const rng = new Rng(5);
  const m = buildModel({
    inputs: [vi('input', ['N', 3, 8, 8])],
    outputs: ['logits'],
    initializers: {
      pw: randn(rng, [6, 3, 4, 4]),
      w: randn(rng, [6, 6]),
      fc: randn(rng, [5, 6]),
      shape: { dtype: 'int64', dims: [3], data: BigInt64Array.from([0n, 6n, -1n]) },
    },
    nodes: [
      node('Conv', ['input', 'pw'], ['c'], { kernel_shape: ints([4, 4]), strides: ints([4, 4]) }, '/patch/Conv'),
      node('Reshape', ['c', 'shape'], ['f'], {}, '/patch/Reshape'),
      node('Transpose', ['f'], ['tokens'], { perm: ints([2, 0, 1]) }, '/patch/Transpose'),
      node('MatMul', ['tokens', 'w'], ['mm'], {}, '/enc/layer0/MatMul'),
      node('Relu', ['mm'], ['r'], {}, '/enc/layer0/Relu'),
      node('Add', ['tokens', 'r'], ['block'], {}, '/enc/layer0/Add'),
      node('ReduceMean', ['block'], ['pool'], { axes: ints([0]), keepdims: int(0) }, '/ReduceMean'),
      node('Gemm', ['pool', 'fc'], ['logits'], { transB: int(1) }, '/head/Gemm'),
    ],
  });
  const cut = stitchCut(m, 'block');
  assert.equal(cut.batchAxis, 1);
  assert.deepEqual(cut.shape, [4, 6]);
  const ds = memoryDataset(9, 3);
  const indices = Array.from({ length: 9 }, (_, i) => i);
  for (const pool of ['none', 'tokens'] as const) {
    const [g] = await computeGrams(m, ds, [cut], { normalization: { mean: [0, 0, 0], std: [1, 1, 1] }, indices, batchSize: 4, pool, threads: 1 });
    // the tensor as exported is [T, N, D]: tokens on axis 0, the batch on axis 1
    assertGramsClose(g!.gram, await features(m, ds, indices, 'block', [1, 0, 2], pool === 'tokens'), pool);
  }
});

test('CKA between a ResNet and a ViT with token pooling: a full matrix, features per cut recorded', async () => {
  const dir = tempDir('tokens-ckagrid-');
  const ds = await openDataset(tinyCifar(join(dir, 'data'), 10, 16), 'test', { announce: false });
  const r = await computeCkaGrid({ model: openModel(RESNET), file: RESNET }, { model: openModel(VIT), file: VIT }, ds, {
    samples: 16,
    pool: 'tokens',
    threads: 1,
  });
  assert.equal(r.pool, 'tokens');
  assert.deepEqual(r.receivers, ['stem', 'encoder_layer_0', 'features']);
  assert.deepEqual(
    r.cuts.receivers.map((c) => c.features),
    [[32], [32], [32]],
  );
  assert.deepEqual(r.cuts.senders[0]!.features, [8, 8, 8]);
  for (const row of r.values) for (const v of row) assert.ok(typeof v === 'number' && v >= 0 && v <= 1 + 1e-9);
});
