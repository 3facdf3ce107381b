import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildForest } from '../../src/lineage/forest.js';
import type { Measurements } from '../../src/lineage/measure.js';
import { LINEAGE_MODES, MODES, type LineageMode } from '../../src/lineage/modes.js';

/** Three models in a chain a -> b -> c by distance, with a signal that grows along it. */
function measurements(mode: LineageMode): Measurements {
  const d = Float64Array.from([0, 1, 2, 1, 0, 1, 2, 1, 0]);
  return {
    names: ['a', 'b', 'c'],
    paths: ['a', 'b', 'c'],
    mode,
    schatten: null,
    selection: { rule: 'test', layers: [{ name: 'w', shape: [2, 2], size: 4 }] },
    d,
    clusterD: d,
    clusterDistance: 'selected',
    kurtosis: Float64Array.from([3, 2, 1]),
    meanSquare: Float64Array.from([1, 2, 3]),
    stats: { layersRead: 1, bytesRead: 48, bytesReread: 0, seconds: 0, repairedPairs: 0 },
  };
}

test("each mode's forest defaults come from its entry in the mode table", () => {
  const expected: Record<LineageMode, [string, string, string]> = {
    ft: ['norm', 'parent-lower', 'rooted-mst'],
    lowrank: ['kurtosis', 'auto', 'arborescence'],
    spectral: ['norm', 'parent-lower', 'rooted-mst'],
  };
  for (const mode of LINEAGE_MODES) {
    const f = buildForest(measurements(mode), { clusters: 1 });
    assert.deepEqual([f.settings.signal, f.settings.direction, f.settings.placement], expected[mode], mode);
    assert.deepEqual({ signal: f.settings.signal, direction: f.settings.direction, placement: f.settings.placement }, MODES[mode].defaults, mode);
    // 'auto' ties on this symmetric chain; a fixed direction roots it at the lowest norm (the parent)
    if (f.settings.direction !== 'auto') assert.deepEqual(f.edges.map((e) => `${e.parent}->${e.child}`).sort(), ['a->b', 'b->c'], mode);
  }
});

test('a signal given without a direction takes the direction that signal implies, in every mode', () => {
  for (const mode of LINEAGE_MODES) {
    assert.equal(buildForest(measurements(mode), { clusters: 1, signal: 'kurtosis' }).settings.direction, 'parent-higher', mode);
    assert.equal(buildForest(measurements(mode), { clusters: 1, signal: 'norm' }).settings.direction, 'parent-lower', mode);
    assert.equal(buildForest(measurements(mode), { clusters: 1, signal: 'norm', direction: 'parent-higher' }).settings.direction, 'parent-higher', mode);
  }
});

test('only the matrix modes need 2-D layers, only spectral uses the Schatten exponent, low-rank clusters on its own distance', () => {
  assert.deepEqual(
    LINEAGE_MODES.map((m) => [m, MODES[m].matrices, MODES[m].schatten, MODES[m].referenceClustering]),
    [
      ['ft', false, false, true],
      ['lowrank', true, false, false],
      ['spectral', true, true, true],
    ],
  );
});
