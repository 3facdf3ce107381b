import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planStitch, type PlanOptions } from '../../src/stitch/plan.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildStitch, initialWeights, MAP_WEIGHT, mapFanIn } from '../../src/stitch/build.js';
import { stitchGrid } from '../../src/stitch/run.js';
import { createZooModel } from '../../src/nn/zoo.js';
import { saveModel } from '../../src/onnx/proto.js';
import { tempDir } from '../helpers/paths.js';
import { LsqAccumulator, type LsqMoments, fitErrorOf, lsqForm, lsqTooLarge, solveLsq } from '../../src/stitch/lsq.js';
import { cliMessage } from '../../src/cli/flags.js';
import { OptionError } from '../../src/util/errors.js';
import { ModelSession } from '../../src/runtime/session.js';
import { Matrix, SVD } from 'ml-matrix';
import { numel } from '../../src/onnx/tensor.js';
import { Rng } from '../../src/util/random.js';

/**
 * Targets made by a known stitch are recovered exactly: this checks that the
 * least-squares rows (space-to-depth patches, upsampled-and-cropped pixels, pooled
 * vectors) line up with the stitch's own weight layout.
 */
const CASES: [number[], number[], PlanOptions?][] = [
  [
    [4, 7, 7],
    [3, 4, 4],
  ],
  [
    [3, 8, 8],
    [5, 2, 2],
  ],
  [
    [6, 4, 4],
    [3, 7, 7],
  ],
  // floor sizes (unpadded or floor-mode stride-2 stages): the rows leave the unread last row/column out
  [
    [3, 15, 15],
    [4, 7, 7],
  ],
  [
    [3, 7, 8],
    [2, 3, 4],
  ],
  // ceil in one dimension, exact in the other; a stride-3 pool
  [
    [3, 7, 8],
    [2, 4, 4],
  ],
  [
    [2, 28, 28],
    [3, 9, 9],
  ],
  // upsampling short of the receiver (the edge repeated), and short then cropped
  [
    [4, 3, 3],
    [3, 7, 7],
  ],
  [
    [3, 7, 7],
    [2, 31, 31],
  ],
  [[5, 6, 6], [4]],
  [
    [5, 3, 3],
    [4, 3, 3],
  ],
  // image -> tokens: patchify onto the receiver's 4x4 grid (strided, 1x1, upsampled), with and without a class token
  [
    [3, 8, 8],
    [17, 5],
  ],
  [
    [4, 4, 4],
    [16, 5],
  ],
  [
    [3, 2, 2],
    [17, 4],
  ],
  // tokens -> image: class token dropped, 4x4 grid unpatchified, then 1x1 / upsampled / strided
  [
    [17, 5],
    [3, 4, 4],
  ],
  [
    [17, 5],
    [3, 8, 8],
  ],
  [
    [17, 5],
    [4, 2, 2],
  ],
  // a 7x7 token grid onto a floor-size image and back (strided, and upsampled with the edge repeated)
  [
    [50, 5],
    [3, 3, 3],
  ],
  [
    [4, 3, 3],
    [50, 5],
  ],
  [
    [3, 15, 15],
    [50, 4],
  ],
  // tokens -> tokens: same count (per-token linear), other counts (through the grids; class token from class token or mean)
  [
    [17, 5],
    [17, 3],
  ],
  [
    [17, 5],
    [5, 3],
  ],
  [
    [16, 5],
    [5, 3],
  ],
  [
    [5, 4],
    [17, 3],
  ],
  // tokens -> flat: mean of the tokens, the class token, all tokens flattened
  [[17, 5], [4]],
  [[17, 5], [4], { flat: 'class' }],
  [[5, 3], [4], { flat: 'flatten' }],
];

for (const [from, to, opts] of CASES) {
  test(`least squares recovers a known stitch ${from.join('x')} -> ${to.join('x')}${opts ? ` ${JSON.stringify(opts)}` : ''}`, async () => {
    const spec = planStitch(from, to, opts);
    const truth = initialWeights(spec, { kind: 'random', seed: 7 });
    const stitch = await ModelSession.create(buildStitch(spec, { kind: 'weights', weights: truth }), { threads: 1 });
    const acc = await LsqAccumulator.create(spec, { threads: 1 });
    const rng = new Rng(3);
    for (let b = 0; b < 4; b++) {
      const n = 16;
      const x = Float32Array.from({ length: n * numel(from) }, () => rng.normal());
      const y = (await stitch.run({ x: { dims: [n, ...from], data: x } }))['y']!.data as Float32Array;
      await acc.add(x, y, n);
    }
    const sol = await solveLsq(spec, acc.moments);
    await acc.release();
    await stitch.release();
    assert.ok(sol.fitError < 1e-10, `fit error ${sol.fitError}`);
    assert.equal(sol.ridge, 0);
    for (const k of truth.keys()) {
      const want = truth.get(k)!,
        got = sol.weights.get(k)!;
      for (let i = 0; i < want.length; i++) assert.ok(Math.abs(want[i]! - got[i]!) < 1e-4, `${k}[${i}]: ${got[i]} vs ${want[i]}`);
    }
  });
}

