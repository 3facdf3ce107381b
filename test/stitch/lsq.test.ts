import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planStitch, type PlanOptions } from '../../src/stitch/plan.js';
import { buildStitch, initialWeights, MAP_WEIGHT } from '../../src/stitch/build.js';
import { LsqAccumulator, lsqTooLarge, solveLsq } from '../../src/stitch/lsq.js';
import { cliMessage } from '../../src/cli/flags.js';
import { OptionError } from '../../src/util/errors.js';
import { ModelSession } from '../../src/runtime/session.js';
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
  // a strided stitch: K = 512 channels x 4x4; pooling options cannot help it
  const down = planStitch([512, 8, 8], [64, 2, 2]);
  const e = lsqTooLarge(down, { mode: 'lsq', init: 'random' })!;
  assert.ok(e, 'refused');
  assert.equal(
    cliMessage(e),
    'a least-squares downsample stitch [512x8x8] -> [64x2x2] has 8192 inputs per output, a 8192x8192 system (limit 4096); ' +
      'train it by gradient instead (--mode task), or use a later sender cut, closer in size to the receiver (here 512 channels x a 4x4 window)',
  );
  assert.match(e.message, /\(mode=task\)/);
  // asked for by --init lsq: the option to change is --init
  assert.match(cliMessage(lsqTooLarge(down, { mode: 'task', init: 'lsq' })!), /by gradient instead \(--init random\)/);
  // flattened into the classifier: pooling is the remedy
  const flat = cliMessage(lsqTooLarge(planStitch([128, 8, 8], [10], { flat: 'flatten' }), { mode: 'lsq', init: 'random' })!);
  assert.match(flat, /8192 inputs per output.*\(--mode task\), or use --flat pool \(one input per channel\)$/);
  // within the limit: nothing to refuse
  assert.equal(lsqTooLarge(planStitch([256, 8, 8], [64, 2, 2])), undefined);
  // the accumulator refuses the same way before building anything
  await assert.rejects(LsqAccumulator.create(down, { threads: 1 }), (err: Error) => {
    assert.ok(err instanceof OptionError);
    assert.match(cliMessage(err), /\(--mode task with --init random\), or use a later sender cut/);
    return true;
  });
});
