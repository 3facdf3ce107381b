/**
 * Ward hierarchical clustering on a distance matrix (as scipy.cluster.hierarchy.linkage
 * with method='ward' does on a condensed distance vector): Lance-Williams updates
 *   d(k, i+j) = sqrt(((n_i+n_k) d(k,i)^2 + (n_j+n_k) d(k,j)^2 - n_k d(i,j)^2) / (n_i+n_j+n_k)),
 * a cut into K clusters (scipy's fcluster maxclust), and two estimates of K when the
 * user gives none: the largest gap between successive merge heights, and the best mean
 * silhouette.
 *
 * @example
 *   const merges = wardLinkage(D, n);
 *   const labels = cutTree(merges, n, 3);     // Int32Array of cluster ids 0..2
 */

export interface Merge {
  /** cluster ids as scipy numbers them: 0..n-1 leaves, n+k the cluster made by merge k */
  a: number;
  b: number;
  height: number;
  size: number;
}

/** O(n^3) naive Ward linkage; ties broken by the lowest (a, b) pair. `dist` is n x n row-major. */
export function wardLinkage(dist: ArrayLike<number>, n: number): Merge[] {
  const d = new Float64Array(n * n);
  for (let i = 0; i < n * n; i++) d[i] = dist[i]!;
  const size = new Array<number>(n).fill(1);
  const id = Array.from({ length: n }, (_, i) => i);
  const active = new Array<boolean>(n).fill(true);
  const merges: Merge[] = [];
  for (let step = 0; step < n - 1; step++) {
    let bi = -1,
      bj = -1,
      best = Infinity;
    for (let i = 0; i < n; i++) {
      if (!active[i]) continue;
      for (let j = i + 1; j < n; j++) {
        if (!active[j]) continue;
        const v = d[i * n + j]!;
        if (v < best || bi < 0) {
          best = v;
          bi = i;
          bj = j;
        }
      }
    }
    const ni = size[bi]!,
      nj = size[bj]!;
    for (let k = 0; k < n; k++) {
      if (!active[k] || k === bi || k === bj) continue;
      const nk = size[k]!;
      const dki = d[k * n + bi]!,
        dkj = d[k * n + bj]!;
      const v = Math.sqrt(Math.max(0, ((ni + nk) * dki * dki + (nj + nk) * dkj * dkj - nk * best * best) / (ni + nj + nk)));
      d[k * n + bi] = d[bi * n + k] = v;
    }
    const [a, b] = id[bi]! < id[bj]! ? [id[bi]!, id[bj]!] : [id[bj]!, id[bi]!];
    merges.push({ a, b, height: best, size: ni + nj });
    active[bj] = false;
    size[bi] = ni + nj;
    id[bi] = n + step;
  }
  return merges;
}

/** Cluster labels after keeping the first n-k merges; labels numbered in order of each cluster's first member. */
export function cutTree(merges: readonly Merge[], n: number, k: number): Int32Array {
  if (k < 1 || k > n) throw new RangeError(`cannot cut ${n} items into ${k} clusters`);
  const parent = Array.from({ length: 2 * n }, (_, i) => i);
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]!]!;
      x = parent[x]!;
    }
    return x;
  };
  // merges in height order (Ward heights are monotone, but sort to be safe with ties)
  const order = merges.map((m, i) => ({ m, i })).sort((x, y) => x.m.height - y.m.height || x.i - y.i);
  for (const { m, i } of order.slice(0, n - k)) {
    parent[find(m.a)] = n + i;
    parent[find(m.b)] = n + i;
  }
  const label = new Int32Array(n);
  const seen = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const r = find(i);
    if (!seen.has(r)) seen.set(r, seen.size);
    label[i] = seen.get(r)!;
  }
  return label;
}

export interface KEstimate {
  k: number;
  method: 'gap' | 'silhouette';
  /** the criterion's value per candidate K */
  scores: Record<number, number>;
}

/**
 * K from the largest jump between successive merge heights: cutting where the next
 * merge would be much higher than the last one kept. K ranges over 2..n-1 (a
 * jump criterion cannot say "one tree"; give --clusters 1 for that).
 */
export function estimateKGap(merges: readonly Merge[], n: number): KEstimate {
  const h = merges.map((m) => m.height).sort((a, b) => a - b);
  const scores: Record<number, number> = {};
  let best = 2,
    bestGap = -Infinity;
  for (let k = 2; k <= n - 1; k++) {
    const gap = h[n - k]! - h[n - k - 1]!;
    scores[k] = gap;
    if (gap > bestGap) {
      bestGap = gap;
      best = k;
    }
  }
  return { k: n < 3 ? 1 : best, method: 'gap', scores };
}

/** Mean silhouette of a labelling on the distance matrix (0 for singletons, as sklearn). */
export function silhouette(dist: ArrayLike<number>, n: number, labels: Int32Array): number {
  const k = Math.max(...labels) + 1;
  const count = new Array<number>(k).fill(0);
  for (const l of labels) count[l]!++;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const sums = new Array<number>(k).fill(0);
    for (let j = 0; j < n; j++) if (j !== i) sums[labels[j]!]! += dist[i * n + j]!;
    const own = labels[i]!;
    if (count[own]! <= 1) continue;
    const a = sums[own]! / (count[own]! - 1);
    let b = Infinity;
    for (let c = 0; c < k; c++) if (c !== own && count[c]! > 0) b = Math.min(b, sums[c]! / count[c]!);
    total += b === Infinity ? 0 : (b - a) / Math.max(a, b);
  }
  return total / n;
}

export function estimateKSilhouette(merges: readonly Merge[], dist: ArrayLike<number>, n: number): KEstimate {
  const scores: Record<number, number> = {};
  let best = 1,
    bestScore = -Infinity;
  for (let k = 2; k <= n - 1; k++) {
    const s = silhouette(dist, n, cutTree(merges, n, k));
    scores[k] = s;
    if (s > bestScore) {
      bestScore = s;
      best = k;
    }
  }
  return { k: best, method: 'silhouette', scores };
}