test('an input channel that is always zero makes the system singular: a reported ridge, zero weight for it', async () => {
  const spec = planStitch([3, 2, 2], [2, 2, 2]);
  const acc = await LsqAccumulator.create(spec, { threads: 1 });
  const rng = new Rng(5);
  const n = 32;
  const x = Float32Array.from({ length: n * 12 }, (_, i) => (Math.floor(i / 4) % 3 === 1 ? 0 : rng.normal()));
  const y = Float32Array.from({ length: n * 8 }, (_, i) => x[Math.floor(i / 8) * 12 + (i % 4)]! * 2 + 1);
  await acc.add(x, y, n);
  const sol = await solveLsq(spec, acc.moments);
  await acc.release();
  assert.ok(sol.ridge > 0, 'ridge reported');
  assert.ok(sol.fitError < 1e-8, `fit error ${sol.fitError}`);
  const w = sol.weights.get(MAP_WEIGHT)!; // [2, 3, 1, 1]
  assert.ok(Math.abs(w[1]!) < 1e-6 && Math.abs(w[4]!) < 1e-6, `dead channel weights ${w[1]}, ${w[4]}`);
  assert.ok(Math.abs(w[0]! - 2) < 1e-4, `weight ${w[0]}`);
});

test('fewer rows than inputs (an underdetermined stitch) is solved with a ridge at once, fitting the training rows', async () => {
  const spec = planStitch([300, 1, 1], [4, 1, 1]);
  const acc = await LsqAccumulator.create(spec, { threads: 1 });
  const rng = new Rng(9);
  const n = 40;
  const x = Float32Array.from({ length: n * 300 }, () => rng.normal());
  const y = Float32Array.from({ length: n * 4 }, () => rng.normal());
  await acc.add(x, y, n);
  const sol = await solveLsq(spec, acc.moments);
  await acc.release();
  assert.ok(sol.ridge > 0, 'ridge reported');
  assert.ok(sol.fitError < 1e-6, `an exact fit exists; fit error ${sol.fitError}`);
});

test('a least-squares stitch over the input limit is refused with what helps for its kind', async () => {
  // a strided stitch: K = 1024 channels x 4x4; pooling options cannot help it
  const down = planStitch([1024, 8, 8], [64, 2, 2]);
  const e = lsqTooLarge(down, { mode: 'lsq', init: 'random' })!;
  assert.ok(e, 'refused');
  assert.equal(
    cliMessage(e),
    'a least-squares downsample stitch [1024x8x8] -> [64x2x2] has 16384 inputs per output, a 16384x16384 system (limit 8192); ' +
      'train it by gradient instead (--mode task), or use a later sender cut, closer in size to the receiver (here 1024 channels x a 4x4 window)',
  );
  assert.match(e.message, /\(mode=task\)/);
  // asked for by --init lsq: the option to change is --init
  assert.match(cliMessage(lsqTooLarge(down, { mode: 'task', init: 'lsq' })!), /by gradient instead \(--init random\)/);
  // flattened into the classifier: pooling is the remedy
  const flat = cliMessage(lsqTooLarge(planStitch([256, 8, 8], [10], { flat: 'flatten' }), { mode: 'lsq', init: 'random' })!);
  assert.match(flat, /16384 inputs per output.*\(--mode task\), or use --flat pool \(one input per channel\)$/);
  // within the limit: nothing to refuse
  assert.equal(lsqTooLarge(planStitch([512, 8, 8], [64, 2, 2])), undefined);
  // the accumulator refuses the same way before building anything
  await assert.rejects(LsqAccumulator.create(down, { threads: 1 }), (err: Error) => {
    assert.ok(err instanceof OptionError);
    assert.match(cliMessage(err), /\(--mode task with --init random\), or use a later sender cut/);
    return true;
  });
});

