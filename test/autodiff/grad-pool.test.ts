import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Attribute, Node } from '../../src/onnx/types.js';
import { int, ints, str } from '../../src/onnx/graph.js';
import { Rng } from '../../src/util/random.js';
import { RULES, maxPoolGrad, type PoolGeometry } from '../../src/autodiff/rules/pool.js';
import '../helpers/reference/conv.js';
import '../helpers/reference/pool.js';
import { checkOp } from '../helpers/gradcheck.js';
import { assertClose, assertMatchesOrt, numericGradient, randomRef, runRule, TestEmitter } from './conv-test-kit.js';

let id = 0;
const pool = (opType: string, attrs: Record<string, Attribute>, outputs = ['y']): Node => ({
  name: `pool${id++}`,
  opType,
  inputs: ['x'],
  outputs,
  attributes: attrs,
});

const MAX_CASES: { name: string; x: number[]; attrs: Record<string, Attribute> }[] = [
  { name: 'k2 s2', x: [2, 3, 6, 6], attrs: { kernel_shape: ints([2, 2]), strides: ints([2, 2]) } },
  { name: 'k3 s2 overlapping', x: [2, 2, 7, 7], attrs: { kernel_shape: ints([3, 3]), strides: ints([2, 2]) } },
  { name: 'k3 s2 pad 1 ceil_mode', x: [1, 2, 8, 7], attrs: { kernel_shape: ints([3, 3]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]), ceil_mode: int(1) } },
  { name: 'k3 s1 pad 1 (inception branch)', x: [2, 2, 5, 5], attrs: { kernel_shape: ints([3, 3]), strides: ints([1, 1]), pads: ints([1, 1, 1, 1]) } },
  { name: 'k2 s2 ceil_mode odd size', x: [1, 3, 5, 5], attrs: { kernel_shape: ints([2, 2]), strides: ints([2, 2]), ceil_mode: int(1) } },
  { name: 'dilation 2, non-square', x: [1, 2, 7, 8], attrs: { kernel_shape: ints([2, 3]), strides: ints([1, 2]), dilations: ints([2, 1]) } },
  { name: 'SAME_UPPER', x: [1, 2, 5, 6], attrs: { kernel_shape: ints([3, 3]), strides: ints([2, 2]), auto_pad: str('SAME_UPPER') } },
  { name: '1-D', x: [2, 2, 9], attrs: { kernel_shape: ints([3]), strides: ints([2]), pads: ints([1, 1]) } },
  // disjoint windows (MaxUnpool): floor leaving a row unread, pads, stride past the kernel
  { name: 'k2 s2 floor leaves a row', x: [1, 2, 5, 5], attrs: { kernel_shape: ints([2, 2]), strides: ints([2, 2]) } },
  { name: 'k2 s2 pad 1', x: [2, 2, 6, 6], attrs: { kernel_shape: ints([2, 2]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]) } },
  { name: '2x3 kernel, stride 3 (gaps between windows)', x: [1, 2, 8, 7], attrs: { kernel_shape: ints([2, 3]), strides: ints([3, 3]) } },
];

const AVG_CASES: { name: string; x: number[]; attrs: Record<string, Attribute> }[] = [
  { name: 'k2 s2 (tiles)', x: [2, 3, 6, 6], attrs: { kernel_shape: ints([2, 2]), strides: ints([2, 2]) } },
  { name: 'k2 s2 floor leaves a row', x: [1, 2, 5, 5], attrs: { kernel_shape: ints([2, 2]), strides: ints([2, 2]) } },
  {
    name: 'k3 s2 pad 1 exclude pad',
    x: [2, 2, 7, 7],
    attrs: { kernel_shape: ints([3, 3]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]), count_include_pad: int(0) },
  },
  {
    name: 'k3 s2 pad 1 include pad',
    x: [2, 2, 7, 7],
    attrs: { kernel_shape: ints([3, 3]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]), count_include_pad: int(1) },
  },
  {
    name: 'k3 s2 asymmetric pad ceil include pad',
    x: [1, 2, 8, 6],
    attrs: { kernel_shape: ints([3, 3]), strides: ints([2, 2]), pads: ints([1, 0, 0, 1]), ceil_mode: int(1), count_include_pad: int(1) },
  },
  {
    name: 'k3 s2 pad 1 ceil exclude pad',
    x: [1, 2, 8, 6],
    attrs: { kernel_shape: ints([3, 3]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]), ceil_mode: int(1) },
  },
  { name: 'k2x3 s1 non-square', x: [2, 1, 4, 5], attrs: { kernel_shape: ints([2, 3]), pads: ints([0, 1, 1, 1]), count_include_pad: int(1) } },
  { name: '1-D', x: [2, 2, 8], attrs: { kernel_shape: ints([3]), strides: ints([2]), pads: ints([1, 1]) } },
];

