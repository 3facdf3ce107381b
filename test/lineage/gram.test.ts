import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GramEngine, TARGET_RELATIVE_ERROR, directSquaredDistance, repairRatio, squaredDistances } from '../../src/lineage/gram.js';
import { Rng } from '../../src/util/random.js';

/** The plain per-pair loop, in float64, as the reference computes it. */
function directAll(stack: Float32Array, n: number, p: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      let s = 0;
      for (let k = 0; k < p; k++) {
        const d = stack[i * p + k]! - stack[j * p + k]!;
        s += d * d;
      }
      out[i * n + j] = out[j * n + i] = s;
    }
  return out;
}

/** Largest relative difference of the distances sqrt(d2) over all pairs i != j. */
function worstRelative(got: Float64Array, want: Float64Array, n: number): number {
  let worst = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      if (i === j) {
        assert.equal(got[i * n + j], 0);
        continue;
      }
      const w = Math.sqrt(want[i * n + j]!),
        g = Math.sqrt(got[i * n + j]!);
      if (w === 0) assert.equal(g, 0);
      else worst = Math.max(worst, Math.abs(g - w) / w);
    }
  return worst;
}

/** The Gram distances of `stack`, checked against the float64 direct loop to 1e-9 relative; the direct ones and the repair count. */
async function checkedDistances(engine: GramEngine, stack: Float32Array, n: number, p: number): Promise<{ want: Float64Array; repaired: number }> {
  const { d2, repaired } = await squaredDistances(engine, stack, n, p);
  const want = directAll(stack, n, p);
  const worst = worstRelative(d2, want, n);
  assert.ok(worst < 1e-9, `worst relative error ${worst}`);
  return { want, repaired };
}

/**
 * A fine-tuning tree of near-identical models, the hard case: a parent, children that
 * differ from it by `step` relative, grandchildren that differ from their child as much.
 */
function nearIdenticalZoo(rng: Rng, p: number, step: number): { stack: Float32Array; n: number } {
  const parent = Float32Array.from({ length: p }, () => 0.05 * rng.normal() + 0.01);
  const rows: Float32Array[] = [parent];
  const perturb = (w: Float32Array): Float32Array => Float32Array.from(w, (v) => v + step * 0.05 * rng.normal());
  for (let c = 0; c < 3; c++) {
    const child = perturb(parent);
    rows.push(child);
    for (let g = 0; g < 3; g++) rows.push(perturb(child));
  }
  const stack = new Float32Array(rows.length * p);
  rows.forEach((r, i) => stack.set(r, i * p));
  return { stack, n: rows.length };
}

test('near-identical models (children 1e-4 from the parent): Gram distances equal the float64 direct loop to 1e-9, with no pair repaired', async () => {
  const rng = new Rng(17);
  const p = 100_000;
  const { stack, n } = nearIdenticalZoo(rng, p, 1e-4);
  const engine = await GramEngine.create({ threads: 1 });
  try {
    const { want, repaired } = await checkedDistances(engine, stack, n, p);
    // the differences to the reference keep the Gram itself exact enough: nothing needed the direct loop
    assert.equal(repaired, 0);

    // the same models behind an all-zero first row: the Gram of the raw weights, whose d2 = norms - 2 a.b
    // cancels ~8 digits here; this is what the reference subtraction avoids
    const raw = new Float32Array((n + 1) * p);
    raw.set(stack, p);
    const g = await engine.gram(raw, n + 1, p);
    let rawWorst = 0;
    for (let i = 1; i <= n; i++)
      for (let j = i + 1; j <= n; j++) {
        const est = g[i * (n + 1) + i]! + g[j * (n + 1) + j]! - 2 * g[i * (n + 1) + j]!;
        const exact = want[(i - 1) * n + (j - 1)]!;
        rawWorst = Math.max(rawWorst, Math.abs(Math.sqrt(Math.max(0, est)) - Math.sqrt(exact)) / Math.sqrt(exact));
      }
    assert.ok(rawWorst > 1e-7, `without the reference the Gram loses digits (worst ${rawWorst})`);
  } finally {
    await engine.release();
  }
});