test('a least-squares stitch over the input limit with fewer rows than inputs is solved by its rows; more images are refused with how many fit', async () => {
  // K = 1024 x 4 x 4 = 16,384 inputs; 4 rows per image
  const down = planStitch([1024, 8, 8], [64, 2, 2]);
  assert.equal(mapFanIn(down), 16384);
  assert.equal(lsqTooLarge(down, { mode: 'lsq', init: 'random' }, { train: 200, test: 200 }), undefined);
  // 4,096 images would give 16,384 rows: the primal form, a 16,384 x 16,384 system
  const many = lsqTooLarge(down, { mode: 'lsq', init: 'random' }, { train: 4096, test: 200 })!;
  assert.ok(many, 'refused');
  assert.match(
    cliMessage(many),
    /\(limit 8192 \(or at most \d+ training and test images each, solved by their rows: 4096 \/ 200 given\)\); train it by gradient/,
  );
  const most = Number(/at most (\d+)/.exec(cliMessage(many))![1]);
  assert.ok(most > 200 && most <= 4095, `${most} images`);
  assert.equal(lsqTooLarge(down, undefined, { train: most, test: most }), undefined, 'the count it names fits');
  // solved: 12 images, 48 rows, an exact fit exists (rows < K) and the dual form finds it
  const rng = new Rng(5);
  const images = 12;
  const acc = await LsqAccumulator.create(down, { threads: 1 }, undefined, { train: images, test: images });
  const x = Float32Array.from({ length: images * numel(down.from) }, () => rng.normal());
  const y = Float32Array.from({ length: images * numel(down.to) }, () => rng.normal());
  await acc.add(x, y, images);
  assert.equal(acc.moments[0]!.form, 'dual');
  const sol = await solveLsq(down, acc.moments);
  await acc.release();
  assert.ok(sol.fitError < 1e-6, `fit error ${sol.fitError}`);
  assert.ok(sol.weights.get(MAP_WEIGHT)!.every(Number.isFinite));
  // without the image counts the accumulator cannot know the rows stay few: refused as before
  await assert.rejects(LsqAccumulator.create(down, { threads: 1 }), OptionError);
});

/** Random X (rows x k) and Y (rows x m), and the two forms of their least-squares problem built directly from them. */
function problem(rows: number, k: number, m: number, seed: number): { x: Float64Array; y: Float64Array; primal: LsqMoments; dual: LsqMoments } {
  const rng = new Rng(seed);
  const x = Float64Array.from({ length: rows * k }, () => rng.normal());
  const y = Float64Array.from({ length: rows * m }, () => rng.normal());
  return { x, y, ...forms(x, y, rows, k, m) };
}

type Form<F> = LsqMoments & { form: F };

function forms(x: Float64Array, y: Float64Array, rows: number, k: number, m: number): { primal: Form<'primal'>; dual: Form<'dual'> } {
  const n = k + 1;
  const x1 = (t: number, i: number): number => (i === k ? 1 : x[t * k + i]!);
  const x1t = new Float64Array(n * rows),
    g = new Float64Array(n * n),
    r = new Float64Array(n * m);
  let yy = 0;
  for (let t = 0; t < rows; t++) {
    for (let i = 0; i < n; i++) {
      x1t[i * rows + t] = x1(t, i);
      for (let j = 0; j < n; j++) g[i * n + j]! += x1(t, i) * x1(t, j);
      for (let j = 0; j < m; j++) r[i * m + j]! += x1(t, i) * y[t * m + j]!;
    }
    for (let j = 0; j < m; j++) yy += y[t * m + j]! ** 2;
  }
  const common = { map: 'map' as const, k, m, rows, yy };
  return { primal: { ...common, form: 'primal' as const, g, r }, dual: { ...common, form: 'dual' as const, batches: [{ rows, x1t, y }] } };
}

/** ||X1 A - Y||^2 / ||Y||^2 computed row by row. */
function directFitError(a: Float64Array, x: Float64Array, y: Float64Array, rows: number, k: number, m: number): number {
  let res = 0,
    tot = 0;
  for (let t = 0; t < rows; t++)
    for (let j = 0; j < m; j++) {
      let p = a[k * m + j]!;
      for (let i = 0; i < k; i++) p += x[t * k + i]! * a[i * m + j]!;
      res += (p - y[t * m + j]!) ** 2;
      tot += y[t * m + j]! ** 2;
    }
  return res / tot;
}

test('the form follows the row count: the rows themselves below K+1 (dual), moments from K+1 on (primal)', () => {
  assert.equal(lsqForm(300, 300), 'dual');
  assert.equal(lsqForm(301, 300), 'primal');
});

/**
 * The ridge solution with an unridged bias computed independently, by SVD of the centred
 * X (ml-matrix): W = V diag(s / (s^2 + ridge)) U^T Yc, bias = mean(Y) - mean(X) W.
 */
