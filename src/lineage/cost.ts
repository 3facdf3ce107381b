/**
 * The reference's directed cost: M[u->v] = D[u,v] + lambda * mean(D) * K[u,v], where
 * K[u,v] = 1 when the edge u -> v goes against the expected kurtosis order (by default a
 * parent is expected to have HIGHER kurtosis than its child, so K = 1 when v's kurtosis
 * is above u's), mean(D) over all n^2 entries including the zero diagonal, M[u->u] = inf.
 *
 * @example
 *   const M = directedCost(D, kurt, n, { lambda: 0.3, direction: 'parent-higher' });
 */

export const KURTOSIS_DIRECTIONS = ['parent-higher', 'parent-lower'] as const;
export type KurtosisDirection = (typeof KURTOSIS_DIRECTIONS)[number];

export interface CostOptions {
  lambda: number;
  direction: KurtosisDirection;
  /** mean(D) of the whole model set, when `d` is one cluster's block of it (default: mean of `d`) */
  meanD?: number;
}

/** Mean of all n^2 entries (the reference's normaliser, zero diagonal included). */
export function meanAll(d: ArrayLike<number>, n: number): number {
  let s = 0;
  for (let i = 0; i < n * n; i++) s += d[i]!;
  return s / (n * n);
}

/**
 * Directed costs from symmetric distances and a per-model score. `score` is the kurtosis
 * for the reference; any per-model quantity expected to move one way along edges works.
 */
export function directedCost(d: ArrayLike<number>, score: ArrayLike<number>, n: number, opts: CostOptions): Float64Array {
  const penalty = opts.lambda * (opts.meanD ?? meanAll(d, n));
  const m = new Float64Array(n * n);
  for (let u = 0; u < n; u++) {
    for (let v = 0; v < n; v++) {
      if (u === v) {
        m[u * n + v] = Infinity;
        continue;
      }
      const wrong = opts.direction === 'parent-higher' ? score[v]! > score[u]! : score[v]! < score[u]!;
      m[u * n + v] = d[u * n + v]! + (wrong ? penalty : 0);
    }
  }
  return m;
}

/** The n x n block of a matrix for the given members (a cluster). */
export function submatrix(a: ArrayLike<number>, n: number, members: readonly number[]): Float64Array {
  const k = members.length;
  const out = new Float64Array(k * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) out[i * k + j] = a[members[i]! * n + members[j]!]!;
  return out;
}
