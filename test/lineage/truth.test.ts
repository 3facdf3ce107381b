import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adjustedRand, checkTruth, hungarian, loadTruth, matchedFraction, scoreForest } from '../../src/lineage/truth.js';
import { tempDir } from '../helpers/paths.js';
import { assertUserError } from '../helpers/assertions.js';

const names = ['r', 'a', 'b', 'c', 's', 'x'];
const truth = {
  edges: [
    ['r', 'a'],
    ['r', 'b'],
    ['a', 'c'],
    ['s', 'x'],
  ] as [string, string][],
};

test('scores: directed, undirected and clustering accuracy', () => {
  const forest = {
    // predicted: r->a right, b->r reversed, a->c right, x->s reversed; clusters {r,a,b,c} {s,x}
    nodes: names.map((name) => ({ name, cluster: ['s', 'x'].includes(name) ? 1 : 0 })),
    edges: [
      { parent: 'r', child: 'a' },
      { parent: 'b', child: 'r' },
      { parent: 'a', child: 'c' },
      { parent: 'x', child: 's' },
    ],
  };
  const s = scoreForest(forest, truth);
  assert.equal(s.directed, 2 / 4);
  assert.equal(s.undirected, 4 / 4);
  assert.equal(s.clustering, 1);
  assert.equal(s.ari, 1);
  assert.equal(s.trueTrees, 2);
  // one model in the wrong cluster: 5 of 6 matched
  const moved = { ...forest, nodes: forest.nodes.map((n) => (n.name === 'c' ? { ...n, cluster: 1 } : n)) };
  assert.equal(scoreForest(moved, truth).clustering, 5 / 6);
  assert.ok(scoreForest(moved, truth).ari < 1);
});

test('clustering helpers: matching, Hungarian, ARI', () => {
  assert.equal(matchedFraction([0, 0, 1, 1], [1, 1, 0, 0]), 1, 'labels are arbitrary');
  assert.equal(matchedFraction([0, 0, 0, 0], [0, 0, 1, 1]), 0.5);
  assert.equal(matchedFraction([0, 1, 2, 3], [0, 0, 1, 1]), 0.5);
  assert.deepEqual(
    hungarian([
      [4, 1, 3],
      [2, 0, 5],
      [3, 2, 2],
    ]),
    [1, 0, 2],
  );
  assert.equal(adjustedRand([0, 0, 1, 1], [0, 0, 1, 1]), 1);
  // sklearn: adjusted_rand_score([0,0,1,1],[0,0,1,2]) = 0.5714285714285715
  assert.ok(Math.abs(adjustedRand([0, 0, 1, 1], [0, 0, 1, 2]) - 0.5714285714285715) < 1e-12);
});

test('bad truth files are refused with a clear message', () => {
  const dir = tempDir();
  const put = (s: string): string => {
    const p = join(dir, `t${Math.random()}.json`);
    writeFileSync(p, s);
    return p;
  };
  assert.deepEqual(loadTruth(put(JSON.stringify(truth)), names).edges.length, 4);
  assertUserError(() => loadTruth(join(dir, 'missing.json'), names), 'missing.json', 'ENOENT');
  assertUserError(() => loadTruth(put('{nope'), names), 'not valid JSON');
  assertUserError(() => loadTruth(put('{"edge": []}'), names), '"edges"');
  assertUserError(() => loadTruth(put('{"edges": [["r", "zz"]]}'), names), '"zz"', 'not one of the 6 models');
  assertUserError(() => loadTruth(put('{"edges": [["r"]]}'), names), 'edges[0]');
  assertUserError(() => checkTruth({ edges: [['r', 'r']] }, names), 'itself');
  assertUserError(
    () =>
      checkTruth(
        {
          edges: [
            ['r', 'a'],
            ['b', 'a'],
          ],
        },
        names,
      ),
    '"a"',
    'two parents',
  );
  assertUserError(
    () =>
      checkTruth(
        {
          edges: [
            ['r', 'a'],
            ['a', 'b'],
            ['b', 'r'],
          ],
        },
        names,
      ),
    'cycle',
  );
});
