import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { recoverLineage } from '../../src/lineage/recover.js';
import { measureModels, spectralCost, SPECTRAL_BUDGET_FLOPS, DEFAULT_SCHATTEN } from '../../src/lineage/measure.js';
import { REFERENCE_OPTIONS } from '../../src/lineage/reference.js';
import { buildForest } from '../../src/lineage/forest.js';
import { scoreForest } from '../../src/lineage/truth.js';
import { closeSources, openSources } from '../../src/lineage/sources.js';
import { writeSyntheticZoo } from '../../src/lineage/synthetic.js';
import { forestDot, forestText } from '../../src/lineage/render.js';
import { tempDir } from '../helpers/paths.js';
import { assertUserError } from '../helpers/assertions.js';

test('a synthetic forest is recovered: placement exact, D as defined, every node in one tree', async () => {
  const dir = tempDir();
  const zoo = writeSyntheticZoo(dir, { trees: 3, children: 2, depth: 2, layers: 2, size: 24, seed: 1, extras: true });
  const forest = await recoverLineage([dir], { clusters: 3, lambda: 0 });
  assert.equal(forest.nodes.length, 21);
  assert.equal(forest.roots.length, 3, 'one root per tree');
  assert.equal(forest.edges.length, 18);
  assert.deepEqual(
    forest.selection.layers.map((l) => l.name),
    ['layer0.weight', 'layer1.weight'],
  );
  const s = scoreForest(forest, zoo.truth);
  assert.equal(s.clustering, 1);
  assert.equal(s.undirected, 1, 'random-walk updates, no direction penalty: nearest neighbours are the true edges');
  assert.ok(s.directed >= 0 && s.directed <= 1);
  assert.deepEqual(forest.settings.clusters, { k: 3, estimated: false });
  assert.match(forestText(forest), /tree 1 \(7 models\)/);
  assert.match(forestDot(forest, zoo.truth.edges), /digraph lineage/);
  // the picture says what its colours mean; the wrong-edge entry only when a truth is given
  assert.match(forestDot(forest, zoo.truth.edges), /label="green box: a recovered root; edge label: its cost; red edge: not in the truth/);
  assert.doesNotMatch(forestDot(forest), /red edge/);
});

test('D is the mean over layers of RMS differences; kurtosis is the per-layer sum; direction options change the cost', async () => {
  const dir = tempDir();
  writeSyntheticZoo(dir, { trees: 1, children: 2, depth: 1, layers: 2, size: 8, seed: 2 });
  const ms = openSources([dir]);
  const m = await measureModels(ms, { mode: 'ft' });
  assert.equal(m.mode, 'ft');
  const n = ms.length;
  const w = ms.map((s) => ['layer0.weight', 'layer1.weight'].map((l) => s.read(l)));
  const rms = (a: Float32Array, b: Float32Array): number => Math.sqrt(a.reduce((t, x, i) => t + (x - b[i]!) ** 2, 0) / a.length);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      const want = (rms(w[i]![0]!, w[j]![0]!) + rms(w[i]![1]!, w[j]![1]!)) / 2;
      assert.ok(Math.abs(m.d[i * n + j]! - want) <= 1e-9 * Math.max(want, 1e-30), `D[${i},${j}]`);
    }
  closeSources(ms);
  const hi = buildForest(m, { clusters: 1, signal: 'kurtosis', direction: 'parent-higher' });
  const lo = buildForest(m, { clusters: 1, signal: 'kurtosis', direction: 'parent-lower' });
  const auto = buildForest(m, { clusters: 1, signal: 'kurtosis', direction: 'auto' });
  assert.equal(hi.settings.signal, 'kurtosis');
  // the default direction signal is the weights' norm, parent lower
  const def = buildForest(m, { clusters: 1 });
  assert.deepEqual([def.settings.signal, def.settings.direction, def.settings.placement], ['norm', 'parent-lower', 'rooted-mst']);
  // rooted MST: the root is the lowest-norm model of the cluster
  assert.equal(def.roots[0], m.names[[...m.meanSquare].indexOf(Math.min(...m.meanSquare))]);
  for (const e of def.edges) {
    const [u, v] = [m.names.indexOf(e.parent), m.names.indexOf(e.child)];
    const penalised = m.meanSquare[v]! < m.meanSquare[u]!;
    assert.ok(Math.abs(e.cost - e.distance) < 1e-15 === !penalised, 'the penalty falls on edges whose child has the lower norm');
  }
  const total = (f: typeof hi): number => f.edges.reduce((s, e) => s + e.cost, 0);
  assert.equal(total(auto), Math.min(total(hi), total(lo)));
  // with lambda = 0 the direction cannot matter
  assert.equal(
    total(buildForest(m, { clusters: 1, lambda: 0, direction: 'parent-higher' })),
    total(buildForest(m, { clusters: 1, lambda: 0, direction: 'parent-lower' })),
  );
  assertUserError(() => buildForest(m, { clusters: 0 }), 'lineage: clusters must', 'from 1 to 3');
  assertUserError(() => buildForest(m, { clusters: 4 }), 'lineage: clusters must');
});

test('low-rank mode: D is the sum of ranks; LoRA-like families are recovered and K is estimated', async () => {
  const dir = tempDir();
  const zoo = writeSyntheticZoo(dir, { trees: 2, children: 2, depth: 2, layers: 1, size: 16, seed: 3, rank: 2 });
  const forest = await recoverLineage([dir], { mode: 'lowrank' });
  assert.equal(forest.settings.clusters.estimated, true);
  assert.equal(forest.settings.clusters.k, 2);
  const s = scoreForest(forest, zoo.truth);
  assert.equal(s.clustering, 1);
  assert.equal(s.undirected, 1);
  // a parent-child pair differs by rank 2, grandparent-grandchild by rank 4
  const e = forest.edges.find((x) => x.parent === 't0' || x.child === 't0')!;
  assert.equal(e.distance, 2);
});

test('recoverLineage refuses too few models and reports missing layers', async () => {
  const dir = tempDir();
  writeSyntheticZoo(dir, { trees: 1, children: 1, depth: 1, layers: 1, size: 4, seed: 1 });
  await assert.rejects(recoverLineage([join(dir, 't0.safetensors')]), /at least 2 models/);
});

test('mode auto: spectral for small matrices, ft when the spectral work would be too large; the reference options', async () => {
  const small = [{ name: 'a', shape: [128, 128], size: 128 * 128 }];
  const big = [{ name: 'a', shape: [768, 768], size: 768 * 768 }];
  assert.ok(spectralCost(small, 63) <= SPECTRAL_BUDGET_FLOPS);
  assert.ok(spectralCost(big, 105) > SPECTRAL_BUDGET_FLOPS);
  const dir = tempDir();
  writeSyntheticZoo(dir, { trees: 1, children: 2, depth: 1, layers: 1, size: 8, seed: 4 });
  const f = await recoverLineage([dir], { clusters: 1 });
  assert.equal(f.settings.mode, 'spectral');
  assert.equal(f.settings.schatten, DEFAULT_SCHATTEN);
  const r = await recoverLineage([dir], { ...REFERENCE_OPTIONS, clusters: 1 });
  assert.deepEqual(
    [r.settings.mode, r.settings.signal, r.settings.direction, r.settings.lambda, r.settings.schatten, r.settings.placement],
    ['ft', 'kurtosis', 'parent-higher', 0.3, null, 'arborescence'],
  );
});
