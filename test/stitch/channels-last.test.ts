/**
 * Stitching and CKA on exports whose shapes are computed at run time and whose stages are
 * channels-last (a tiny torchvision Swin Transformer, fixtures/torchvision/tv_swin.onnx):
 * the block outputs [N, H, W, C] are cuts read channels-first, tensors without a batch
 * axis of their own ([N*nW, w*w, C] windows) are never offered and are refused by name
 * with the reason, and identity stitches and CKA read the channel axis where it is.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Model } from '../../src/onnx/types.js';
import { openModel } from '../../src/onnx/open.js';
import { saveModel } from '../../src/onnx/proto.js';
import { int, ints } from '../../src/onnx/graph.js';
import { int64 } from '../../src/onnx/tensor.js';
import { allCuts, listCuts, stitchCut } from '../../src/stitch/cuts.js';
import { planStitch } from '../../src/stitch/plan.js';
import { buildStitch, MAP_BIAS, MAP_WEIGHT } from '../../src/stitch/build.js';
import { composeStitched } from '../../src/stitch/compose.js';
import { stitchGrid } from '../../src/stitch/run.js';
import { computeGrams } from '../../src/stitch/cka-grams.js';
import { computeCkaGrid } from '../../src/stitch/cka-grid.js';
import { openDataset } from '../../src/data/resolve.js';
import { Rng } from '../../src/util/random.js';
import { assertUserError } from '../helpers/assertions.js';
import { isOneLineError, runCli } from '../helpers/cli.js';
import { buildModel, node, randn, runOrt, vi } from '../helpers/graphs.js';
import { fixture, tempDir } from '../helpers/paths.js';
import { tinyCifar } from './helpers.js';
import { tvIo } from '../helpers/fixtures.js';

const SWIN = fixture('torchvision', 'tv_swin.onnx');
const CONVNEXT = fixture('torchvision', 'tv_convnext.onnx');
// one copy for the tests that only read it: its shape analysis and cut layouts are cached per model
const swin = openModel(SWIN);

test("Swin's cut points are its stem, blocks and patch merging, channels-last images read as [C, H, W]; no window tensor is offered", () => {
  const cuts = listCuts(swin, 'tv_swin.onnx');
  assert.deepEqual(
    cuts.map((c) => [c.name, c.kind, c.shape.join('x'), c.channelAxis]),
    [
      ['stem', 'stem', '8x8x8', 3],
      ['features.1.0', 'block', '8x8x8', 3],
      ['features.1.1', 'block', '8x8x8', 3],
      ['features.2', 'block', '16x4x4', 3],
      ['features.3.0', 'block', '16x4x4', 3],
      ['features.3.1', 'block', '16x4x4', 3],
      ['features', 'features', '16', undefined],
    ],
  );
  const all = allCuts(swin, 'tv_swin.onnx');
  assert.ok(all.length > cuts.length);
  assert.equal(all.find((c) => c.tensor === '/features/features.0/features.0.0/Conv_output_0')?.channelAxis, undefined, 'the patch embedding conv is NCHW');
  assert.equal(all.find((c) => c.tensor === '/permute/Transpose_output_0')?.channelAxis, undefined);
  assert.ok(all.every((c) => !c.tensor.includes('/attn/')));
});

/**
 * input [N,4,8,8] -> Conv -> channels-last [N,8,8,4] -> windows [N*4,16,4] (the Reshape
 * target computed from the batch size) -> Linear -> back to [N,8,8,4] -> pooled logits:
 * the windows and the Linear's output lie on every path, but no axis of theirs is the
 * batch alone.
 */
