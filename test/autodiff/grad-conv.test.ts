import { test } from 'node:test';
import type { Attribute, Node } from '../../src/onnx/types.js';
import { float, int, ints, str } from '../../src/onnx/graph.js';
import { float32 } from '../../src/onnx/tensor.js';
import { inferShapes } from '../../src/onnx/shapes.js';
import { Rng } from '../../src/util/random.js';
import {
  RULES,
  chooseInputGradMethod,
  chooseWeightGradMethod,
  convBiasGrad,
  convGeometry,
  convInputGrad,
  convWeightGrad,
  type ConvGeometry,
  INPUT_GRAD_METHODS,
  splitShiftApplies,
  WEIGHT_GRAD_METHODS,
} from '../../src/autodiff/rules/conv.js';
import '../helpers/reference/conv.js';
import { buildModel, node as gnode, runOrt, vi } from '../helpers/graphs.js';
import { checkGradients, checkOp } from '../helpers/gradcheck.js';
import assert from 'node:assert/strict';
import { assertClose, assertMatchesOrt, linearGradient, numericGradient, randomRef, refOp, runRule, TestEmitter, toFloat32Tensor } from './conv-test-kit.js';

interface ConvCase {
  name: string;
  x: number[];
  w: number[];
  attrs: Record<string, Attribute>;
}

const CASES: ConvCase[] = [
  { name: 'plain 3x3', x: [2, 3, 5, 5], w: [4, 3, 3, 3], attrs: {} },
  { name: 'pad 1 stride 2', x: [2, 2, 6, 7], w: [3, 2, 3, 3], attrs: { pads: ints([1, 1, 1, 1]), strides: ints([2, 2]) } },
  { name: 'asymmetric pads, stride 3 leaving rows unread', x: [1, 2, 8, 7], w: [2, 2, 2, 3], attrs: { pads: ints([0, 1, 2, 0]), strides: ints([3, 2]) } },
  { name: 'dilation 2', x: [2, 2, 7, 7], w: [2, 2, 3, 3], attrs: { dilations: ints([2, 2]), pads: ints([2, 2, 2, 2]) } },
  { name: 'dilation and stride', x: [1, 2, 9, 8], w: [3, 2, 3, 2], attrs: { dilations: ints([2, 1]), strides: ints([2, 3]), pads: ints([1, 0, 1, 1]) } },
  { name: 'groups 2', x: [2, 4, 5, 5], w: [6, 2, 3, 3], attrs: { group: int(2), pads: ints([1, 1, 1, 1]) } },
  { name: 'depthwise stride 2', x: [2, 3, 6, 6], w: [3, 1, 3, 3], attrs: { group: int(3), pads: ints([1, 1, 1, 1]), strides: ints([2, 2]) } },
  { name: '1x1', x: [2, 3, 4, 4], w: [5, 3, 1, 1], attrs: {} },
  { name: '1x1 stride 2', x: [2, 3, 5, 5], w: [2, 3, 1, 1], attrs: { strides: ints([2, 2]) } },
  { name: 'non-square 1x3', x: [2, 2, 4, 6], w: [3, 2, 1, 3], attrs: { pads: ints([0, 1, 0, 1]) } },
  { name: 'SAME_UPPER stride 2', x: [1, 2, 5, 6], w: [2, 2, 3, 3], attrs: { auto_pad: str('SAME_UPPER'), strides: ints([2, 2]) } },
  {
    name: 'groups 2, dilated 2x3 kernel, asymmetric pads',
    x: [1, 4, 6, 7],
    w: [4, 2, 2, 3],
    attrs: { group: int(2), dilations: ints([1, 2]), pads: ints([1, 2, 0, 1]) },
  },
  { name: '1x1 padded (pads beyond the kernel reach)', x: [1, 2, 3, 3], w: [2, 2, 1, 1], attrs: { pads: ints([1, 1, 1, 1]) } },
  { name: '1-D', x: [2, 3, 9], w: [2, 3, 3], attrs: { pads: ints([1, 2]), strides: ints([2]) } },
  // split-shift's frame: kernel rows and columns apart, dilation along one axis, end pads of every size
  { name: '2x3 kernel, dilation (2, 1), asymmetric pads', x: [2, 3, 7, 6], w: [4, 3, 2, 3], attrs: { dilations: ints([2, 1]), pads: ints([1, 0, 2, 2]) } },
  { name: '3x3, pads 3 (beyond the kernel reach)', x: [1, 2, 4, 5], w: [3, 2, 3, 3], attrs: { pads: ints([3, 3, 3, 3]) } },
  { name: '4x2 kernel, no top pad, one image', x: [1, 2, 6, 5], w: [2, 2, 4, 2], attrs: { pads: ints([0, 1, 3, 0]) } },
];