function ridgeBySvd(x: Float64Array, y: Float64Array, rows: number, k: number, m: number, ridge: number): Float64Array {
  const mean = (v: Float64Array, w: number): number[] => Array.from({ length: w }, (_, i) => v.filter((_, p) => p % w === i).reduce((s, e) => s + e, 0) / rows);
  const xm = mean(x, k),
    ym = mean(y, m);
  const xc = new Matrix(Array.from({ length: rows }, (_, t) => Array.from({ length: k }, (_, i) => x[t * k + i]! - xm[i]!)));
  const yc = new Matrix(Array.from({ length: rows }, (_, t) => Array.from({ length: m }, (_, j) => y[t * m + j]! - ym[j]!)));
  const svd = new SVD(xc, { autoTranspose: true });
  const s = svd.diagonal;
  const w = svd.rightSingularVectors
    .mmul(Matrix.diag(s.map((v) => v / (v * v + ridge))))
    .mmul(svd.leftSingularVectors.transpose())
    .mmul(yc);
  const a = new Float64Array((k + 1) * m);
  for (let j = 0; j < m; j++) {
    let b = ym[j]!;
    for (let i = 0; i < k; i++) {
      a[i * m + j] = w.get(i, j);
      b -= xm[i]! * w.get(i, j);
    }
    a[k * m + j] = b;
  }
  return a;
}

/** max |a - b| / max |b| */
function relDiff(a: Float64Array, b: Float64Array): number {
  let scale = 0,
    diff = 0;
  for (let i = 0; i < b.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]!));
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
  }
  return diff / scale;
}

test('the dual form gives the ridge solution of the primal at the same ridge, to rounding (an underdetermined problem)', async () => {
  // 300 inputs (two 256-blocks: the ORT paths), 120 rows
  const [rows, k, m] = [120, 300, 3];
  const { x, y, primal, dual } = problem(rows, k, m, 13);
  const spec = planStitch([k, 1, 1], [m, 1, 1]);
  const p = await solveLsq(spec, primal, { threads: 1 });
  const d = await solveLsq(spec, dual, { threads: 1 });
  assert.ok(p.ridge > 0 && Math.abs(d.ridge - p.ridge) <= 1e-12 * p.ridge, `ridge ${d.ridge} vs ${p.ridge}`);
  const exact = ridgeBySvd(x, y, rows, k, m, d.ridge);
  assert.ok(relDiff(d.a[0]!, exact) < 1e-9, `dual vs SVD: ${relDiff(d.a[0]!, exact)}`);
  // the primal solves the same equations, but at a condition number of ~1e12 (the ridge is
  // 1e-12 of the largest diagonal entry) its weights carry rounding of about 1e-16 x 1e12
  // in directions that no training row sees: both fit every training row, only the dual
  // pins the weights down
  assert.ok(relDiff(p.a[0]!, exact) < 1, `primal vs SVD: ${relDiff(p.a[0]!, exact)}`);
  assert.ok(d.fitError < 1e-12 && p.fitError < 1e-12, `fit errors ${d.fitError}, ${p.fitError}`);
});

test('the fit error of a dual solve is ||X1 A - Y||^2 / ||Y||^2, on its rows and on held-out rows (there also from moments)', async () => {
  const [k, m] = [300, 3];
  const train = problem(150, k, m, 17);
  const held = problem(40, k, m, 18);
  const spec = planStitch([k, 1, 1], [m, 1, 1]);
  const sol = await solveLsq(spec, train.dual, { threads: 1 });
  const a = sol.a[0]!;
  assert.ok(Math.abs(sol.fitError - directFitError(a, train.x, train.y, 150, k, m)) < 1e-12, `training ${sol.fitError}`);
  const want = directFitError(a, held.x, held.y, 40, k, m);
  assert.ok(want > 0.1, `held-out rows are not fitted: ${want}`);
  for (const form of [held.dual, held.primal]) {
    const got = await fitErrorOf([a], [form], { threads: 1 });
    assert.ok(Math.abs(got - want) < 1e-9 * want, `${form.form}: ${got} vs ${want}`);
  }
});

