import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { float32, floatToHalf, tensor } from '../../src/onnx/tensor.js';
import { closeSources, openSources, type ModelSource } from '../../src/lineage/sources.js';
import { MIN_PANEL_BYTES, layerPanels, measureModels, type MeasureOptions, type Measurements } from '../../src/lineage/measure.js';
import { MOMENT_CHUNK, weightMoments } from '../../src/lineage/kurtosis.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/random.js';
import { tempDir } from '../helpers/paths.js';

const SIDE = 300; // 90,000 values: more than one moment chunk, so panels of one chunk split every row
const N = 6;

/**
 * Six models as safetensors: a base, and five far from it (an offset of 1) but within 1e-6
 * of each other, whose pairwise distances cancel in the Gram of the differences to the
 * base and are recomputed directly (gram.ts).
 */
function zoo(): { dir: string; weights: Float32Array[] } {
  const dir = tempDir();
  const rng = new Rng(11);
  const base = Float32Array.from({ length: SIDE * SIDE }, () => 0.05 * rng.normal());
  const far = Float32Array.from(base, (v) => v + 1 + 0.01 * rng.normal());
  const weights = [base, ...Array.from({ length: N - 1 }, () => Float32Array.from(far, (v) => v + 1e-6 * rng.normal()))];
  weights.forEach((w, i) =>
    writeSafetensors(join(dir, `m${i}.safetensors`), {
      'big.weight': float32([SIDE, SIDE], w),
      'small.weight': float32([4, 4], w.subarray(0, 16)),
    }),
  );
  return { dir, weights };
}

async function measure(dir: string, opts: MeasureOptions, wrap: (m: ModelSource) => ModelSource = (m) => m): Promise<Measurements> {
  const models = openSources([dir]);
  try {
    return await measureModels(models.map(wrap), { mode: 'ft', layers: ['big.weight'], session: { threads: 1 }, workers: 0, ...opts });
  } finally {
    closeSources(models);
  }
}

/** A source that can only read whole layers (as ONNX files). */
const wholeOnly = (m: ModelSource): ModelSource => ({
  name: m.name,
  path: m.path,
  layers: () => m.layers(),
  read: (l) => m.read(l),
  readInto: (l, t) => m.readInto(l, t),
  metadata: () => m.metadata(),
  close: () => m.close(),
});

function worstRelative(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let worst = 0;
  for (let k = 0; k < want.length; k++) if (want[k] !== 0 || got[k] !== 0) worst = Math.max(worst, Math.abs(got[k]! - want[k]!) / Math.abs(want[k]!));
  return worst;
}

test('panels: widths follow the byte budget in whole moment chunks, else in steps of 1024 values; whole layers stay whole', () => {
  assert.deepEqual(layerPanels(90_000, 6, false, 6 * 4 * MOMENT_CHUNK), [
    { offset: 0, width: MOMENT_CHUNK },
    { offset: MOMENT_CHUNK, width: 90_000 - MOMENT_CHUNK },
  ]);
  assert.deepEqual(
    layerPanels(90_000, 6, false, 6 * 4 * 5000).map((p) => p.width),
    [...Array(21).fill(4096), 90_000 - 21 * 4096],
  );
  assert.deepEqual(layerPanels(90_000, 6, true, MIN_PANEL_BYTES), [{ offset: 0, width: 90_000 }]);
  assert.deepEqual(layerPanels(100, 6, false), [{ offset: 0, width: 100 }], 'a small layer is one panel');
  // 105 models of 768 x 768 (the lineage benchmark): one moment chunk per model, 27.5 MB of panel
  assert.equal(layerPanels(768 * 768, 105, false)[0]!.width, MOMENT_CHUNK);
});

