import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { float32 } from '../../src/onnx/tensor.js';
import { closeSources, openSources } from '../../src/lineage/sources.js';
import { measureModels, type MeasureOptions } from '../../src/lineage/measure.js';
import { gramBlocks } from '../../src/lineage/gram.js';
import { LayerPool } from '../../src/lineage/layer-pool.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/random.js';
import { tempDir } from '../helpers/paths.js';

const SIDE = 600; // 12 models x 600 x 600: three Gram column blocks, so blocks can come back out of order

/** A small fine-tuning tree as safetensors files: a base, children, grandchildren; `poison` puts a NaN in one model. */
function zoo(poison?: number): string {
  const dir = tempDir();
  const rng = new Rng(5);
  const noise = (w: Float32Array, a: number): Float32Array => Float32Array.from(w, (v) => v + a * rng.normal());
  const base: { big: Float32Array; small: Float32Array } = {
    big: Float32Array.from({ length: SIDE * SIDE }, () => 0.05 * rng.normal()),
    small: Float32Array.from({ length: 64 }, () => rng.normal()),
  };
  const models: (typeof base)[] = [base];
  for (let c = 0; c < 3; c++) {
    const child = { big: noise(base.big, 1e-3), small: noise(base.small, 0.1) };
    models.push(child);
    for (let g = 0; g < 3; g++) models.push({ big: noise(child.big, 1e-5), small: noise(child.small, 0.01) });
  }
  models.forEach((m, i) => {
    if (i === poison) m.big[77] = NaN;
    writeSafetensors(join(dir, `m${String(i).padStart(2, '0')}.safetensors`), {
      'big.weight': float32([SIDE, SIDE], m.big),
      'small.weight': float32([8, 8], m.small),
    });
  });
  return dir;
}

async function measure(dir: string, opts: MeasureOptions): Promise<Awaited<ReturnType<typeof measureModels>>> {
  const models = openSources([dir]);
  try {
    return await measureModels(models, { session: { threads: 1 }, ...opts });
  } finally {
    closeSources(models);
  }
}

test('worker threads give bit-for-bit the same distances, kurtosis and norms as the main thread, whatever their number', async () => {
  assert.ok(gramBlocks(12, SIDE * SIDE).count >= 3, 'the big layer spans several column blocks');
  const dir = zoo();
  for (const mode of ['ft', 'spectral'] as const) {
    const alone = await measure(dir, { mode, workers: 0, layers: mode === 'spectral' ? ['small.weight'] : undefined });
    for (const workers of [1, 3]) {
      const pooled = await measure(dir, { mode, workers, layers: mode === 'spectral' ? ['small.weight'] : undefined });
      assert.deepEqual(pooled.d, alone.d, `${mode}, ${workers} workers: distances`);
      assert.deepEqual(pooled.clusterD, alone.clusterD);
      assert.deepEqual(pooled.kurtosis, alone.kurtosis);
      assert.deepEqual(pooled.meanSquare, alone.meanSquare);
      assert.equal(pooled.stats.repairedPairs, alone.stats.repairedPairs);
    }
    assert.ok(alone.d[1]! > 0 && alone.kurtosis.every(Number.isFinite));
  }
});

test('worker threads: a non-finite weight is named as on the main thread; bad worker counts are refused before any work', async () => {
  const dir = zoo(7);
  for (const workers of [0, 2])
    await assert.rejects(
      measure(dir, { mode: 'ft', workers }),
      (e: unknown) => e instanceof UserError && /layer "big.weight" of m07 holds non-finite values/.test(e.message),
    );
  for (const workers of [-1, 1.5, 1000])
    await assert.rejects(measure(dir, { mode: 'ft', workers }), (e: unknown) => e instanceof UserError && /workers must be an integer/.test(e.message));
});

test('a layer abandoned halfway (a model failed to read) releases the workers', async () => {
  const pool = await LayerPool.create(2, { gram: true, session: { threads: 1 } });
  const stack = pool.sharedFloats(4 * 100);
  const run = pool.begin(stack, 4, 100, { stats: true, gram: true, absDiff: true }, pool.sharedMoments(4));
  run.rowReady(0);
  // the workers wait for rows 1-3, which never come: close() must not hang
  await pool.close();
});