let id = 0;
const convNode = (c: ConvCase, bias: boolean): Node => ({
  name: `conv${id++}`,
  opType: 'Conv',
  inputs: bias ? ['x', 'w', 'b'] : ['x', 'w'],
  outputs: ['y'],
  attributes: { kernel_shape: ints(c.w.slice(2)), ...c.attrs },
});

test('reference Conv matches ONNX Runtime (strides, pads, dilations, groups, auto_pad, 1-D)', async () => {
  const rng = new Rng(1);
  for (const c of CASES) {
    await assertMatchesOrt(convNode(c, true), { x: randomRef(rng, c.x), w: randomRef(rng, c.w), b: randomRef(rng, [c.w[0]!]) }, 1e-5);
  }
});

test('reference ConvTranspose matches ONNX Runtime (strides, pads, output_padding, dilations, groups)', async () => {
  const rng = new Rng(2);
  const cases: { x: number[]; w: number[]; attrs: Record<string, Attribute> }[] = [
    { x: [2, 3, 4, 4], w: [3, 2, 3, 3], attrs: {} },
    { x: [1, 2, 3, 4], w: [2, 3, 3, 2], attrs: { strides: ints([2, 3]), pads: ints([1, 0, 0, 1]), output_padding: ints([1, 2]) } },
    { x: [2, 4, 3, 3], w: [4, 1, 3, 3], attrs: { group: int(2), dilations: ints([2, 1]), pads: ints([1, 1, 1, 1]) } },
  ];
  for (const c of cases) {
    const node: Node = { name: `ct${id++}`, opType: 'ConvTranspose', inputs: ['x', 'w', 'b'], outputs: ['y'], attributes: c.attrs };
    const groups = (c.attrs.group?.value as number | undefined) ?? 1;
    await assertMatchesOrt(node, { x: randomRef(rng, c.x), w: randomRef(rng, c.w), b: randomRef(rng, [c.w[1]! * groups]) }, 1e-5);
  }
});

/** Emits the rule's pieces for one case and runs them in ONNX Runtime. */
async function ruleGradients(c: ConvCase, node: Node, x: ReturnType<typeof randomRef>, w: ReturnType<typeof randomRef>, dy: ReturnType<typeof randomRef>) {
  const e = new TestEmitter();
  const shapes: Record<string, number[]> = { x: c.x, w: c.w, y: dy.dims };
  const g = convGeometry({ node, shape: (t) => shapes[t]! });
  const inputs = { x: e.input('x', c.x), w: e.input('w', c.w), dy: e.input('dy', dy.dims) };
  const outputs = [convBiasGrad(e, g, inputs.dy)];
  for (const m of INPUT_GRAD_METHODS) outputs.push(convInputGrad(e, g, inputs.dy, inputs.w, m, `dx_${m}`));
  for (const m of WEIGHT_GRAD_METHODS) outputs.push(convWeightGrad(e, g, inputs.x, inputs.dy, m, `dw_${m}`));
  const model = e.model(outputs);
  inferShapes(model); // every formulation's operators are known to the IR
  const got = await runOrt(model, { x: toFloat32Tensor(x), w: toFloat32Tensor(w), dy: toFloat32Tensor(dy) });
  return outputs.map((o) => Array.from(got[o]!.data as Float32Array));
}

test('Conv gradient pieces: every input- and weight-gradient formulation, bias sum', async () => {
  const rng = new Rng(3);
  for (const c of CASES) {
    const node = convNode(c, false);
    const x = randomRef(rng, c.x);
    const w = randomRef(rng, c.w);
    const y = refOp(node, [x, w])[0]!;
    const dy = randomRef(rng, y.dims);
    const [db, ...grads] = await ruleGradients(c, node, x, w, dy);
    const dxRef = linearGradient(node, [x, w], 0, dy);
    INPUT_GRAD_METHODS.forEach((m, i) => assertClose(dxRef, grads[i]!, 1e-5, `${c.name}: dX by ${m}`));
    const dws = grads.slice(INPUT_GRAD_METHODS.length);
    const dwRef = linearGradient(node, [x, w], 1, dy);
    WEIGHT_GRAD_METHODS.forEach((m, i) => assertClose(dwRef, dws[i]!, 1e-5, `${c.name}: dW by ${m}`));
    const dbRef = new Float64Array(c.w[0]!);
    const per = dy.data.length / dy.dims[0]! / c.w[0]!;
    dy.data.forEach((v, i) => {
      dbRef[Math.floor(i / per) % c.w[0]!] += v;
    });
    assertClose(dbRef, db!, 1e-5, `${c.name}: dB`);
  }
});

