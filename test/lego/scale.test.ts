import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteImageDataset } from '../../src/data/memory.js';
import { buildModel, node, vi, runOrt } from '../helpers/graphs.js';
import { float32 } from '../../src/onnx/tensor.js';
import { int } from '../../src/onnx/graph.js';
import { setLabels } from '../../src/onnx/metadata.js';
import { applyScales, computeScales, findLastLinear } from '../../src/lego/scale.js';
import { UserError } from '../../src/util/errors.js';

// 1x2x2 images; pixel bytes / 255 are the features
const PIXELS = [
  [255, 0, 0, 0],
  [200, 10, 0, 0],
  [0, 255, 0, 0],
  [0, 100, 0, 0],
  [0, 0, 255, 0],
  [0, 0, 0, 255],
  [255, 0, 0, 0],
];
const LABELS = [0, 0, 1, 1, 2, 2, 1];
const W = [
  [2, 0, 0, 0],
  [0, 4, 0, 0],
  [0, 0, -1, 1],
];
const B = [0.5, 0, 0.1];

function dataset(split = 'train'): ByteImageDataset {
  return new ByteImageDataset(
    { name: 'fashion-mnist', split, source: 'hand-made', shape: [1, 2, 2], classes: 10 },
    Uint8Array.from(PIXELS.flat()),
    Uint8Array.from(LABELS),
    'labels',
  );
}

function model(withBias = true) {
  const m = buildModel({
    inputs: [vi('input', ['N', 1, 2, 2])],
    outputs: ['logits'],
    initializers: { w: float32([3, 4], W.flat()), ...(withBias ? { b: float32([3], B) } : {}) },
    nodes: [
      node('Flatten', ['input'], ['f'], { axis: int(1) }, 'flatten'),
      node('Gemm', ['f', 'w', ...(withBias ? ['b'] : [])], ['logits'], { transB: int(1) }, 'fc'),
    ],
  });
  setLabels(
    m,
    [0, 1, 2].map((c) => ({ dataset: 'fashion-mnist', class: c })),
  );
  return m;
}

/** r_j computed by hand: logits = W x + b; over samples whose arg-max is their label. */
function expected(): { factors: number[]; correct: number[] } {
  const sums = [0, 0, 0],
    counts = [0, 0, 0];
  PIXELS.forEach((p, i) => {
    const x = p.map((v) => v / 255);
    const z = W.map((row, j) => row.reduce((a, w, t) => a + w * x[t]!, 0) + B[j]!);
    const best = z.indexOf(Math.max(...z));
    if (best === LABELS[i]) {
      sums[best]! += z[best]!;
      counts[best]!++;
    }
  });
  return { factors: sums.map((s, j) => (counts[j] ? 1 / (s / counts[j]!) : 1)), correct: counts };
}

test('scale factors are 1 / mean max logit over correctly classified samples of each class', async () => {
  const want = expected();
  // class 2: image 4 has logit -1+0.1 < 0.5 (class 0's bias) so it is wrong; image 5 is right
  assert.deepEqual(want.correct, [2, 2, 1]);
  const s = await computeScales(model(), dataset());
  assert.deepEqual(s.correct, want.correct);
  s.factors.forEach((f, j) => assert.ok(Math.abs(f - want.factors[j]!) < 1e-6, `r_${j}: ${f} vs ${want.factors[j]}`));
  assert.deepEqual(s.unscaled, []);
});

test('applyScales multiplies row j and bias j by r_j, so logit j is multiplied by r_j', async () => {
  const m = model();
  const factors = [0.5, 2, 3];
  const scaled = applyScales(m, factors);
  const x = float32([1, 1, 2, 2], [0.1, 0.2, 0.3, 0.4]);
  const before = (await runOrt(m, { input: x }))['logits']!.data as Float32Array;
  const after = (await runOrt(scaled, { input: x }))['logits']!.data as Float32Array;
  factors.forEach((f, j) => assert.ok(Math.abs(after[j]! - f * before[j]!) < 1e-6));
  // the input model is untouched
  assert.deepEqual(
    Array.from(m.graph.initializers.get('b')!.data as Float32Array),
    B.map((v) => Math.fround(v)),
  );
  // a model without bias scales too
  const nb = applyScales(model(false), factors);
  const nbOut = (await runOrt(nb, { input: x }))['logits']!.data as Float32Array;
  const nbIn = (await runOrt(model(false), { input: x }))['logits']!.data as Float32Array;
  factors.forEach((f, j) => assert.ok(Math.abs(nbOut[j]! - f * nbIn[j]!) < 1e-6));
});