function windowChain(): Model {
  const rng = new Rng(2);
  return buildModel({
    inputs: [vi('input', ['N', 3, 8, 8])],
    outputs: ['logits'],
    initializers: {
      cw: randn(rng, [4, 3, 3, 3]),
      lw: randn(rng, [4, 4]),
      fc: randn(rng, [5, 4]),
      zero: int64([1], [0]),
      four: int64([1], [4]),
      rest: int64([2], [16, 4]),
      hw: int64([3], [8, 8, 4]),
    },
    nodes: [
      node('Conv', ['input', 'cw'], ['c'], { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]) }, '/embed/Conv'),
      node('Transpose', ['c'], ['t'], { perm: ints([0, 2, 3, 1]) }, '/embed/Transpose'),
      node('Shape', ['t'], ['s'], {}, '/win/Shape'),
      node('Gather', ['s', 'zero'], ['b'], { axis: int(0) }, '/win/Gather'),
      node('Mul', ['b', 'four'], ['bw'], {}, '/win/Mul'),
      node('Concat', ['bw', 'rest'], ['ws'], { axis: int(0) }, '/win/Concat'),
      node('Reshape', ['t', 'ws'], ['windows'], {}, '/win/Reshape'),
      node('MatMul', ['windows', 'lw'], ['mixed'], {}, '/win/MatMul'),
      node('Relu', ['mixed'], ['act'], {}, '/win/Relu'),
      node('Shape', ['act'], ['s2'], {}, '/unwin/Shape'),
      node('Gather', ['s2', 'zero'], ['bw2'], { axis: int(0) }, '/unwin/Gather'),
      node('Div', ['bw2', 'four'], ['b2'], {}, '/unwin/Div'),
      node('Concat', ['b2', 'hw'], ['bs'], { axis: int(0) }, '/unwin/Concat'),
      node('Reshape', ['act', 'bs'], ['back'], {}, '/unwin/Reshape'),
      node('ReduceMean', ['back'], ['pooled'], { axes: ints([1, 2]), keepdims: int(0) }, '/pool/ReduceMean'),
      node('Gemm', ['pooled', 'fc'], ['logits'], { transB: int(1) }, '/head/Gemm'),
    ],
  });
}

test('a cut whose batch is spread over an axis with other sizes (windows [N*4, 16, 4]) is not listed, and naming it is refused with the reason', () => {
  const m = windowChain();
  const listed = [...listCuts(m, 'win.onnx'), ...allCuts(m, 'win.onnx')].map((c) => c.tensor);
  assert.ok(listed.includes('t') && listed.includes('back'), listed.join(', '));
  for (const t of ['windows', 'mixed', 'act']) assert.ok(!listed.includes(t), `${t} listed`);
  assertUserError(() => stitchCut(m, 'mixed', 'win.onnx'), 'cut "mixed" of win.onnx', 'batch*4x16x4', 'no axis is the batch alone');
  assert.deepEqual(stitchCut(m, 't').shape, [4, 8, 8]);
  assert.equal(stitchCut(m, 't').channelAxis, 3);
});

test('the CLI lists the window chain and refuses its window tensor as a CKA cut in one line', async () => {
  const dir = tempDir('channels-last-cli-');
  const file = join(dir, 'win.onnx');
  saveModel(windowChain(), file);
  const list = runCli(['stitch', file, '--list-cuts']);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /image 4x8x8 \(channels last\)/);
  assert.doesNotMatch(list.stdout, /\bmixed\b/);
  const data = tinyCifar(join(dir, 'data'), 8, 8);
  const r = runCli(['cka', file, file, '--data', data, '--resize', '8', '--senders', 'mixed', '--receivers', 't', '-o', join(dir, 'cka')]);
  assert.ok(isOneLineError(r), r.stderr);
  assert.match(r.stderr, /cut "mixed".*no axis is the batch alone/);
});

const eye = (n: number): Float32Array => Float32Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0));

/**
 * Each pair holds the same values in two layouts ([N, C, H, W] and [N, H, W, C], equal
 * sizes, so only the channel axis tells them apart): an identity 1x1 stitch from one to
 * the other gives the network's own logits back only if both are read channels-first.
 */
const SAME_VALUES: [string, string][] = [
  ['/features/features.0/features.0.1/Transpose_output_0', '/features/features.0/features.0.0/Conv_output_0'],
  ['/features/features.0/features.0.0/Conv_output_0', '/features/features.0/features.0.1/Transpose_output_0'],
  ['/norm/LayerNormalization_output_0', '/permute/Transpose_output_0'],
];

