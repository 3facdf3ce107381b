import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planStitch } from '../../src/stitch/plan.js';
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

test('a spatial ratio that is no power of 2 is a clear error', () => {
  assertUserError(() => planStitch([8, 28, 28], [16, 12, 12]), '28x28', '12x12', 'power-of-2');
  assertUserError(() => planStitch([8, 28, 28], [16, 5, 5]), 'power-of-2');
  assertUserError(() => planStitch([8, 14, 28], [16, 7, 7]), 'power-of-2');
});

test('a flat sender cannot feed a spatial receiver', () => {
  assertUserError(() => planStitch([64], [16, 7, 7]), 'flat sender vector cannot feed a spatial receiver');
});

test('an identity stitch needs equal shapes', () => {
  assertUserError(() => buildStitch(planStitch([8, 28, 28], [16, 28, 28]), { kind: 'identity' }), 'identity stitch');
});