test('a class with no correctly classified sample keeps factor 1 and is reported', async () => {
  const m = model();
  // make class 1 never win: its row becomes zero and the bias very negative
  const w = Float32Array.from(W.flat());
  w.fill(0, 4, 8);
  m.graph.initializers.set('w', float32([3, 4], w));
  m.graph.initializers.set('b', float32([3], [0.5, -10, 0.1]));
  const s = await computeScales(m, dataset());
  assert.equal(s.factors[1], 1);
  assert.deepEqual(
    s.unscaled.map((u) => [u.output, u.class, u.reason]),
    [[1, 1, 'no correctly classified sample']],
  );
});

test('scaling refuses the test split and models whose logits do not come from a linear layer', async () => {
  await assert.rejects(computeScales(model(), dataset('test')), (e: unknown) => e instanceof UserError && /test split/.test(e.message));
  const m = buildModel({ inputs: [vi('input', ['N', 3])], outputs: ['y'], nodes: [node('Softmax', ['input'], ['y'], {}, 's')] });
  assert.throws(
    () => findLastLinear(m, 'softmax.onnx'),
    (e: unknown) => e instanceof UserError && /softmax\.onnx: cannot scale the logits: the logits are computed by Softmax node s/.test(e.message),
  );
});

test('a final Conv followed by Relu and global pooling (SqueezeNet) is scaled through them exactly', async () => {
  const { fixture } = await import('../helpers/paths.js');
  const { loadModel } = await import('../../src/onnx/proto.js');
  const { logitsOf, randomBatch } = await import('./disassemble-helpers.js');
  const m = loadModel(fixture('torchvision', 'tv_squeezenet.onnx'));
  assert.equal(findLastLinear(m).node.opType, 'Conv');
  const factors = [0.5, 2, 1, 3, 0.25, 1, 1, 4, 1, 0.1];
  const batch = randomBatch(2, [3, 32, 32], 1);
  const [before, after] = [await logitsOf(m, batch), await logitsOf(applyScales(m, factors), batch)];
  after.forEach((v, i) => assert.ok(Math.abs(v - before[i]! * factors[i % 10]!) < 1e-5 * Math.max(1, Math.abs(v)), `output ${i}`));
});

test('applyAffine: output j becomes a_j * z_j + b_j for a Gemm with and without bias and for a bare MatMul', async () => {
  const { applyAffine } = await import('../../src/lego/scale.js');
  const x = float32([2, 1, 2, 2], [0.2, -0.4, 0.9, 0.1, 1, 0.5, -0.3, 0.7]);
  const a = [2, 0.5, 3],
    b = [0.25, -1, 0.5];
  const matmul = buildModel({
    inputs: [vi('input', ['N', 1, 2, 2])],
    outputs: ['logits'],
    initializers: { w: float32([4, 3], [1, 0, 2, 0, 1, 0, -1, 0, 1, 0, 3, 1]) },
    nodes: [node('Flatten', ['input'], ['f'], { axis: int(1) }, 'flatten'), node('MatMul', ['f', 'w'], ['logits'], {}, 'fc')],
  });
  for (const m of [model(true), model(false), matmul]) {
    const before = (await runOrt(m, { input: x }))['logits']!.data as Float32Array;
    const after = (await runOrt(applyAffine(m, a, b), { input: x }))['logits']!.data as Float32Array;
    for (let i = 0; i < 6; i++) assert.ok(Math.abs(after[i]! - (a[i % 3]! * before[i]! + b[i % 3]!)) < 1e-5, `${m.graph.nodes.at(-1)!.opType} output ${i}`);
    assert.ok(findLastLinear(applyAffine(m, a, b)), 'the result is still scalable');
  }
});

test('fitAffine: logits of two groups on different scales are put on one; deterministic, positive scales', async () => {
  const { fitAffine } = await import('../../src/lego/scale.js');
  // outputs 0-1 speak 10x louder than outputs 2-3; each image's own output is the largest within its group
  const rows = 200,
    k = 4;
  const z = new Float32Array(rows * k);
  const t = new Int32Array(rows);
  for (let n = 0; n < rows; n++) {
    const c = n % k;
    t[n] = c;
    for (let j = 0; j < k; j++) z[n * k + j] = (j === c ? 3 : 1 + ((n * 7 + j) % 5) / 10) * (j < 2 ? 10 : 1);
  }
  const f = fitAffine(z, rows, k, t);
  assert.ok(f.before <= 0.75, `plain logits confuse the groups: ${f.before}`);
  assert.equal(f.after, 1);
  assert.ok(f.scale.every((s) => s > 0));
  assert.deepEqual(fitAffine(z, rows, k, t), f, 'deterministic');
});
