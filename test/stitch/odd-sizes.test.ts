/**
 * Stitches between spatial sizes that unpadded convolutions and floor- or ceil-mode pools
 * produce (SqueezeNet: 15 -> 7 -> 3), not only ceil(size / 2^k): a least-squares grid over
 * the SqueezeNet fixture fills every cell (the 7x7 <-> 3x3 cells, 12 of 25, were refused
 * before), and task-trained stitches of both directions have the gradients of the float64
 * reference through the receiver.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openModel } from '../../src/onnx/open.js';
import { planStitch } from '../../src/stitch/plan.js';
import { buildStitch, stitchParameters } from '../../src/stitch/build.js';
import { STITCH_PREFIX, stitchWithSuffix, suffixModel } from '../../src/stitch/compose.js';
import { stitchCut } from '../../src/stitch/cuts.js';
import { stitchGrid } from '../../src/stitch/run.js';
import { checkGradients } from '../helpers/gradcheck.js';
import { fixture, tempDir } from '../helpers/paths.js';
import { tinyCifar } from './helpers.js';

const SQUEEZE = fixture('torchvision', 'tv_squeezenet.onnx');

test('a least-squares grid over SqueezeNet (cuts 7x7 and 3x3) fills every cell, strided down by floor and upsampled with the edge repeated', async () => {
  const dir = tempDir('odd-sizes-');
  const r = await stitchGrid({
    a: SQUEEZE,
    b: SQUEEZE,
    data: tinyCifar(join(dir, 'data'), 48, 24),
    out: join(dir, 'grid'),
    options: { mode: 'lsq', batchSize: 16 },
    session: { threads: 1 },
    threads: 1,
  });
  const m = r.matrix;
  assert.deepEqual(m.cells.skipped, []);
  assert.ok(m.complete);
  assert.equal(m.cells.done, 25);
  const names = m.senders;
  const fit = m.matrices.fitError!.trained!;
  for (let i = 0; i < names.length; i++) {
    for (const x of fit[i]!) assert.ok(typeof x === 'number' && x >= 0, `fit error ${x}`);
    // a cut onto itself is a 1x1 identity away: least squares finds it
    assert.ok((fit[i]![i] as number) < 1e-4, `${names[i]} onto itself: fit error ${fit[i]![i]}`);
  }
  const cell = (s: string, t: string): { stitch: { kind: string; ratio: number; from: number[]; to: number[] } } =>
    JSON.parse(readFileSync(join(dir, 'grid', 'cells', `trained--${s}--${t}.json`), 'utf8'));
  assert.deepEqual(cell('stem', 'features.6').stitch, { kind: 'downsample', ratio: 2, from: [16, 7, 7], to: [32, 3, 3] });
  assert.deepEqual(cell('features.6', 'stem').stitch, { kind: 'upsample', ratio: 2, from: [32, 3, 3], to: [16, 7, 7] });
});

const MODEL = openModel(SQUEEZE);
for (const [from, to] of [
  ['stem', 'features.6'],
  ['features.6', 'features.4'],
]) {
  test(`stitch gradients through the SqueezeNet receiver: ${from} -> ${to} (7x7 <-> 3x3)`, async () => {
    const a = stitchCut(MODEL, from!),
      b = stitchCut(MODEL, to!);
    const spec = planStitch(a.shape, b.shape);
    const model = stitchWithSuffix(buildStitch(spec, { kind: 'random', seed: 3 }), suffixModel(MODEL, b));
    await checkGradients({
      model,
      trainable: stitchParameters(spec).map((p) => STITCH_PREFIX + p),
      loss: 'cross-entropy',
      batchNorm: 'eval',
      batchSize: 2,
      coordinates: 12,
    });
  });
}