test('layers read in column panels give the distances of whole layers (near pairs re-read and recomputed exactly), kurtosis and norms bit for bit while panels hold whole chunks', async () => {
  const { dir, weights } = zoo();
  const whole = await measure(dir, {}, wholeOnly);
  assert.ok(whole.stats.repairedPairs >= 10, `the far siblings' pairs are repaired (${whole.stats.repairedPairs})`);
  assert.equal(whole.stats.bytesReread, 0, 'a whole layer is still in memory for the repair');
  // the float64 direct computation, one pair at a time
  const p = SIDE * SIDE;
  for (let i = 0; i < N; i++)
    for (let j = i + 1; j < N; j++) {
      let s = 0;
      for (let k = 0; k < p; k++) s += (weights[i]![k]! - weights[j]![k]!) ** 2;
      const want = Math.sqrt(s / p);
      assert.ok(Math.abs(whole.d[i * N + j]! - want) <= 1e-9 * want, `pair ${i},${j}: ${whole.d[i * N + j]} vs ${want}`);
    }
  for (const [budget, bitwise] of [
    [N * 4 * MOMENT_CHUNK, true],
    [N * 4 * 5000, false],
  ] as const) {
    for (const workers of [0, 1]) {
      const paneled = await measure(dir, { panelBytes: budget, workers });
      const what = `${budget} bytes, ${workers} workers`;
      assert.ok(worstRelative(paneled.d, whole.d) <= 1e-12, `${what}: distances`);
      assert.ok(worstRelative(paneled.clusterD, whole.clusterD) <= 1e-12, `${what}: clustering distances`);
      assert.equal(paneled.stats.repairedPairs, whole.stats.repairedPairs, what);
      assert.ok(paneled.stats.bytesReread > 0 && paneled.stats.bytesReread <= N * p * 4, `${what}: the repaired rows are read once more`);
      assert.equal(paneled.stats.bytesRead, whole.stats.bytesRead, what);
      if (bitwise) {
        assert.deepEqual(paneled.kurtosis, whole.kurtosis, `${what}: kurtosis`);
        assert.deepEqual(paneled.meanSquare, whole.meanSquare, `${what}: norms`);
      } else {
        // kurtosis + 3 = m4 / m2^2 is what the sums give (the excess is near 0 here); its rounding is relative to that
        const plus3 = (k: Float64Array): Float64Array => k.map((v) => v + 3);
        assert.ok(worstRelative(plus3(paneled.kurtosis), plus3(whole.kurtosis)) <= 1e-12, `${what}: kurtosis`);
        assert.ok(worstRelative(paneled.meanSquare, whole.meanSquare) <= 1e-12, `${what}: norms`);
      }
    }
  }
  assert.deepEqual(
    whole.kurtosis,
    Float64Array.from(weights, (w) => weightMoments(w).kurtosis),
    'the kurtosis of a layer read whole is weightMoments of it',
  );
});

test('half-precision weights (F16, BF16) read in panels give what whole layers give', async () => {
  const rng = new Rng(12);
  const base = Float32Array.from({ length: SIDE * SIDE }, () => 0.05 * rng.normal());
  for (const dtype of ['float16', 'bfloat16'] as const) {
    const dir = tempDir();
    const toWords = (w: Float32Array): number[] =>
      dtype === 'float16' ? Array.from(w, floatToHalf) : Array.from(new Uint32Array(Float32Array.from(w).buffer), (bits) => bits >>> 16);
    for (let i = 0; i < 4; i++)
      writeSafetensors(join(dir, `h${i}.safetensors`), {
        'big.weight': tensor(dtype, [SIDE, SIDE], toWords(Float32Array.from(base, (v) => v + 0.01 * i * rng.normal()))),
      });
    const whole = await measure(dir, {}, wholeOnly);
    const paneled = await measure(dir, { panelBytes: 4 * 4 * MOMENT_CHUNK, workers: 1 });
    assert.ok(whole.d[1]! > 0, dtype);
    assert.ok(worstRelative(paneled.d, whole.d) <= 1e-12, `${dtype}: distances`);
    assert.deepEqual(paneled.kurtosis, whole.kurtosis, `${dtype}: kurtosis`);
    assert.deepEqual(paneled.meanSquare, whole.meanSquare, `${dtype}: norms`);
  }
});

test('the panel budget is checked before any work', async () => {
  const { dir } = zoo();
  for (const panelBytes of [0, 100, 5000.5])
    await assert.rejects(
      measure(dir, { panelBytes }),
      (e: unknown) => e instanceof UserError && /panelBytes must be an integer of at least 4096/.test(e.message),
    );
});
