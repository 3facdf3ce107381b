import { test } from 'node:test';
import type { Node } from '../../src/onnx/types.js';
import { str } from '../../src/onnx/graph.js';
import { float32, int64 } from '../../src/onnx/tensor.js';
import { checkOp } from '../helpers/gradcheck.js';
import { Rng } from '../../src/util/random.js';
import { RULES } from '../../src/autodiff/rules/resize.js';
import '../helpers/reference/resize.js';
import { runOrt } from '../helpers/graphs.js';
import { buildModel, vi } from '../helpers/graphs.js';
import type { RefTensor } from '../helpers/reference/registry.js';
import { assertClose, numericGradient, randomRef, refOp, runRule, toFloat32Tensor } from './conv-test-kit.js';

interface ResizeCase {
  name: string;
  x: number[];
  scales?: number[];
  sizes?: number[];
  modes: Record<string, string>;
}

const CASES: ResizeCase[] = [
  {
    name: 'x2 asymmetric floor (the zoo upsample)',
    x: [2, 3, 3, 4],
    scales: [1, 1, 2, 2],
    modes: { coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' },
  },
  {
    name: 'x3 asymmetric floor, one axis',
    x: [1, 2, 3, 2],
    scales: [1, 1, 3, 1],
    modes: { coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' },
  },
  { name: 'x2 half_pixel round_prefer_floor (defaults)', x: [1, 2, 3, 3], scales: [1, 1, 2, 2], modes: {} },
  { name: 'x3 asymmetric round_prefer_floor (not blocks)', x: [1, 2, 2, 3], scales: [1, 1, 3, 3], modes: { coordinate_transformation_mode: 'asymmetric' } },
  { name: 'sizes, align_corners', x: [1, 1, 3, 4], sizes: [1, 1, 5, 7], modes: { coordinate_transformation_mode: 'align_corners' } },
  { name: 'x1.5 half_pixel', x: [2, 1, 4, 2], scales: [1, 1, 1.5, 1.5], modes: {} },
  {
    name: 'downsample x0.5 asymmetric',
    x: [1, 2, 4, 6],
    scales: [1, 1, 0.5, 0.5],
    modes: { coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' },
  },
];

let id = 0;
function resizeNode(c: ResizeCase): Node {
  const attributes = Object.fromEntries([['mode', str('nearest')], ...Object.entries(c.modes).map(([k, v]) => [k, str(v)])]);
  return { name: `resize${id++}`, opType: 'Resize', inputs: c.sizes ? ['x', '', '', 'sizes'] : ['x', '', 'scales'], outputs: ['y'], attributes };
}

function constInputs(c: ResizeCase): Record<string, RefTensor> {
  return c.sizes ? { sizes: { dims: [4], data: Float64Array.from(c.sizes) } } : { scales: { dims: [4], data: Float64Array.from(c.scales!) } };
}

test('reference Resize (nearest) matches ONNX Runtime', async () => {
  const rng = new Rng(1);
  for (const c of CASES) {
    const node = resizeNode(c);
    const x = randomRef(rng, c.x);
    const consts = constInputs(c);
    const expected = refOp(node, [x, undefined, consts.scales, consts.sizes])[0]!;
    const model = buildModel({
      nodes: [node],
      inputs: [vi('x', c.x)],
      outputs: ['y'],
      initializers: c.sizes ? { sizes: int64([4], c.sizes) } : { scales: toFloat32Tensor(consts.scales!) },
    });
    const got = (await runOrt(model, { x: toFloat32Tensor(x) })).y!;
    assertClose(expected.data, got.data as Float32Array, 1e-6, `Resize ${c.name}`);
  }
});

test('Resize nearest gradient matches finite differences (block sums and general mappings)', async () => {
  const rng = new Rng(2);
  for (const c of CASES) {
    const node = resizeNode(c);
    const x = randomRef(rng, c.x);
    const consts = constInputs(c);
    const { grads, dys } = await runRule(RULES.Resize!, node, { x, ...consts }, c.sizes ? { int64: ['sizes'] } : { constants: ['scales'] });
    assertClose(numericGradient(node, [x, undefined, consts.scales, consts.sizes], 0, dys[0]!), grads[0]!, 1e-5, `Resize ${c.name}`);
  }
});

test('Resize x2 through the training graph matches finite differences (gradcheck)', async () => {
  await checkOp({
    op: 'Resize',
    inputs: [[2, 2, 3, 3], null, { constant: float32([4], [1, 1, 2, 2]) }],
    attributes: { mode: str('nearest'), coordinate_transformation_mode: str('asymmetric'), nearest_mode: str('floor') },
  });
  await checkOp({
    op: 'Resize',
    inputs: [[1, 2, 2, 3], null, { constant: float32([4], [1, 1, 3, 3]) }],
    attributes: { mode: str('nearest'), coordinate_transformation_mode: str('asymmetric') },
  });
});
