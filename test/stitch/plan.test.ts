import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planStitch, spatialStride } from '../../src/stitch/plan.js';
import { buildStitch, mapWeightShape } from '../../src/stitch/build.js';
import { ModelSession } from '../../src/runtime/session.js';
import { numel } from '../../src/onnx/tensor.js';
import { assertUserError } from '../helpers/assertions.js';

/** Runs a seeded random stitch on random input and returns the output dims. */
async function outputDims(from: number[], to: number[], opts = {}): Promise<number[]> {
  const spec = planStitch(from, to, opts);
  const s = await ModelSession.create(buildStitch(spec, { kind: 'random', seed: 1 }), { threads: 1 });
  const x = Float32Array.from({ length: 2 * numel(from) }, (_, i) => Math.sin(i));
  const out = await s.run({ x: { dims: [2, ...from], data: x } });
  await s.release();
  return out['y']!.dims;
}

const CASES: { from: number[]; to: number[]; kind: string; ratio: number; weight: number[]; opts?: object }[] = [
  { from: [8, 28, 28], to: [16, 28, 28], kind: 'conv1x1', ratio: 1, weight: [16, 8, 1, 1] },
  { from: [8, 28, 28], to: [16, 14, 14], kind: 'downsample', ratio: 2, weight: [16, 8, 2, 2] },
  { from: [8, 28, 28], to: [32, 7, 7], kind: 'downsample', ratio: 4, weight: [32, 8, 4, 4] },
  // stride-2 stages round up: 7 -> 4, so 28 -> 4 is a factor of 8 with zero padding
  { from: [16, 7, 7], to: [32, 4, 4], kind: 'downsample', ratio: 2, weight: [32, 16, 2, 2] },
  { from: [8, 28, 28], to: [32, 4, 4], kind: 'downsample', ratio: 8, weight: [32, 8, 8, 8] },
  { from: [32, 7, 7], to: [8, 28, 28], kind: 'upsample', ratio: 4, weight: [8, 32, 1, 1] },
  // 4 -> 8 then cropped to 7
  { from: [64, 4, 4], to: [32, 7, 7], kind: 'upsample', ratio: 2, weight: [32, 64, 1, 1] },
  { from: [16, 14, 14], to: [64], kind: 'pool-linear', ratio: 1, weight: [64, 16] },
  { from: [16, 14, 14], to: [64], kind: 'flatten-linear', ratio: 1, weight: [64, 16 * 14 * 14], opts: { flat: 'flatten' } },
  { from: [64], to: [32], kind: 'linear', ratio: 1, weight: [32, 64] },
  { from: [8, 28, 28], to: [16, 14, 14], kind: 'downsample', ratio: 2, weight: [16, 8, 2, 2], opts: { bnBefore: true, bnAfter: true } },
  // unpadded convolutions and floor-mode pools round down (SqueezeNet at 64x64: 31 -> 15 -> 7 -> 3)
  { from: [8, 15, 15], to: [16, 7, 7], kind: 'downsample', ratio: 2, weight: [16, 8, 2, 2] },
  { from: [8, 31, 31], to: [16, 15, 15], kind: 'downsample', ratio: 2, weight: [16, 8, 2, 2] },
  { from: [8, 31, 31], to: [16, 3, 3], kind: 'downsample', ratio: 8, weight: [16, 8, 8, 8] },
  { from: [8, 7, 7], to: [16, 3, 3], kind: 'downsample', ratio: 2, weight: [16, 8, 2, 2], opts: { bnBefore: true, bnAfter: true } },
  // per dimension: ceil in one, exact or floor in the other
  { from: [8, 7, 8], to: [16, 4, 4], kind: 'downsample', ratio: 2, weight: [16, 8, 2, 2] },
  { from: [8, 15, 16], to: [16, 7, 8], kind: 'downsample', ratio: 2, weight: [16, 8, 2, 2] },
  { from: [8, 9, 14], to: [16, 4, 7], kind: 'downsample', ratio: 2, weight: [16, 8, 2, 2] },
  // no power of 2 fits: a stride-3 pool
  { from: [8, 28, 28], to: [16, 9, 9], kind: 'downsample', ratio: 3, weight: [16, 8, 3, 3] },
  // several powers of 2 fit: the one nearest the ratio 4.5 (two floor stages), not 8 (ceil)
  { from: [8, 9, 9], to: [16, 2, 2], kind: 'downsample', ratio: 4, weight: [16, 8, 4, 4] },
  // upsampling by the same r: the last row/column repeated where r * h falls short, cropped where it overshoots
  { from: [16, 3, 3], to: [8, 7, 7], kind: 'upsample', ratio: 2, weight: [8, 16, 1, 1] },
  { from: [16, 7, 7], to: [8, 15, 15], kind: 'upsample', ratio: 2, weight: [8, 16, 1, 1], opts: { bnBefore: true, bnAfter: true } },
  { from: [16, 3, 4], to: [8, 7, 7], kind: 'upsample', ratio: 2, weight: [8, 16, 1, 1] },
  { from: [16, 7, 7], to: [8, 31, 31], kind: 'upsample', ratio: 4, weight: [8, 16, 1, 1] },
  { from: [16, 9, 9], to: [8, 28, 28], kind: 'upsample', ratio: 3, weight: [8, 16, 1, 1] },
];

