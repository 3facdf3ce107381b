import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GramEngine, REPAIR_RATIO, directSquaredDistance, squaredDistances, meanAbsDistances } from '../../src/lineage/gram.js';
import { Rng } from '../../src/util/random.js';

/** The plain per-pair loop, in float64, as the reference computes it. */
function directAll(stack: Float32Array, n: number, p: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < p; k++) {
        const d = stack[i * p + k]! - stack[j * p + k]!;
        s += d * d;
      }
      out[i * n + j] = s;
    }
  return out;
}

test('blockwise Gram distances agree with the direct per-pair loop to 1e-6 relative, near-identical models included', async () => {
  const rng = new Rng(21);
  const n = 12,
    p = 70_000;
  const base = Float32Array.from({ length: p }, () => 0.05 * rng.normal() + 0.01);
  const stack = new Float32Array(n * p);
  for (let i = 0; i < n; i++) {
    // relative update sizes from 1e-7 (near-identical: cancellation) to 1 (unrelated)
    const scale = [0, 1e-7, 1e-6, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 0.3, 1, 1][i]!;
    for (let k = 0; k < p; k++) stack[i * p + k] = base[k]! + scale * 0.05 * rng.normal();
  }
  const engine = await GramEngine.create({ threads: 1 });
  try {
    const { d2, repaired } = await squaredDistances(engine, stack, n, p);
    const want = directAll(stack, n, p);
    let worst = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        if (i === j) {
          assert.equal(d2[i * n + j], 0);
          continue;
        }
        const w = Math.sqrt(want[i * n + j]!),
          g = Math.sqrt(d2[i * n + j]!);
        if (w === 0) {
          assert.equal(g, 0);
          continue;
        }
        worst = Math.max(worst, Math.abs(g - w) / w);
      }
    assert.ok(worst < 1e-6, `worst relative error ${worst}`);
    assert.ok(repaired > 0, 'near pairs were recomputed directly');
    assert.ok(repaired < (n * (n - 1)) / 2, 'far pairs come from the Gram product');
    // without the repair, near-identical pairs would be wrong: show the Gram estimate alone is not enough
    const g = await engine.gram(stack, n, p);
    const raw = g[0]! + g[1 * n + 1]! - 2 * g[1]!;
    const exact = want[1]!;
    assert.ok(raw < REPAIR_RATIO * (g[0]! + g[n + 1]!), 'the pair at 1e-7 falls under the repair criterion');
    assert.ok(Math.abs(raw - exact) / exact > 1e-6 || exact === 0, `cancellation is real: gram ${raw} vs exact ${exact}`);
  } finally {
    await engine.release();
  }
});

test('the Gram product is exact across column blocks (p larger than one block)', async () => {
  const rng = new Rng(4);
  const n = 3,
    p = 1_500_000; // 32 MiB / (8 x 3) = 1,398,101 columns per block -> two blocks
  const stack = Float32Array.from({ length: n * p }, () => rng.normal());
  const engine = await GramEngine.create({ threads: 1 });
  try {
    const g = await engine.gram(stack, n, p);
    let dot = 0;
    for (let k = 0; k < p; k++) dot += stack[k]! * stack[2 * p + k]!;
    assert.ok(Math.abs(g[2]! - dot) <= 1e-9 * Math.sqrt(p), `${g[2]} vs ${dot}`);
    assert.ok(Math.abs(directSquaredDistance(stack, 0, 2, p) - (g[0]! + g[8]! - 2 * g[2]!)) / directSquaredDistance(stack, 0, 2, p) < 1e-9);
  } finally {
    await engine.release();
  }
});

test('mean |dW| distances', () => {
  const stack = Float32Array.from([0, 0, 0, 0, 1, -1, 2, 2, 3, 3, 3, 3]);
  const d = meanAbsDistances(stack, 3, 4);
  assert.equal(d[1], (1 + 1 + 2 + 2) / 4);
  assert.equal(d[2], 3);
  assert.equal(d[5], (2 + 4 + 1 + 1) / 4);
  assert.equal(d[3], d[1]);
});