test('Conv rule: input, weight and bias gradients match central finite differences', async () => {
  const rng = new Rng(4);
  for (const c of CASES) {
    const node = convNode(c, true);
    const inputs = { x: randomRef(rng, c.x), w: randomRef(rng, c.w), b: randomRef(rng, [c.w[0]!]) };
    const { grads, dys } = await runRule(RULES.Conv!, node, inputs);
    const args = [inputs.x, inputs.w, inputs.b];
    ['x', 'w', 'b'].forEach((name, i) => assertClose(numericGradient(node, args, i, dys[0]!), grads[i]!, 1e-5, `${c.name}: d${name}`));
  }
});

test('Conv rule with frozen (constant) weights still passes the input gradient', async () => {
  const c = CASES[1]!;
  const node = convNode(c, true);
  const rng = new Rng(5);
  const inputs = { x: randomRef(rng, c.x), w: randomRef(rng, c.w), b: randomRef(rng, [c.w[0]!]) };
  const { grads, dys } = await runRule(RULES.Conv!, node, inputs, { constants: ['w', 'b'] });
  assert.equal(grads[1], undefined);
  assert.equal(grads[2], undefined);
  assertClose(numericGradient(node, [inputs.x, inputs.w, inputs.b], 0, dys[0]!), grads[0]!, 1e-5, 'dX through frozen weights');
});

test('Conv through the training graph matches finite differences (gradcheck)', async () => {
  for (const c of CASES.filter((k) => ['pad 1 stride 2', 'dilation and stride', 'groups 2', 'depthwise stride 2', '1x1 stride 2'].includes(k.name))) {
    await checkOp({ op: 'Conv', inputs: [c.x, { shape: c.w }, { shape: [c.w[0]!] }], attributes: { kernel_shape: ints(c.w.slice(2)), ...c.attrs } });
  }
});

test('a small CNN (Conv, BatchNorm, Relu, MaxPool, Resize, AveragePool, GlobalAveragePool, Gemm) matches finite differences end to end', async () => {
  const rng = new Rng(9);
  const t = (dims: number[]) =>
    float32(
      dims,
      Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => rng.normal() * 0.5),
    );
  const model = buildModel({
    inputs: [vi('input', [2, 2, 6, 6])],
    outputs: ['logits'],
    initializers: {
      w1: t([4, 2, 3, 3]),
      b1: t([4]),
      s1: t([4]),
      o1: t([4]),
      m1: t([4]),
      v1: float32([4], [1, 0.5, 2, 1.5]),
      w2: t([3, 4, 3, 3]),
      scales: float32([4], [1, 1, 2, 2]),
      fc: t([5, 3]),
      fcb: t([5]),
    },
    nodes: [
      gnode('Conv', ['input', 'w1', 'b1'], ['c1'], { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]) }),
      gnode('BatchNormalization', ['c1', 's1', 'o1', 'm1', 'v1'], ['bn1'], { epsilon: float(1e-5), momentum: float(0.9) }),
      gnode('Relu', ['bn1'], ['r1']),
      gnode('MaxPool', ['r1'], ['p1'], { kernel_shape: ints([3, 3]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]) }),
      gnode('Conv', ['p1', 'w2'], ['c2'], { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]), group: int(1) }),
      gnode('Resize', ['c2', '', 'scales'], ['up'], { mode: str('nearest'), coordinate_transformation_mode: str('asymmetric'), nearest_mode: str('floor') }),
      gnode('AveragePool', ['up'], ['ap'], { kernel_shape: ints([2, 2]), strides: ints([2, 2]) }),
      gnode('GlobalAveragePool', ['ap'], ['gap']),
      gnode('Flatten', ['gap'], ['flat'], { axis: int(1) }),
      gnode('Gemm', ['flat', 'fc', 'fcb'], ['logits'], { transB: int(1) }),
    ],
  });
  for (const batchNorm of ['train', 'eval'] as const) {
    await checkGradients({ model, trainable: ['w1', 'b1', 's1', 'o1', 'w2', 'fc', 'fcb'], inputGradients: ['input'], loss: 'cross-entropy', batchNorm });
  }
});

