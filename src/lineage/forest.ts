/**
 * From measurements to a forest: Ward clustering into K trees (K given or estimated),
 * then per cluster the minimum spanning arborescence (no fixed root) of the directed
 * cost. The reference (MoTHer) cost is D + lambda * mean(D) * [kurtosis order violated];
 * the direction of the kurtosis order is an option, and 'auto' picks, per cluster, the
 * direction whose tree costs less.
 *
 * @example
 *   const forest = buildForest(measurements, { clusters: 3, direction: 'parent-higher' });
 *   forest.edges   // [{ parent: 'root0', child: 'c1', cost: 0.012, distance: 0.011 }, ...]
 */
import { OptionError, UserError } from '../util/errors.js';
import { arborescenceCost, minArborescence } from './arborescence.js';
import { directedCost, submatrix, KURTOSIS_DIRECTIONS, type KurtosisDirection } from './cost.js';
import type { Measurements } from './measure.js';
import { MODES } from './modes.js';
import { cutTree, estimateKGap, estimateKSilhouette, wardLinkage } from './ward.js';

export const DIRECTIONS = [...KURTOSIS_DIRECTIONS, 'auto'] as const;
export type Direction = (typeof DIRECTIONS)[number];
export const CLUSTER_METHODS = ['gap', 'silhouette'] as const;
export type ClusterMethod = (typeof CLUSTER_METHODS)[number];

export interface ForestOptions {
  /** number of trees; estimated when omitted */
  clusters?: number;
  clusterMethod?: ClusterMethod;
  /** weight of the direction penalty (default 0.3) */
  lambda?: number;
  direction?: Direction;
  /**
   * the per-model quantity the direction refers to: 'kurtosis' (the reference) or 'norm'
   * (mean square of the selected weights; fine-tuning grew it on 58 of 60 edges of each
   * full fine-tuning zoo, so a parent has the LOWER norm). Default: norm, except in
   * lowrank mode (kurtosis)
   */
  signal?: DirectionSignal;
  /**
   * 'arborescence' (the reference): minimum arborescence of the directed cost.
   * 'rooted-mst': the undirected minimum spanning tree of D, rooted at the model with the
   * lowest signal (highest for parent-higher) and oriented away from it; lambda unused.
   * Default: rooted-mst, except in lowrank mode (arborescence).
   */
  placement?: Placement;
}

export const PLACEMENTS = ['arborescence', 'rooted-mst'] as const;
export type Placement = (typeof PLACEMENTS)[number];

/** Prim's MST on the symmetric k x k distance, oriented away from the root the signal picks. */
export function rootedMst(d: ArrayLike<number>, score: readonly number[], k: number, dir: KurtosisDirection): Int32Array {
  let root = 0;
  for (let i = 1; i < k; i++) if (dir === 'parent-lower' ? score[i]! < score[root]! : score[i]! > score[root]!) root = i;
  const parent = new Int32Array(k).fill(-1);
  const inTree = new Uint8Array(k);
  const best = new Float64Array(k).fill(Infinity);
  const from = new Int32Array(k).fill(-1);
  best[root] = 0;
  for (let step = 0; step < k; step++) {
    let u = -1;
    for (let i = 0; i < k; i++) if (!inTree[i] && (u < 0 || best[i]! < best[u]!)) u = i;
    inTree[u] = 1;
    parent[u] = from[u]!;
    for (let v = 0; v < k; v++) {
      if (!inTree[v] && d[u * k + v]! < best[v]!) {
        best[v] = d[u * k + v]!;
        from[v] = u;
      }
    }
  }
  return parent;
}

export const DIRECTION_SIGNALS = ['kurtosis', 'norm'] as const;
export type DirectionSignal = (typeof DIRECTION_SIGNALS)[number];

/** The kurtosis direction a signal implies when the signal is given and the direction is not: a parent has the lower norm, the higher kurtosis. */
const SIGNAL_DIRECTION: Readonly<Record<DirectionSignal, KurtosisDirection>> = { norm: 'parent-lower', kurtosis: 'parent-higher' };

export interface ForestNode {
  name: string;
  path: string;
  cluster: number;
  parent: string | null;
  depth: number;
  kurtosis: number;
}

export interface ForestEdge {
  parent: string;
  child: string;
  /** directed cost M[parent -> child] */
  cost: number;
  /** D[parent, child] */
  distance: number;
}

export interface LineageForest {
  nodes: ForestNode[];
  edges: ForestEdge[];
  roots: string[];
  clusters: string[][];
  selection: { rule: string; layers: { name: string; shape: number[] }[] };
  kurtosis: Record<string, number>;
  /** per model: sum over the selected layers of mean(W^2), the 'norm' direction signal */
  norm: Record<string, number>;
  settings: {
    mode: string;
    schatten: number | null;
    lambda: number;
    direction: Direction;
    signal: DirectionSignal;
    placement: Placement;
    /** per cluster, the kurtosis direction used (differs from `direction` only for 'auto') */
    directionUsed: KurtosisDirection[];
    clusters: { k: number; estimated: boolean; method?: ClusterMethod; scores?: Record<number, number> };
    clusterDistance: string;
  };
  stats: Measurements['stats'];
}

