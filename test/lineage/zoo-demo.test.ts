import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runLineageDemo, type LineageDemoResult } from '../../src/report/demo-lineage.js';
import { tempDir } from '../helpers/paths.js';

test('the lineage demo makes two small zoos on the sample, recovers them and scores the recovery', async () => {
  const outDir = join(tempDir(), 'lineage');
  const r = await runLineageDemo({ outDir, rootSteps: 60, steps: 30, threads: 1 });
  assert.equal(r.models, 14);
  assert.equal(r.edges, 12);
  for (const s of [r.full, r.lowrank]) {
    assert.equal(s.trueEdges, 12);
    assert.equal(s.trueTrees, 2);
    for (const v of [s.directed, s.undirected, s.clustering]) assert.ok(v >= 0 && v <= 1);
    assert.ok(s.directed <= s.undirected);
    assert.ok(existsSync(join(s.zoo, 'truth.json')));
  }
  // LoRA updates have rank <= 4 per layer while unrelated trees differ at full rank: the trees separate exactly
  assert.equal(r.lowrank.clustering, 1);
  const saved = JSON.parse(readFileSync(join(outDir, 'results.json'), 'utf8')) as LineageDemoResult;
  assert.equal(saved.full.directed, r.full.directed);
});