test('weight-gradient choice: gather-gemm on small maps with many channels, transposed-conv where dY fits in cache, split-shift for few channels on large maps, patch-matmul otherwise, patch-gemm on tiny maps', () => {
  const geometry = (c: number, size: number, more: Partial<ConvGeometry> = {}, batch = 128): ConvGeometry => ({
    x: [batch, c, size, size],
    w: [c, c, 3, 3],
    y: [batch, c, size, size],
    group: 1,
    strides: [1, 1],
    dilations: [1, 1],
    padsBegin: [1, 1],
    padsEnd: [1, 1],
    ...more,
  });
  assert.equal(chooseWeightGradMethod(geometry(16, 28)), 'split-shift');
  assert.equal(chooseWeightGradMethod(geometry(64, 32)), 'split-shift');
  assert.equal(chooseWeightGradMethod(geometry(32, 14)), 'split-shift');
  // dY of at most 2 MiB: the swapped convolution reads it from cache
  assert.equal(chooseWeightGradMethod(geometry(64, 7)), 'transposed-conv'); // 1.6 MB
  // at least 256 channels on both sides and at most 64 positions: one Gemm large on every axis
  assert.equal(chooseWeightGradMethod(geometry(512, 2)), 'gather-gemm');
  assert.equal(chooseWeightGradMethod(geometry(512, 4)), 'gather-gemm');
  assert.equal(chooseWeightGradMethod(geometry(256, 8)), 'gather-gemm');
  assert.equal(chooseWeightGradMethod(geometry(256, 8, { w: [512, 256, 3, 3], strides: [2, 2], y: [128, 512, 4, 4] })), 'gather-gemm');
  assert.equal(chooseWeightGradMethod(geometry(256, 16)), 'patch-matmul'); // 256 positions
  assert.equal(chooseWeightGradMethod(geometry(128, 8)), 'patch-matmul'); // 128 channels: a thin product
  assert.equal(chooseWeightGradMethod(geometry(512, 4, { group: 2, w: [512, 256, 3, 3] })), 'patch-gemm'); // one group only
  assert.equal(chooseWeightGradMethod(geometry(16, 28, { strides: [2, 2], y: [128, 16, 14, 14] })), 'transposed-conv');
  assert.equal(chooseWeightGradMethod(geometry(64, 7, { w: [64, 64, 1, 1], padsBegin: [0, 0], padsEnd: [0, 0] })), 'patch-matmul'); // 1x1: the patches are X
  assert.equal(chooseWeightGradMethod(geometry(64, 7, {}, 512)), 'patch-matmul'); // 6.4 MB; the frame's 2 extra rows on 7
  assert.equal(chooseWeightGradMethod(geometry(16, 28, { strides: [2, 2], y: [512, 16, 14, 14] }, 512)), 'patch-matmul');
  assert.equal(chooseWeightGradMethod(geometry(128, 16)), 'patch-matmul'); // the product dominates
  assert.equal(chooseWeightGradMethod(geometry(128, 4, {}, 512)), 'patch-gemm'); // 4 MB, 16 positions, 128 channels
  assert.equal(chooseWeightGradMethod(geometry(3, 32, { w: [64, 3, 3, 3], y: [128, 64, 32, 32] })), 'patch-matmul'); // an RGB stem: im2col writes less
  assert.equal(chooseWeightGradMethod(geometry(16, 28, { group: 2, w: [16, 8, 3, 3] })), 'patch-matmul');
  assert.equal(splitShiftApplies(geometry(16, 28, { w: [16, 16, 1, 3] })), false);
  assert.equal(splitShiftApplies(geometry(16, 28, { w: [16, 16, 3, 3, 3], x: [1, 16, 8, 8, 8], y: [1, 16, 8, 8, 8] })), false);
});

test('input-gradient choice: flipped-conv at stride 1, one ConvTranspose over batch-stacked images on small strided maps, per-image ConvTranspose otherwise', () => {
  const strided = (cin: number, cout: number, size: number, k: number, more: Partial<ConvGeometry> = {}): ConvGeometry => {
    const pad = (k - 1) / 2;
    const out = Math.floor((size + 2 * pad - k) / 2) + 1;
    return {
      x: [128, cin, size, size],
      w: [cout, cin, k, k],
      y: [128, cout, out, out],
      group: 1,
      strides: [2, 2],
      dilations: [1, 1],
      padsBegin: [pad, pad],
      padsEnd: [pad, pad],
      ...more,
    };
  };
  assert.equal(chooseInputGradMethod({ ...strided(64, 64, 8, 3), strides: [1, 1], y: [128, 64, 8, 8] }), 'flipped-conv');
  assert.equal(chooseInputGradMethod(strided(256, 512, 8, 3)), 'stacked-conv-transpose'); // dY 4x4
  assert.equal(chooseInputGradMethod(strided(256, 512, 8, 1)), 'stacked-conv-transpose');
  assert.equal(chooseInputGradMethod(strided(64, 128, 7, 3)), 'stacked-conv-transpose');
  assert.equal(chooseInputGradMethod(strided(64, 128, 7, 1)), 'conv-transpose'); // 34 MFLOP: the extra nodes cost more
  assert.equal(chooseInputGradMethod(strided(32, 64, 14, 3)), 'conv-transpose'); // dY 7x7
  assert.equal(chooseInputGradMethod(strided(256, 512, 8, 3, { group: 2, w: [512, 128, 3, 3] })), 'conv-transpose');
});
