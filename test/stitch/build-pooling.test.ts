import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planStitch, type StitchSpec } from '../../src/stitch/plan.js';
import { buildPooling, buildStitch, initialWeights, pooledSpec, poolingKey, type StitchWeights } from '../../src/stitch/build.js';
import type { Model } from '../../src/onnx/types.js';
import { ModelSession } from '../../src/runtime/session.js';
import { Rng } from '../../src/util/random.js';

async function run(model: Model, dims: number[], x: Float32Array): Promise<Float32Array> {
  const session = await ModelSession.create(model, { threads: 1 });
  try {
    const name = session.outputNames[0]!;
    return (await session.run({ x: { dims, data: x } }, [name]))[name]!.data as Float32Array;
  } finally {
    await session.release();
  }
}

test('a pool-linear stitch is its linear map of the pooled sender: the same weights give the same outputs (images, tokens, a token grid read as an image)', async () => {
  const rng = new Rng(4);
  const cases: [StitchSpec, number][] = [
    [planStitch([6, 5, 3], [4]), 6],
    [planStitch([7, 6], [3]), 6],
    // 1 class token + a 2x3 grid read as the image [6, 2, 3]: the pool averages the patch tokens only
    [{ ...planStitch([7, 6], [3]), unpatchify: { extra: 1, grid: [2, 3] } }, 6],
  ];
  for (const [spec, features] of cases) {
    assert.equal(spec.kind, 'pool-linear');
    const linear = pooledSpec(spec)!;
    assert.deepEqual([linear.kind, linear.from, linear.to, linear.unpatchify], ['linear', [features], spec.to, undefined]);
    const w: StitchWeights = initialWeights(spec, { kind: 'random', seed: 9 });
    assert.deepEqual(
      [...initialWeights(linear, { kind: 'random', seed: 9 })].map(([k, v]) => [k, [...v]]),
      [...w].map(([k, v]) => [k, [...v]]),
      'the same parameters, drawn alike',
    );
    const size = 5;
    const per = spec.from.reduce((a, b) => a * b, 1);
    const x = Float32Array.from({ length: size * per }, () => rng.normal() + 3);
    const pooled = await run(buildPooling(spec), [size, ...spec.from], x);
    assert.equal(pooled.length, size * features);
    if (!spec.unpatchify) {
      // the pool by hand: channels over pixels, or features over tokens
      const positions = spec.from.length === 3 ? spec.from[1]! * spec.from[2]! : spec.from[0]!;
      const at = (i: number, f: number, q: number): number => x[i * per + (spec.from.length === 3 ? f * positions + q : q * features + f)]!;
      for (let i = 0; i < size; i++)
        for (let f = 0; f < features; f++) {
          let s = 0;
          for (let q = 0; q < positions; q++) s += at(i, f, q);
          assert.ok(Math.abs(pooled[i * features + f]! - s / positions) <= 1e-5, `${spec.from}: image ${i} feature ${f}`);
        }
    }
    const full = await run(buildStitch(spec, { kind: 'weights', weights: w }), [size, ...spec.from], x);
    const viaPool = await run(buildStitch(linear, { kind: 'weights', weights: w }), [size, features], pooled);
    assert.equal(full.length, viaPool.length);
    for (let i = 0; i < full.length; i++) assert.ok(Math.abs(full[i]! - viaPool[i]!) <= 1e-5 * (1 + Math.abs(full[i]!)), `${spec.from}: output ${i}`);
  }
  // one front serves every sender of a rank (symbolic sizes); a token grid read as an image has its own
  const small = planStitch([2, 3, 3], [4]),
    large = planStitch([5, 4, 2], [7]);
  assert.equal(poolingKey(small), poolingKey(large));
  assert.notEqual(poolingKey(small), poolingKey(planStitch([7, 6], [3])));
  assert.notEqual(poolingKey(cases[2]![0]), poolingKey(planStitch([7, 6], [3])));
  const shared = await ModelSession.create(buildPooling(small), { threads: 1 });
  try {
    const x = Float32Array.from({ length: 2 * 40 }, (_, i) => i % 9);
    const y = (await shared.run({ x: { dims: [2, 5, 4, 2], data: x } }, [shared.outputNames[0]!]))[shared.outputNames[0]!]!.data as Float32Array;
    assert.deepEqual([...y], [...(await run(buildPooling(large), [2, 5, 4, 2], x))], 'a front built for another shape gives the same pooled values');
    assert.equal(y.length, 10);
  } finally {
    await shared.release();
  }
  // BatchNorm before the map standardises every position, not the pooled vector; other kinds have no pooling front
  assert.equal(pooledSpec(planStitch([6, 5, 3], [4], { bnBefore: true })), undefined);
  assert.equal(pooledSpec(planStitch([6, 5, 3], [4, 5, 3])), undefined);
  assert.throws(() => buildPooling(planStitch([6, 5, 3], [4, 5, 3])), /no parameter-free pooling front/);
});
