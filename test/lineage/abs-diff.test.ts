import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { absDiffBlocks, meanAbsDistances } from '../../src/lineage/abs-diff.js';
import { measureModels, type MeasureOptions } from '../../src/lineage/measure.js';
import { buildForest } from '../../src/lineage/forest.js';
import { closeSources, openSources } from '../../src/lineage/sources.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { float32 } from '../../src/onnx/tensor.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/random.js';
import { tempDir } from '../helpers/paths.js';

/** The plain per-pair loop in float64, one sequential sum per pair (what the kernel replaces). */
function directMeanAbs(stack: Float32Array, n: number, p: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      let s = 0;
      for (let k = 0; k < p; k++) s += Math.abs(stack[i * p + k]! - stack[j * p + k]!);
      out[i * n + j] = out[j * n + i] = s / p;
    }
  return out;
}

/** Largest relative difference over the pairs; the diagonals must both be 0. */
function worstRelative(got: Float64Array, want: Float64Array, n: number): number {
  let worst = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      const w = want[i * n + j]!,
        g = got[i * n + j]!;
      if (w === 0) assert.equal(g, 0, `pair ${i}, ${j}`);
      else worst = Math.max(worst, Math.abs(g - w) / w);
    }
  return worst;
}

test('mean |dW| distances of a small stack', () => {
  const stack = Float32Array.from([0, 0, 0, 0, 1, -1, 2, 2, 3, 3, 3, 3]);
  const d = meanAbsDistances(stack, 3, 4);
  assert.equal(d[1], (1 + 1 + 2 + 2) / 4);
  assert.equal(d[2], 3);
  assert.equal(d[5], (2 + 4 + 1 + 1) / 4);
  assert.equal(d[3], d[1]);
  assert.deepEqual([d[0], d[4], d[8]], [0, 0, 0]);
});

test('the blocked SIMD sums equal the direct float64 loop within 1e-12, on random and near-identical stacks of every shape', () => {
  const rng = new Rng(11);
  const cols = absDiffBlocks(7, 1e6).cols;
  // odd and even widths, one column, a last block narrower (and odd) than the rest, tiles cut by n
  const shapes: [number, number][] = [
    [2, 1],
    [3, 5],
    [5, 257],
    [7, 3 * cols + 7],
    [12, 1000],
  ];
  assert.ok(absDiffBlocks(7, 3 * cols + 7).count === 4, 'the layer spans several blocks');
  for (const [n, p] of shapes) {
    const random = Float32Array.from({ length: n * p }, () => rng.normal());
    // fine-tunes of one base 1e-6 apart (relative): each |dW| is tiny next to the weights
    const base = Float32Array.from({ length: p }, () => 0.05 * rng.normal() + 0.01);
    const near = Float32Array.from({ length: n * p }, (_, k) => base[k % p]! + 5e-8 * rng.normal());
    for (const [what, stack] of [
      ['random', random],
      ['near-identical', near],
    ] as const) {
      const got = meanAbsDistances(stack, n, p);
      const worst = worstRelative(got, directMeanAbs(stack, n, p), n);
      assert.ok(worst < 1e-12, `${what} ${n} x ${p}: worst relative difference ${worst}`);
    }
  }
  // the kernels' memory grows for a bigger block and still agrees
  const big = Float32Array.from({ length: 40 * 3000 }, () => rng.normal());
  assert.ok(worstRelative(meanAbsDistances(big, 40, 3000), directMeanAbs(big, 40, 3000), 40) < 1e-12);
});

const SIDE = 500;

/** A fine-tuning tree written as safetensors (a selected square layer and a non-square one that only the clustering distance reads); the weights too. */
function zoo(poison?: number): { dir: string; big: Float32Array[]; head: Float32Array[] } {
  const dir = tempDir();
  const rng = new Rng(3);
  const noise = (w: Float32Array, a: number): Float32Array => Float32Array.from(w, (v) => v + a * rng.normal());
  const big: Float32Array[] = [Float32Array.from({ length: SIDE * SIDE }, () => 0.05 * rng.normal())];
  const head: Float32Array[] = [Float32Array.from({ length: 3 * 40 }, () => rng.normal())];
  for (let c = 0; c < 2; c++) {
    big.push(noise(big[0]!, 1e-3));
    head.push(noise(head[0]!, 0.1));
    const parent = big.length - 1;
    for (let g = 0; g < 3; g++) {
      big.push(noise(big[parent]!, 1e-5));
      head.push(noise(head[parent]!, 0.01));
    }
  }
  if (poison !== undefined) head[poison]![5] = Infinity;
  big.forEach((w, i) =>
    writeSafetensors(join(dir, `m${String(i).padStart(2, '0')}.safetensors`), {
      'big.weight': float32([SIDE, SIDE], w),
      'head.weight': float32([3, 40], head[i]!),
    }),
  );
  return { dir, big, head };
}

async function measure(dir: string, opts: MeasureOptions): Promise<Awaited<ReturnType<typeof measureModels>>> {
  const models = openSources([dir]);
  try {
    return await measureModels(models, { mode: 'ft', session: { threads: 1 }, ...opts });
  } finally {
    closeSources(models);
  }
}

test('the clustering distance: 0, 1 and 2 workers give the same bits, equal to the direct loop, and the same forest', async () => {
  const { dir, big, head } = zoo();
  const n = big.length;
  const stackOf = (rows: Float32Array[]): Float32Array => {
    const s = new Float32Array(rows.length * rows[0]!.length);
    rows.forEach((r, i) => s.set(r, i * r.length));
    return s;
  };
  const a = directMeanAbs(stackOf(big), n, SIDE * SIDE),
    b = directMeanAbs(stackOf(head), n, 3 * 40);
  const direct = Float64Array.from(a, (v, k) => v / 2 + b[k]! / 2);
  const alone = await measure(dir, { workers: 0 });
  assert.equal(alone.clusterDistance, 'reference');
  assert.deepEqual(
    alone.selection.layers.map((l) => l.name),
    ['big.weight'],
    'the non-square layer is read for the clustering distance only',
  );
  const worst = worstRelative(alone.clusterD, direct, n);
  assert.ok(worst < 1e-12, `worst relative difference ${worst}`);
  for (const workers of [1, 2]) {
    const pooled = await measure(dir, { workers });
    assert.deepEqual(pooled.clusterD, alone.clusterD, `${workers} workers`);
    assert.deepEqual(pooled.d, alone.d);
  }
  // Ward on the direct loop's distances recovers the same forest
  for (const clusters of [undefined, 2]) {
    const fromKernel = buildForest(alone, { clusters });
    const fromDirect = buildForest({ ...alone, clusterD: direct }, { clusters });
    assert.deepEqual(fromKernel.clusters, fromDirect.clusters);
    assert.deepEqual(fromKernel.edges, fromDirect.edges);
    assert.deepEqual(fromKernel.roots, fromDirect.roots);
  }
});

test('a non-finite weight in a layer read only for the clustering distance is named, with or without workers', async () => {
  const { dir } = zoo(4);
  for (const workers of [0, 2])
    await assert.rejects(
      measure(dir, { workers }),
      (e: unknown) => e instanceof UserError && /layer "head.weight" of m04 holds non-finite values/.test(e.message),
    );
});
