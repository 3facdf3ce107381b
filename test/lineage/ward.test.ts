import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cutTree, estimateKGap, estimateKSilhouette, wardLinkage } from '../../src/lineage/ward.js';
import { Rng } from '../../src/util/random.js';

const euclid = (pts: number[][]): Float64Array => {
  const n = pts.length;
  const d = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) d[i * n + j] = Math.hypot(...pts[i]!.map((x, k) => x - pts[j]![k]!));
  return d;
};

/**
 * Ward from its definition, on the points themselves: repeatedly merge the two clusters
 * whose union increases the within-cluster sum of squares least; the merge height scipy
 * reports is sqrt(2 x that increase).
 */
function bruteWard(pts: number[][]): { members: number[][]; height: number }[] {
  let clusters = pts.map((_, i) => [i]);
  const centroid = (c: number[]): number[] => pts[0]!.map((_, k) => c.reduce((s, i) => s + pts[i]![k]!, 0) / c.length);
  const ess = (c: number[]): number => {
    const m = centroid(c);
    return c.reduce((s, i) => s + pts[i]!.reduce((t, x, k) => t + (x - m[k]!) ** 2, 0), 0);
  };
  const out: { members: number[][]; height: number }[] = [];
  while (clusters.length > 1) {
    let best = Infinity,
      bi = 0,
      bj = 1;
    for (let i = 0; i < clusters.length; i++)
      for (let j = i + 1; j < clusters.length; j++) {
        const inc = ess([...clusters[i]!, ...clusters[j]!]) - ess(clusters[i]!) - ess(clusters[j]!);
        if (inc < best - 1e-12) {
          best = inc;
          bi = i;
          bj = j;
        }
      }
    out.push({ members: [clusters[bi]!, clusters[bj]!].map((c) => [...c].sort((a, b) => a - b)), height: Math.sqrt(2 * best) });
    clusters = [...clusters.filter((_, k) => k !== bi && k !== bj), [...clusters[bi]!, ...clusters[bj]!]];
  }
  return out;
}

function membersOf(merges: ReturnType<typeof wardLinkage>, n: number): number[][][] {
  const sets: number[][] = Array.from({ length: n }, (_, i) => [i]);
  return merges.map((m) => {
    const pair = [sets[m.a]!, sets[m.b]!].map((c) => [...c].sort((a, b) => a - b));
    sets.push([...sets[m.a]!, ...sets[m.b]!]);
    return pair;
  });
}

test('Ward linkage (Lance-Williams on distances) equals the definition: least increase of within-cluster variance', () => {
  const rng = new Rng(11);
  for (let t = 0; t < 15; t++) {
    const n = 4 + (t % 7);
    const pts = Array.from({ length: n }, () => [rng.normal(), rng.normal(), rng.normal()]);
    const merges = wardLinkage(euclid(pts), n);
    const brute = bruteWard(pts);
    const mine = membersOf(merges, n);
    merges.forEach((m, k) => {
      assert.ok(Math.abs(m.height - brute[k]!.height) < 1e-9, `merge ${k}: height ${m.height} vs ${brute[k]!.height}`);
      const norm = (x: number[][]): string => JSON.stringify([...x].sort((a, b) => a[0]! - b[0]!));
      assert.equal(norm(mine[k]!), norm(brute[k]!.members));
      assert.equal(m.size, brute[k]!.members[0]!.length + brute[k]!.members[1]!.length);
    });
  }
});

test('textbook example: 1-D points 0, 1, 5, 6, 20 (heights by hand)', () => {
  const pts = [[0], [1], [5], [6], [20]];
  const m = wardLinkage(euclid(pts), 5);
  // {0,1} and {5,6} at distance 1; then {0,1}+{5,6}: sqrt(2 * (2*2/4) * 5^2) = sqrt(50);
  // last: {0,1,5,6} (centroid 3) + {20}: sqrt(2 * (4*1/5) * 17^2) = sqrt(462.4)
  assert.deepEqual(
    m.map((x) => [x.a, x.b, x.size]),
    [
      [0, 1, 2],
      [2, 3, 2],
      [5, 6, 4],
      [4, 7, 5],
    ],
  );
  assert.ok(Math.abs(m[2]!.height - Math.sqrt(50)) < 1e-12);
  assert.ok(Math.abs(m[3]!.height - Math.sqrt(462.4)) < 1e-12);
  assert.deepEqual([...cutTree(m, 5, 2)], [0, 0, 0, 0, 1]);
  assert.deepEqual([...cutTree(m, 5, 3)], [0, 0, 1, 1, 2]);
  assert.deepEqual([...cutTree(m, 5, 5)], [0, 1, 2, 3, 4]);
  assert.deepEqual([...cutTree(m, 5, 1)], [0, 0, 0, 0, 0]);
});

test('K estimates find well separated groups', () => {
  const rng = new Rng(5);
  const centres = [
    [0, 0],
    [30, 0],
    [0, 30],
    [30, 30],
  ];
  const pts = centres.flatMap((c) => Array.from({ length: 6 }, () => [c[0]! + rng.normal(), c[1]! + rng.normal()]));
  const d = euclid(pts);
  const m = wardLinkage(d, pts.length);
  assert.equal(estimateKGap(m, pts.length).k, 4);
  assert.equal(estimateKSilhouette(m, d, pts.length).k, 4);
});
