import { test } from 'node:test';
import assert from 'node:assert/strict';
import { arborescenceCost, minArborescence, minArborescenceRooted } from '../../src/lineage/arborescence.js';
import { rootedMst } from '../../src/lineage/forest.js';
import { Rng } from '../../src/util/random.js';

/** Every parent array over n nodes that is a tree (exactly one root when `root` is undefined). */
function* allArborescences(n: number, root?: number): Generator<Int32Array> {
  const p = new Int32Array(n);
  const rec = function* (v: number): Generator<Int32Array> {
    if (v === n) {
      const roots = [...p].filter((x) => x === -1).length;
      if (roots !== 1) return;
      if (root !== undefined && p[root] !== -1) return;
      for (let s = 0; s < n; s++) {
        // acyclic: every chain reaches the root within n steps
        let x = s,
          k = 0;
        while (p[x]! >= 0 && k <= n) {
          x = p[x]!;
          k++;
        }
        if (k > n) return;
      }
      yield Int32Array.from(p);
      return;
    }
    for (let u = -1; u < n; u++) {
      if (u === v) continue;
      p[v] = u;
      yield* rec(v + 1);
    }
  };
  yield* rec(0);
}

function bruteMin(cost: Float64Array, n: number, root?: number): number {
  let best = Infinity;
  for (const p of allArborescences(n, root)) best = Math.min(best, arborescenceCost(cost, n, p));
  return best;
}

function randomDigraph(n: number, rng: Rng, integer: boolean): Float64Array {
  const c = new Float64Array(n * n);
  for (let u = 0; u < n; u++) for (let v = 0; v < n; v++) c[u * n + v] = u === v ? Infinity : integer ? rng.int(5) : rng.next();
  return c;
}

const isTree = (p: Int32Array): boolean => [...allArborescences(p.length)].some((q) => q.every((x, i) => x === p[i]));

test('Chu-Liu/Edmonds with no fixed root matches brute force on random digraphs (all arborescences enumerated)', () => {
  const rng = new Rng(7);
  let cases = 0;
  for (let n = 2; n <= 6; n++) {
    for (let t = 0; t < (n <= 4 ? 60 : 20); t++) {
      const integer = t % 2 === 0; // integer costs create ties
      const cost = randomDigraph(n, rng, integer);
      const p = minArborescence(cost, n);
      assert.equal([...p].filter((x) => x === -1).length, 1, 'exactly one root');
      assert.ok(isTree(p), `a spanning arborescence: ${[...p]}`);
      const got = arborescenceCost(cost, n, p);
      const want = bruteMin(cost, n);
      assert.ok(Math.abs(got - want) < 1e-9, `n=${n} case ${t}: got ${got}, brute force ${want}`);
      cases++;
    }
  }
  assert.ok(cases > 200);
});

test('with a fixed root, the result matches brute force over arborescences with that root', () => {
  const rng = new Rng(8);
  for (let t = 0; t < 40; t++) {
    const n = 3 + (t % 4);
    const cost = randomDigraph(n, rng, t % 3 === 0);
    const root = t % n;
    const p = minArborescenceRooted(cost, n, root);
    assert.equal(p[root], -1);
    assert.ok(Math.abs(arborescenceCost(cost, n, p) - bruteMin(cost, n, root)) < 1e-9);
  }
});

test('a cycle of cheap edges is broken where it is cheapest to enter', () => {
  // 0->1->2->0 cost 1 each; entering from 3 costs 10 into 0, 5 into 1; 3 has expensive in-edges
  const n = 4,
    I = Infinity;
  const c = Float64Array.from([I, 1, 50, 50, 50, I, 1, 50, 1, 50, I, 50, 10, 5, 50, I]);
  const p = minArborescence(c, n);
  // best: root at a cycle node, e.g. root 2: 2->0 (1), 0->1 (1), ? ->3 (50) = 52; root 3: 3->1 (5), 1->2, 2->0 = 7
  assert.deepEqual([...p], [2, 3, 1, -1]);
  assert.equal(arborescenceCost(c, n, p), 7);
});

test('rooted MST: Prim tree oriented away from the model with the lowest (or highest) score', () => {
  // points on a line 0 - 1 - 2 - 3 (distances |i - j|): the MST is the path
  const k = 4;
  const d = Float64Array.from({ length: k * k }, (_, x) => Math.abs(Math.floor(x / k) - (x % k)));
  assert.deepEqual([...rootedMst(d, [5, 1, 7, 9], k, 'parent-lower')], [1, -1, 1, 2]);
  assert.deepEqual([...rootedMst(d, [5, 1, 7, 9], k, 'parent-higher')], [1, 2, 3, -1]);
});
