import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planStitch } from '../../src/stitch/plan.js';
import { MAP_BIAS, MAP_WEIGHT, buildStitch, initialWeights } from '../../src/stitch/build.js';
import { ModelSession } from '../../src/runtime/session.js';
import { Rng } from '../../src/util/random.js';

test('a downsampling stitch is a stride-r convolution over the top-left: zero padding at the bottom/right for ceil sizes, the last rows unread for floor sizes', async () => {
  for (const [from, to] of [
    // floor: 15 -> 7 leaves row 14 unread; ceil: 7 -> 4 pads one row
    [
      [2, 15, 15],
      [3, 7, 7],
    ],
    [
      [2, 7, 8],
      [3, 4, 4],
    ],
    [
      [2, 31, 31],
      [2, 3, 3],
    ],
    [
      [2, 28, 28],
      [2, 9, 9],
    ],
  ]) {
    const spec = planStitch(from!, to!);
    assert.equal(spec.kind, 'downsample');
    const model = buildStitch(spec, { kind: 'random', seed: 5 });
    const w = initialWeights(spec, { kind: 'random', seed: 5 });
    const [ca, ha, wa] = from as [number, number, number];
    const [cb, hb, wb] = to as [number, number, number];
    const r = spec.ratio;
    const n = 2;
    const rng = new Rng(2);
    const x = Float32Array.from({ length: n * ca * ha * wa }, () => rng.uniform(-1, 1));
    const s = await ModelSession.create(model, { threads: 1 });
    const y = (await s.run({ x: { dims: [n, ca, ha, wa], data: x } }))['y']!.data as Float32Array;
    await s.release();
    const weight = w.get(MAP_WEIGHT)!,
      bias = w.get(MAP_BIAS)!;
    const at = (b: number, c: number, i: number, j: number): number => (i < ha && j < wa ? x[((b * ca + c) * ha + i) * wa + j]! : 0);
    for (let b = 0; b < n; b++)
      for (let o = 0; o < cb; o++)
        for (let i = 0; i < hb; i++)
          for (let j = 0; j < wb; j++) {
            let v = bias[o]!;
            for (let c = 0; c < ca; c++)
              for (let ky = 0; ky < r; ky++) for (let kx = 0; kx < r; kx++) v += weight[((o * ca + c) * r + ky) * r + kx]! * at(b, c, i * r + ky, j * r + kx);
            const got = y[((b * cb + o) * hb + i) * wb + j]!;
            assert.ok(Math.abs(got - v) <= 1e-5, `${from!.join('x')} -> ${to!.join('x')} at ${b},${o},${i},${j}: ${got} vs ${v}`);
          }
  }
});