for (const c of CASES) {
  test(`stitch ${c.from.join('x')} -> ${c.to.join('x')}${c.opts ? ' ' + JSON.stringify(c.opts) : ''}: ${c.kind}, runs and gives the receiver's shape`, async () => {
    const spec = planStitch(c.from, c.to, c.opts);
    assert.equal(spec.kind, c.kind);
    assert.equal(spec.ratio, c.ratio);
    assert.deepEqual(mapWeightShape(spec), c.weight);
    assert.deepEqual(await outputDims(c.from, c.to, c.opts), [2, ...c.to]);
  });
}

test('sizes that no integer stride joins are a clear one-line error', () => {
  // 28 / 12 lies between 2 and 3: no stride gives 12 by floor or ceil
  assertUserError(() => planStitch([8, 28, 28], [16, 12, 12]), '28x28', '12x12', 'no integer stride');
  // a stride-1 unpadded convolution (8 -> 7) and a 5x5 sender into a 7x7 receiver
  assertUserError(() => planStitch([8, 8, 8], [16, 7, 7]), '8x8 and 7x7 differ by no integer stride');
  assertUserError(() => planStitch([8, 5, 5], [16, 7, 7]), '5x5 and 7x7 differ by no integer stride');
  // one stride for both dimensions (2 and 4 here), and no mixed up/down
  assertUserError(() => planStitch([8, 14, 28], [16, 7, 7]), 'the same r for height and width');
  assertUserError(() => planStitch([8, 28, 14], [16, 14, 28]), '28x14 and 14x28 differ by no integer stride');
  // the same rule for a token grid (8x8 patches) onto an image
  assertUserError(() => planStitch([65, 32], [16, 7, 7]), '8x8 and 7x7');
  for (const [from, to] of [
    [
      [8, 28, 28],
      [16, 12, 12],
    ],
    [
      [8, 5, 5],
      [16, 7, 7],
    ],
  ]) {
    try {
      planStitch(from!, to!);
    } catch (e) {
      assert.ok(!(e as Error).message.includes('\n'), 'one line');
    }
  }
});

test('spatialStride: floor or ceil in every dimension, a power of 2 first, then the integer nearest the ratio', () => {
  const cases: [number[], number[], number | undefined][] = [
    [[14, 14], [7, 7], 2],
    [[7, 7], [4, 4], 2],
    [[15, 15], [7, 7], 2],
    [[31, 31], [7, 7], 4],
    [[31, 31], [3, 3], 8],
    [[28, 28], [4, 4], 8],
    [[28, 28], [9, 9], 3],
    [[28, 28], [5, 5], 6],
    [[5, 5], [1, 1], 4],
    [[3, 3], [1, 1], 4],
    [[2, 2], [1, 1], 2],
    // Inception-v3 at 224: 111 -> 5 (no power of 2 fits; 19..27 do, 22 is nearest 111 / 5)
    [[111, 111], [5, 5], 22],
    [[28, 28], [12, 12], undefined],
    [[8, 8], [7, 7], undefined],
    [[14, 28], [7, 7], undefined],
  ];
  for (const [large, small, r] of cases) assert.equal(spatialStride(large, small), r, `${large.join('x')} -> ${small.join('x')}`);
  // every r it gives does give the smaller size, by floor or ceil
  for (let a = 1; a <= 40; a++)
    for (let b = 1; b <= a; b++) {
      const r = spatialStride([a], [b]);
      // a size of 1 stays 1 under a padded stride (ceil(1 / r) = 1); any larger one shrinks
      if (a === b) assert.equal(r, a === 1 ? 2 : undefined, `${a} -> ${b}`);
      else if (r !== undefined) assert.ok(Math.floor(a / r) === b || Math.ceil(a / r) === b, `${a} -> ${b}: r ${r}`);
      // a stride-2 stage, floor or ceil, is joined by r = 2 (3 -> 1 takes 4, which reads all 3 pixels)
      if ((b === Math.floor(a / 2) || b === Math.ceil(a / 2)) && a !== b && b > 1) assert.equal(r, 2, `${a} -> ${b}`);
    }
});

test('a flat sender cannot feed a spatial receiver', () => {
  assertUserError(() => planStitch([64], [16, 7, 7]), 'flat sender vector cannot feed a spatial receiver');
});

test('an identity stitch needs equal shapes', () => {
  assertUserError(() => buildStitch(planStitch([8, 28, 28], [16, 28, 28]), { kind: 'identity' }), 'identity stitch');
});