test('a known stitch is recovered through the dual form: fewer rows than inputs, but only one live channel', async () => {
  // a stride-4 stitch: K = 3 channels x 4x4 = 48 inputs, 8 images x 4 positions = 32 rows < 49;
  // channels 1 and 2 are always zero, so the 16 live inputs and the bias are determined
  const spec = planStitch([3, 8, 8], [5, 2, 2]);
  const truth = initialWeights(spec, { kind: 'random', seed: 4 });
  const w = truth.get(MAP_WEIGHT)!; // [5, 3, 4, 4]
  for (let i = 0; i < w.length; i++) if (Math.floor(i / 16) % 3 !== 0) w[i] = 0;
  const stitch = await ModelSession.create(buildStitch(spec, { kind: 'weights', weights: truth }), { threads: 1 });
  const acc = await LsqAccumulator.create(spec, { threads: 1 });
  const rng = new Rng(8);
  const n = 8;
  const x = Float32Array.from({ length: n * 192 }, (_, i) => (i % 192 < 64 ? rng.normal() : 0));
  await acc.add(x, (await stitch.run({ x: { dims: [n, 3, 8, 8], data: x } }))['y']!.data as Float32Array, n);
  await acc.release();
  await stitch.release();
  assert.equal(acc.moments[0]!.form, 'dual');
  const sol = await solveLsq(spec, acc.moments);
  assert.ok(sol.ridge > 0, 'ridge reported');
  assert.ok(sol.fitError < 1e-10, `fit error ${sol.fitError}`);
  for (const key of truth.keys()) {
    const want = truth.get(key)!,
      got = sol.weights.get(key)!;
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(want[i]! - got[i]!) < 1e-4, `${key}[${i}]: ${got[i]} vs ${want[i]}`);
  }
});

test('the accumulator turns rows into moments once there are K+1 of them: the same solution as from the moments directly', async () => {
  const [k, m] = [20, 2];
  const spec = planStitch([k, 1, 1], [m, 1, 1]);
  const rng = new Rng(21);
  const x = Float32Array.from({ length: 30 * k }, () => rng.normal());
  const y = Float32Array.from({ length: 30 * m }, () => rng.normal());
  const acc = await LsqAccumulator.create(spec, { threads: 1 });
  // 12 rows, then 30: the first batch is kept, then both are summed
  await acc.add(x.subarray(0, 12 * k), y.subarray(0, 12 * m), 12);
  const kept = acc.moments[0]!;
  assert.equal(kept.form, 'dual');
  await acc.add(x, y, 30);
  await acc.release();
  const got = acc.moments[0]!;
  if (got.form !== 'primal') assert.fail(`form ${got.form}`);
  assert.equal(got.rows, 42);
  const all = (v: Float32Array, w: number): Float64Array => Float64Array.from([...v.subarray(0, 12 * w), ...v]);
  const { primal } = forms(all(x, k), all(y, m), 42, k, m);
  for (let i = 0; i < primal.g.length; i++) assert.ok(Math.abs(got.g[i]! - primal.g[i]!) < 1e-9, `g[${i}]`);
  for (let i = 0; i < primal.r.length; i++) assert.ok(Math.abs(got.r[i]! - primal.r[i]!) < 1e-9, `r[${i}]`);
  assert.ok(Math.abs(got.yy - primal.yy) < 1e-9);
});

test('a grid with least-squares cells of 6,272 inputs (flattened 8x28x28 stems; over the old 4,096 limit) fills every cell', async () => {
  const dir = tempDir('lsq-grid-');
  const file = join(dir, 'r.onnx');
  saveModel(createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.125, classes: 10, seed: 1, input: [1, 28, 28] }), file);
  const r = await stitchGrid({
    a: file,
    b: file,
    data: 'fashion-mnist-sample',
    out: join(dir, 'grid'),
    senders: ['stem', 'layer1.0'],
    receivers: ['layer4.0', 'features'],
    options: { mode: 'lsq', flat: 'flatten', batchSize: 16 },
    trainLimit: 48,
    testLimit: 32,
    session: { threads: 1 },
    threads: 1,
  });
  const m = r.matrix;
  assert.deepEqual(m.cells.skipped, []);
  assert.equal(m.cells.done, 4);
  const cell = JSON.parse(readFileSync(join(dir, 'grid', 'cells', 'trained--stem--features.json'), 'utf8'));
  assert.deepEqual(cell.stitch, { kind: 'flatten-linear', ratio: 1, from: [8, 28, 28], to: [64] });
  assert.equal(mapFanIn(planStitch([8, 28, 28], [64], { flat: 'flatten' })), 6272);
  const fit = m.matrices.fitError!.trained!,
    held = m.matrices.testFitError!.trained!;
  for (const row of [0, 1]) {
    // 48 training rows for 6,273 unknowns: the dual form fits them exactly; held-out images do not fit exactly
    assert.ok((fit[row]![1] as number) < 1e-8, `fit error ${fit[row]![1]}`);
    assert.ok((held[row]![1] as number) > 1e-6 && Number.isFinite(held[row]![1]), `test fit error ${held[row]![1]}`);
  }
});