test('reference MaxPool (values and Indices) matches ONNX Runtime', async () => {
  const rng = new Rng(1);
  for (const c of MAX_CASES) {
    await assertMatchesOrt(pool('MaxPool', c.attrs, ['y', 'i']), { x: randomRef(rng, c.x) }, 1e-6, { i: 'int64' });
  }
});

test('reference AveragePool (count_include_pad, ceil_mode) and GlobalAveragePool match ONNX Runtime', async () => {
  const rng = new Rng(2);
  for (const c of AVG_CASES) await assertMatchesOrt(pool('AveragePool', c.attrs), { x: randomRef(rng, c.x) }, 1e-6);
  await assertMatchesOrt(pool('GlobalAveragePool', {}), { x: randomRef(rng, [2, 3, 4, 5]) }, 1e-6);
});

test('MaxPool gradient matches finite differences (overlapping windows, pads, ceil_mode, dilations)', async () => {
  const rng = new Rng(3);
  for (const c of MAX_CASES) {
    for (const outputs of [['y'], ['y', 'i']]) {
      const node = pool('MaxPool', c.attrs, outputs);
      const x = randomRef(rng, c.x);
      const { grads, dys } = await runRule(RULES.MaxPool!, node, { x });
      assertClose(numericGradient(node, [x], 0, dys[0]!), grads[0]!, 1e-5, `MaxPool ${c.name} (${outputs.length} outputs)`);
    }
  }
});

test('MaxPool gradient: disjoint windows place dY with MaxUnpool, overlapping ones scatter-add it', () => {
  const ops = (g: Omit<PoolGeometry, 'dilations' | 'padsBegin' | 'padsEnd'>): string[] => {
    const e = new TestEmitter();
    maxPoolGrad(e, { ...g, dilations: [1, 1], padsBegin: [0, 0], padsEnd: [0, 0] }, e.input('dy', g.y), e.input('i', g.y), 'float32');
    return e.graph.nodes.map((n) => n.opType);
  };
  assert.deepEqual(ops({ x: [2, 3, 8, 8], y: [2, 3, 4, 4], kernel: [2, 2], strides: [2, 2] }), ['MaxUnpool']);
  const overlapping = ops({ x: [2, 3, 9, 9], y: [2, 3, 4, 4], kernel: [3, 3], strides: [2, 2] });
  assert.ok(overlapping.includes('ScatterElements') && !overlapping.includes('MaxUnpool'));
});

test('AveragePool gradient matches finite differences (count_include_pad both ways, ceil_mode, tiling)', async () => {
  const rng = new Rng(4);
  for (const c of AVG_CASES) {
    const node = pool('AveragePool', c.attrs);
    const x = randomRef(rng, c.x);
    const { grads, dys } = await runRule(RULES.AveragePool!, node, { x });
    assertClose(numericGradient(node, [x], 0, dys[0]!), grads[0]!, 1e-5, `AveragePool ${c.name}`);
  }
});

test('GlobalAveragePool gradient matches finite differences', async () => {
  const node = pool('GlobalAveragePool', {});
  const x = randomRef(new Rng(5), [2, 3, 3, 4]);
  const { grads, dys } = await runRule(RULES.GlobalAveragePool!, node, { x });
  assertClose(numericGradient(node, [x], 0, dys[0]!), grads[0]!, 1e-5, 'GlobalAveragePool');
});

test('no gradient is emitted when the input needs none', async () => {
  const node = pool('MaxPool', MAX_CASES[0]!.attrs);
  const { grads } = await runRule(RULES.MaxPool!, node, { x: randomRef(new Rng(6), MAX_CASES[0]!.x) }, { needs: [false] });
  assert.deepEqual(grads, [undefined]);
});

test('pooling through the training graph matches finite differences (gradcheck)', async () => {
  for (const c of MAX_CASES.slice(1, 4)) {
    await checkOp({ op: 'MaxPool', inputs: [c.x], attributes: c.attrs });
  }
  await checkOp({ op: 'MaxPool', inputs: [MAX_CASES[1]!.x], attributes: MAX_CASES[1]!.attrs, outputs: 2 });
  for (const c of AVG_CASES.filter((k) => k.name.includes('pad'))) await checkOp({ op: 'AveragePool', inputs: [c.x], attributes: c.attrs });
  await checkOp({ op: 'GlobalAveragePool', inputs: [[2, 3, 3, 2]] });
});