test('models at every distance from each other: Gram distances equal the direct loop to 1e-9; only pairs closer to each other than to the reference are repaired', async () => {
  const rng = new Rng(21);
  const n = 13,
    p = 70_000;
  const unrelated = Float32Array.from({ length: p }, () => 0.05 * rng.normal());
  const base = Float32Array.from({ length: p }, () => 0.05 * rng.normal() + 0.01);
  const stack = new Float32Array(n * p);
  stack.set(unrelated, 0); // the reference row: far from all the others, so their near pairs cancel
  for (let i = 1; i < n; i++) {
    // relative update sizes from 1e-7 (near-identical) to 1 (unrelated)
    const scale = [0, 1e-7, 1e-6, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 0.3, 1, 1][i - 1]!;
    for (let k = 0; k < p; k++) stack[i * p + k] = base[k]! + scale * 0.05 * rng.normal();
  }
  const engine = await GramEngine.create({ threads: 1 });
  try {
    const { want, repaired } = await checkedDistances(engine, stack, n, p);
    assert.ok(repaired > 0, 'near pairs far from the reference were recomputed directly');
    assert.ok(repaired < ((n - 1) * (n - 2)) / 2, 'far pairs come from the Gram product');
    // the pair at 1e-7 falls under the criterion and its Gram estimate alone would be wrong
    const g = await engine.gram(stack, n, p);
    const norms = g[1 * n + 1]! + g[2 * n + 2]!;
    const est = norms - 2 * g[1 * n + 2]!;
    const exact = want[1 * n + 2]!;
    assert.ok(est < repairRatio(p) * norms, 'the near pair falls under the repair criterion');
    assert.ok(Math.abs(est - exact) / exact > 1e-9, `cancellation is real: gram ${est} vs exact ${exact}`);
  } finally {
    await engine.release();
  }
});

test('the Gram product is exact across column blocks (p larger than one block) and is taken of the differences to the first row', async () => {
  const rng = new Rng(4);
  const p = 400_000; // 4 MiB / (8 x 3) = 174,762 columns per block -> three blocks
  const engine = await GramEngine.create({ threads: 1 });
  try {
    for (const n of [2, 3, 6]) {
      // the rows go to the graph in two halves: every entry, in either half or across, is checked
      const stack = Float32Array.from({ length: n * p }, () => rng.normal());
      const g = await engine.gram(stack, n, p);
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) {
          let dot = 0;
          for (let k = 0; k < p; k++) dot += (stack[i * p + k]! - stack[k]!) * (stack[j * p + k]! - stack[k]!);
          assert.ok(Math.abs(g[i * n + j]! - dot) <= 1e-9 * Math.sqrt(p), `n ${n}, G[${i},${j}] ${g[i * n + j]} vs ${dot}`);
          if (i === 0 || j === 0) assert.equal(g[i * n + j], 0, 'the reference row differs from itself by nothing');
          assert.equal(g[i * n + j], g[j * n + i], 'symmetric');
        }
      const direct = directSquaredDistance(stack, 1, n - 1, p);
      if (n > 2) assert.ok(Math.abs(direct - (g[n + 1]! + g[n * n - 1]! - 2 * g[2 * n - 1]!)) / direct < 1e-9);
    }
    assert.deepEqual(await engine.gram(new Float32Array(5), 1, 5), Float64Array.of(0), 'one row: nothing to compare');
    // one column, an odd width: the SIMD differences take two columns a step, the last odd one is taken apart
    for (const width of [1, 7]) {
      const stack = Float32Array.from({ length: 4 * width }, () => rng.normal());
      const g = await engine.gram(stack, 4, width);
      for (let i = 0; i < 4; i++)
        for (let j = 0; j < 4; j++) {
          let dot = 0;
          for (let k = 0; k < width; k++) dot += (stack[i * width + k]! - stack[k]!) * (stack[j * width + k]! - stack[k]!);
          assert.ok(Math.abs(g[i * 4 + j]! - dot) <= 1e-12 * (1 + Math.abs(dot)), `width ${width}, G[${i},${j}]`);
        }
    }
  } finally {
    await engine.release();
  }
});

test('the repair threshold grows with the layer size like the rounding of its sums', () => {
  assert.ok(Math.abs(repairRatio(1e6) - (1000 * 2 ** -53) / TARGET_RELATIVE_ERROR) < 1e-18);
  assert.ok(repairRatio(4e6) > repairRatio(1e6));
});