export function buildForest(m: Measurements, opts: ForestOptions = {}): LineageForest {
  const n = m.names.length;
  const lambda = opts.lambda ?? 0.3;
  if (!(Number.isFinite(lambda) && lambda >= 0)) throw new UserError(`lineage: lambda must be a non-negative number, got ${lambda}`);
  const defaults = MODES[m.mode].defaults;
  const signal = opts.signal ?? defaults.signal;
  const direction = opts.direction ?? (opts.signal === undefined ? defaults.direction : SIGNAL_DIRECTION[signal]);
  const score = signal === 'norm' ? m.meanSquare : m.kurtosis;
  const placement = opts.placement ?? defaults.placement;
  const merges = wardLinkage(m.clusterD, n);
  let k: number;
  let clusterInfo: LineageForest['settings']['clusters'];
  if (opts.clusters !== undefined) {
    k = opts.clusters;
    if (!Number.isInteger(k) || k < 1 || k > n)
      throw new OptionError((o) => `lineage: ${o('clusters')} must be an integer from 1 to ${n} (the number of models), got ${opts.clusters}`);
    clusterInfo = { k, estimated: false };
  } else {
    const method = opts.clusterMethod ?? 'gap';
    const est = method === 'gap' ? estimateKGap(merges, n) : estimateKSilhouette(merges, m.clusterD, n);
    k = est.k;
    clusterInfo = { k, estimated: true, method, scores: est.scores };
  }
  const labels = cutTree(merges, n, k);
  const parent = new Int32Array(n).fill(-1);
  const directionUsed: KurtosisDirection[] = [];
  const cost = new Float64Array(n * n).fill(Infinity);
  for (let c = 0; c < k; c++) {
    const members = [...labels.keys()].filter((i) => labels[i] === c);
    const sub = submatrix(m.d, n, members);
    const kurt = members.map((i) => score[i]!);
    const candidates: KurtosisDirection[] = direction === 'auto' ? ['parent-higher', 'parent-lower'] : [direction];
    let best: { p: Int32Array; cost: Float64Array; total: number; dir: KurtosisDirection } | undefined;
    for (const dir of candidates) {
      // the penalty scale is mean(D) of the matrix the arborescence sees (this cluster's),
      // as in the reference, which runs MoTHer per cluster: with the whole set's mean the
      // far distances between trees would make the kurtosis term swamp every distance
      const mc = directedCost(sub, kurt, members.length, { lambda, direction: dir });
      const p = placement === 'rooted-mst' ? rootedMst(sub, kurt, members.length, dir) : minArborescence(mc, members.length);
      const total = arborescenceCost(mc, members.length, p);
      if (!best || total < best.total) best = { p, cost: mc, total, dir };
    }
    directionUsed.push(best!.dir);
    members.forEach((g, i) => {
      const pi = best!.p[i]!;
      parent[g] = pi < 0 ? -1 : members[pi]!;
      for (let j = 0; j < members.length; j++) cost[members[j]! * n + g] = best!.cost[j * members.length + i]!;
    });
  }
  return assemble(m, labels, parent, cost, {
    mode: m.mode,
    schatten: m.schatten,
    lambda,
    direction,
    signal,
    placement,
    directionUsed,
    clusters: clusterInfo,
    clusterDistance: m.clusterDistance,
  });
}

/** Turns labels + parent array into the forest record. */
export function assemble(m: Measurements, labels: Int32Array, parent: Int32Array, cost: Float64Array, settings: LineageForest['settings']): LineageForest {
  const n = m.names.length;
  const depth = (v: number): number => {
    let d = 0;
    for (let x = parent[v]!; x >= 0; x = parent[x]!) d++;
    return d;
  };
  const nodes: ForestNode[] = m.names.map((name, i) => ({
    name,
    path: m.paths[i]!,
    cluster: labels[i]!,
    parent: parent[i]! >= 0 ? m.names[parent[i]!]! : null,
    depth: depth(i),
    kurtosis: m.kurtosis[i]!,
  }));
  const edges: ForestEdge[] = [];
  for (let v = 0; v < n; v++) {
    const u = parent[v]!;
    if (u >= 0) edges.push({ parent: m.names[u]!, child: m.names[v]!, cost: cost[u * n + v]!, distance: m.d[u * n + v]! });
  }
  const k = Math.max(...labels) + 1;
  const clusters = Array.from({ length: k }, (_, c) => m.names.filter((_, i) => labels[i] === c));
  return {
    nodes,
    edges,
    roots: m.names.filter((_, i) => parent[i]! < 0),
    clusters,
    selection: { rule: m.selection.rule, layers: m.selection.layers.map((l) => ({ name: l.name, shape: l.shape })) },
    kurtosis: Object.fromEntries(m.names.map((nm, i) => [nm, m.kurtosis[i]!])),
    norm: Object.fromEntries(m.names.map((nm, i) => [nm, m.meanSquare[i]!])),
    settings,
    stats: m.stats,
  };
}
