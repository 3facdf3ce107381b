import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planStitch } from '../../src/stitch/plan.js';
import { MAP_BIAS, MAP_WEIGHT, buildStitch, initialWeights } from '../../src/stitch/build.js';
import { ModelSession } from '../../src/runtime/session.js';
import { Rng } from '../../src/util/random.js';

test('an upsampling stitch maps the small image, then upsamples, crops or repeats the edge: pixel i reads min(floor(i / r), h - 1)', async () => {
  for (const [from, to] of [
    [
      [3, 2, 2],
      [2, 3, 3],
    ],
    [
      [4, 2, 2],
      [3, 8, 8],
    ],
    // r * h short of the receiver: the last row/column repeated (7 = floor-mode 3 * 2 + 1)
    [
      [3, 3, 3],
      [2, 7, 7],
    ],
    // short in one dimension, overshooting in the other
    [
      [3, 3, 4],
      [2, 7, 7],
    ],
    // both: 7 -> 31 by r = 4 repeats a column (8 * 4 = 32), then crops one
    [
      [2, 7, 7],
      [2, 31, 31],
    ],
  ]) {
    const spec = planStitch(from!, to!);
    assert.equal(spec.kind, 'upsample');
    const model = buildStitch(spec, { kind: 'random', seed: 3 });
    const map = model.graph.nodes.find((n) => n.opType === 'Conv')!;
    assert.equal(map.inputs[0], 'x', 'the map reads the sender directly');
    const w = initialWeights(spec, { kind: 'random', seed: 3 });
    const [ca, ha, wa] = from as [number, number, number];
    const [cb, hb, wb] = to as [number, number, number];
    const r = spec.ratio;
    const n = 2;
    const rng = new Rng(1);
    const x = Float32Array.from({ length: n * ca * ha * wa }, () => rng.uniform(-1, 1));
    const s = await ModelSession.create(model, { threads: 1 });
    const y = (await s.run({ x: { dims: [n, ca, ha, wa], data: x } }))['y']!.data as Float32Array;
    await s.release();
    const weight = w.get(MAP_WEIGHT)!,
      bias = w.get(MAP_BIAS)!;
    for (let b = 0; b < n; b++)
      for (let o = 0; o < cb; o++)
        for (let i = 0; i < hb; i++)
          for (let j = 0; j < wb; j++) {
            let v = bias[o]!;
            const [si, sj] = [Math.min(Math.floor(i / r), ha - 1), Math.min(Math.floor(j / r), wa - 1)];
            for (let c = 0; c < ca; c++) v += weight[o * ca + c]! * x[((b * ca + c) * ha + si) * wa + sj]!;
            const got = y[((b * cb + o) * hb + i) * wb + j]!;
            assert.ok(Math.abs(got - v) <= 1e-5, `${from!.join('x')} -> ${to!.join('x')} at ${b},${o},${i},${j}: ${got} vs ${v}`);
          }
  }
});
