/**
 * Minimum spanning arborescence (Chu-Liu/Edmonds), dense O(n^3) by cycle contraction,
 * which is plenty for model sets of a few hundred. With no fixed root, a virtual root
 * gets an edge of one large equal cost to every node; any solution with two roots would
 * pay that cost twice, so exactly one real node becomes the root (when a single-root tree
 * exists at all).
 *
 * @example
 *   const parent = minArborescence(cost, n);   // cost[u * n + v] = cost of edge u -> v
 *   parent[root] === -1; parent[v] = u for every other v
 */

/**
 * parent[v] of the minimum arborescence rooted at `root` (parent[root] = -1). Infinite
 * costs are missing edges; a node no edge can reach is an error (a bug in the caller).
 */
export function minArborescenceRooted(cost: ArrayLike<number>, n: number, root: number): Int32Array {
  const parent = new Int32Array(n).fill(-1);
  for (let v = 0; v < n; v++) {
    if (v === root) continue;
    let best = Infinity,
      bu = -1;
    for (let u = 0; u < n; u++) {
      if (u === v) continue;
      const c = cost[u * n + v]!;
      if (c < best) {
        best = c;
        bu = u;
      }
    }
    if (bu < 0) throw new Error(`arborescence: node ${v} has no incoming edge`);
    parent[v] = bu;
  }
  // find cycles of the chosen in-edges
  const id = new Int32Array(n).fill(-1);
  const mark = new Int32Array(n).fill(-1);
  let count = 0;
  for (let v = 0; v < n; v++) {
    let x = v;
    while (x !== root && id[x] === -1 && mark[x] !== v) {
      mark[x] = v;
      x = parent[x]!;
    }
    if (x !== root && id[x] === -1 && mark[x] === v) {
      for (let y = parent[x]!; y !== x; y = parent[y]!) id[y] = count;
      id[x] = count++;
    }
  }
  if (count === 0) return parent;
  const inCycle = new Uint8Array(n);
  for (let v = 0; v < n; v++) if (id[v] !== -1) inCycle[v] = 1;
  for (let v = 0; v < n; v++) if (id[v] === -1) id[v] = count++;
  // contracted graph; remember which original edge realises each contracted edge
  const m = count;
  const c2 = new Float64Array(m * m).fill(Infinity);
  const from = new Int32Array(m * m).fill(-1);
  const to = new Int32Array(m * m).fill(-1);
  for (let u = 0; u < n; u++) {
    for (let v = 0; v < n; v++) {
      if (u === v || id[u] === id[v] || v === root) continue;
      const c = cost[u * n + v]!;
      if (c === Infinity) continue;
      const w = c - (inCycle[v] ? cost[parent[v]! * n + v]! : 0);
      const k = id[u]! * m + id[v]!;
      if (w < c2[k]!) {
        c2[k] = w;
        from[k] = u;
        to[k] = v;
      }
    }
  }
  const p2 = minArborescenceRooted(c2, m, id[root]!);
  const out = Int32Array.from(parent);
  out[root] = -1;
  for (let x = 0; x < m; x++) {
    if (p2[x]! < 0) continue;
    const k = p2[x]! * m + x;
    out[to[k]!] = from[k]!;
  }
  return out;
}

/** Minimum arborescence with the root chosen by the algorithm (virtual root with equal large costs). */
export function minArborescence(cost: ArrayLike<number>, n: number): Int32Array {
  if (n === 1) return Int32Array.of(-1);
  let total = 0;
  for (let i = 0; i < n * n; i++) {
    const c = cost[i]!;
    if (Number.isFinite(c)) total += Math.abs(c);
  }
  const big = 2 * total + 1;
  const m = n + 1;
  const c2 = new Float64Array(m * m).fill(Infinity);
  for (let u = 0; u < n; u++) for (let v = 0; v < n; v++) if (u !== v) c2[u * m + v] = cost[u * n + v]!;
  for (let v = 0; v < n; v++) c2[n * m + v] = big;
  const p = minArborescenceRooted(c2, m, n);
  const parent = new Int32Array(n);
  for (let v = 0; v < n; v++) parent[v] = p[v] === n ? -1 : p[v]!;
  return parent;
}

/** Total cost of a parent array (roots cost nothing). */
export function arborescenceCost(cost: ArrayLike<number>, n: number, parent: Int32Array): number {
  let s = 0;
  for (let v = 0; v < n; v++) if (parent[v]! >= 0) s += cost[parent[v]! * n + v]!;
  return s;
}