for (const [from, to] of SAME_VALUES) {
  test(`Swin stitched into itself by an identity 1x1 stitch ${from} -> ${to} computes its own logits`, async () => {
    const io = tvIo('swin');
    const a = stitchCut(swin, from),
      b = stitchCut(swin, to);
    const spec = planStitch(a.shape, b.shape);
    assert.equal(spec.kind, 'conv1x1');
    const c = a.shape[0]!;
    const stitch = buildStitch(spec, {
      kind: 'weights',
      weights: new Map([
        [MAP_WEIGHT, eye(c)],
        [MAP_BIAS, new Float32Array(c)],
      ]),
    });
    const m = composeStitched(swin, a, stitch, swin, b);
    const out = (await runOrt(m, { input: io.input }))[m.graph.outputs[0]!.name]!.data as Float32Array;
    for (let i = 0; i < io.logits.length; i++) assert.ok(Math.abs(out[i]! - io.logits[i]!) < 1e-4, `logit ${i}: ${out[i]} vs ${io.logits[i]}`);
  });
}

test('CKA Gram matrices of a channels-last cut equal those of the same values channels-first, flattened and pixel-pooled', async () => {
  const dir = tempDir('channels-last-cka-');
  const ds = await openDataset(tinyCifar(join(dir, 'data'), 4, 10), 'test', { announce: false });
  const last = stitchCut(swin, '/norm/LayerNormalization_output_0');
  const first = stitchCut(swin, '/permute/Transpose_output_0');
  assert.equal(last.channelAxis, 3);
  const opts = { normalization: { mean: [0, 0, 0], std: [1, 1, 1] }, indices: Array.from({ length: 10 }, (_, i) => i), batchSize: 4, threads: 1 };
  for (const pool of ['none', 'all'] as const) {
    const [a, b] = await computeGrams(swin, ds, [last, first], { ...opts, pool });
    assert.equal(a!.features, pool === 'all' ? 16 : 256);
    assert.equal(a!.features, b!.features);
    let scale = 0;
    for (const v of b!.gram) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < b!.gram.length; i++)
      assert.ok(Math.abs(a!.gram[i]! - b!.gram[i]!) <= 1e-5 * scale, `${pool}: gram[${i}] ${a!.gram[i]} vs ${b!.gram[i]}`);
  }
});

test('a least-squares stitching grid and a CKA grid over Swin block cuts (into ConvNeXt and into itself) run', async () => {
  const dir = tempDir('channels-last-grid-');
  const data = tinyCifar(join(dir, 'data'), 32, 16);
  const session = { threads: 1 };
  const r = await stitchGrid({
    a: SWIN,
    b: SWIN,
    data,
    out: join(dir, 'ss'),
    options: { mode: 'lsq', batchSize: 16 },
    senders: ['/features/features.2/norm/LayerNormalization_output_0', 'features.1.1'],
    receivers: ['features.2', 'features.3.0'],
    session,
    threads: 1,
  });
  assert.ok(r.matrix.complete);
  const fit = r.matrix.matrices.fitError!.trained!;
  // features.2 is a bias-free Linear of the merged patches' LayerNorm, position by position: a 1x1 stitch fits it exactly
  assert.ok(fit[0]![0]! < 1e-6, `fit error ${fit[0]![0]}`);
  for (const row of r.matrix.matrices.accuracy!.trained!) for (const x of row) assert.ok(typeof x === 'number' && x >= 0 && x <= 1);
  const ds = await openDataset(data, 'test', { announce: false });
  const cka = await computeCkaGrid({ model: swin, file: SWIN }, { model: openModel(CONVNEXT), file: CONVNEXT }, ds, {
    senders: ['features.1.1', 'features.3.1'],
    receivers: ['features.1', 'features'],
    pool: 'all',
    threads: 1,
  });
  for (const row of cka.values) for (const v of row) assert.ok(typeof v === 'number' && v >= 0 && v <= 1 + 1e-9, `CKA ${v}`);
});
