/**
 * Ground truth for lineage recovery and the scores against it. A truth file is
 * `{"edges": [["parent", "child"], ...]}` with model names (file stems); models it does
 * not mention are roots of trees of their own.
 *
 * - directed accuracy: predicted edges with the right parent AND direction / true edges
 *   (the paper's metric);
 * - undirected accuracy: predicted edges joining a true parent-child pair in either
 *   direction / true edges;
 * - clustering accuracy: the predicted clusters matched one-to-one to the true trees
 *   (the matching that maximises shared models, Hungarian algorithm), models in matched
 *   pairs / all models. Also the adjusted Rand index.
 *
 * @example
 *   const truth = loadTruth('zoo/truth.json', forest.nodes.map((n) => n.name));
 *   scoreForest(forest, truth).directed   // 0.93
 */
import { readFileSync } from 'node:fs';
import { UserError } from '../util/errors.js';

export interface Truth {
  edges: [string, string][];
}

export interface LineageScore {
  directed: number;
  undirected: number;
  clustering: number;
  ari: number;
  correctEdges: number;
  trueEdges: number;
  trueTrees: number;
  predictedTrees: number;
}

/**
 * Parses and checks a truth file against the model names: unknown names, two parents, self edges and cycles are errors.
 *
 * @example
 *   const truth = loadTruth('zoo/truth.json', forest.nodes.map((n) => n.name));
 */
export function loadTruth(path: string, names: readonly string[]): Truth {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`truth file ${path}: ${code ? `cannot read (${code})` : `not valid JSON (${(e as Error).message})`}`);
  }
  return checkTruth(raw, names, path);
}

export function checkTruth(raw: unknown, names: readonly string[], where = 'truth'): Truth {
  const edges = (raw as { edges?: unknown } | null)?.edges;
  if (typeof raw !== 'object' || raw === null || !Array.isArray(edges)) throw new UserError(`${where}: expected {"edges": [["parent", "child"], ...]}`);
  const known = new Set(names);
  const parentOf = new Map<string, string>();
  const out: [string, string][] = [];
  edges.forEach((e: unknown, i) => {
    if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || typeof e[1] !== 'string') {
      throw new UserError(`${where}: edges[${i}] must be ["parent", "child"], got ${JSON.stringify(e)}`);
    }
    const [p, c] = e as [string, string];
    for (const x of [p, c]) {
      if (!known.has(x)) throw new UserError(`${where}: edges[${i}] names "${x}", which is not one of the ${names.length} models (${preview(names)})`);
    }
    if (p === c) throw new UserError(`${where}: edges[${i}] joins "${p}" to itself`);
    const prev = parentOf.get(c);
    if (prev !== undefined) throw new UserError(`${where}: "${c}" has two parents ("${prev}" and "${p}"); lineage truth must be a forest`);
    parentOf.set(c, p);
    out.push([p, c]);
  });
  for (const start of parentOf.keys()) {
    const seen = new Set<string>([start]);
    for (let x = parentOf.get(start); x !== undefined; x = parentOf.get(x)) {
      if (seen.has(x)) throw new UserError(`${where}: the edges form a cycle through "${x}"`);
      seen.add(x);
    }
  }
  return { edges: out };
}

function preview(names: readonly string[]): string {
  return names.length <= 6 ? names.join(', ') : `${names.slice(0, 6).join(', ')}, ...`;
}

/** Tree id per name: the root each model's parent chain leads to. */
export function treeOf(names: readonly string[], edges: readonly [string, string][]): Map<string, string> {
  const parent = new Map(edges.map(([p, c]) => [c, p]));
  const out = new Map<string, string>();
  for (const n of names) {
    let r = n;
    for (let p = parent.get(r); p !== undefined; p = parent.get(r)) r = p;
    out.set(n, r);
  }
  return out;
}

export interface ScoredForest {
  nodes: readonly { name: string; cluster: number }[];
  edges: readonly { parent: string; child: string }[];
}

/**
 * How well a recovered forest matches the truth: edges found, directions, clusters.
 *
 * @example
 *   const score = scoreForest(forest, loadTruth('zoo/truth.json', forest.nodes.map((n) => n.name)));
 */
export function scoreForest(forest: ScoredForest, truth: Truth): LineageScore {
  const names = forest.nodes.map((n) => n.name);
  const truthChecked = checkTruth(truth, names);
  const directedSet = new Set(truthChecked.edges.map(([p, c]) => `${p}\u0000${c}`));
  const undirectedSet = new Set(truthChecked.edges.flatMap(([p, c]) => [`${p}\u0000${c}`, `${c}\u0000${p}`]));
  let directed = 0,
    undirected = 0;
  for (const e of forest.edges) {
    const k = `${e.parent}\u0000${e.child}`;
    if (directedSet.has(k)) directed++;
    if (undirectedSet.has(k)) undirected++;
  }
  const trees = treeOf(names, truthChecked.edges);
  const trueLabel = labelsOf(names.map((n) => trees.get(n)!));
  const predLabel = labelsOf(forest.nodes.map((n) => String(n.cluster)));
  const t = truthChecked.edges.length;
  return {
    directed: t ? directed / t : 1,
    undirected: t ? undirected / t : 1,
    clustering: matchedFraction(predLabel, trueLabel),
    ari: adjustedRand(predLabel, trueLabel),
    correctEdges: directed,
    trueEdges: t,
    trueTrees: Math.max(...trueLabel) + 1,
    predictedTrees: Math.max(...predLabel) + 1,
  };
}

function labelsOf(keys: string[]): number[] {
  const ids = new Map<string, number>();
  return keys.map((k) => {
    if (!ids.has(k)) ids.set(k, ids.size);
    return ids.get(k)!;
  });
}

function contingency(a: number[], b: number[]): number[][] {
  const ka = Math.max(...a) + 1,
    kb = Math.max(...b) + 1;
  const t = Array.from({ length: ka }, () => new Array<number>(kb).fill(0));
  a.forEach((x, i) => t[x]![b[i]!]!++);
  return t;
}

/** Fraction of items in the best one-to-one matching of clusters a to clusters b. */
export function matchedFraction(a: number[], b: number[]): number {
  const t = contingency(a, b);
  const size = Math.max(t.length, t[0]!.length);
  const cost = Array.from({ length: size }, (_, i) => Array.from({ length: size }, (_, j) => -(t[i]?.[j] ?? 0)));
  const assign = hungarian(cost);
  let s = 0;
  assign.forEach((j, i) => {
    s += t[i]?.[j] ?? 0;
  });
  return s / a.length;
}

/** Minimum-cost perfect assignment of a square matrix (rows -> columns), O(n^3). */
export function hungarian(cost: number[][]): number[] {
  const n = cost.length;
  const u = new Array<number>(n + 1).fill(0),
    v = new Array<number>(n + 1).fill(0);
  const p = new Array<number>(n + 1).fill(0),
    way = new Array<number>(n + 1).fill(0);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    const minv = new Array<number>(n + 1).fill(Infinity);
    const used = new Array<boolean>(n + 1).fill(false);
    do {
      used[j0] = true;
      const i0 = p[j0]!;
      let delta = Infinity,
        j1 = 0;
      for (let j = 1; j <= n; j++) {
        if (used[j]) continue;
        const cur = cost[i0 - 1]![j - 1]! - u[i0]! - v[j]!;
        if (cur < minv[j]!) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j]! < delta) {
          delta = minv[j]!;
          j1 = j;
        }
      }
      for (let j = 0; j <= n; j++) {
        if (used[j]) {
          u[p[j]!]! += delta;
          v[j]! -= delta;
        } else minv[j]! -= delta;
      }
      j0 = j1;
    } while (p[j0] !== 0);
    do {
      const j1 = way[j0]!;
      p[j0] = p[j1]!;
      j0 = j1;
    } while (j0);
  }
  const rowToCol = new Array<number>(n).fill(-1);
  for (let j = 1; j <= n; j++) if (p[j]! > 0) rowToCol[p[j]! - 1] = j - 1;
  return rowToCol;
}

/** Adjusted Rand index of two labellings (1 = identical partitions, about 0 = chance). */
export function adjustedRand(a: number[], b: number[]): number {
  const t = contingency(a, b);
  const c2 = (x: number): number => (x * (x - 1)) / 2;
  let sumCells = 0;
  for (const row of t) for (const x of row) sumCells += c2(x);
  const rows = t.map((r) => r.reduce((s, x) => s + x, 0));
  const cols = t[0]!.map((_, j) => t.reduce((s, r) => s + r[j]!, 0));
  const sa = rows.reduce((s, x) => s + c2(x), 0),
    sb = cols.reduce((s, x) => s + c2(x), 0);
  const expected = (sa * sb) / c2(a.length);
  const max = (sa + sb) / 2;
  return max === expected ? 1 : (sumCells - expected) / (max - expected);
}

/** How a per-model signal changed from parent to child over the true edges. */
export interface SignalTrend {
  /** edges where the child's value is higher than its parent's */
  rose: number;
  fell: number;
  /** equal values */
  same: number;
  edges: number;
}

/**
 * Whether kurtosis and norm rise or fall from parent to child along the true edges:
 * the evidence behind the direction options (the reference assumes kurtosis falls).
 */
export function signalTrends(
  forest: { kurtosis: Record<string, number>; norm: Record<string, number> },
  truth: Truth,
): { kurtosis: SignalTrend; norm: SignalTrend } {
  const trend = (v: Record<string, number>): SignalTrend => {
    const t: SignalTrend = { rose: 0, fell: 0, same: 0, edges: truth.edges.length };
    for (const [p, c] of truth.edges) {
      const d = v[c]! - v[p]!;
      if (d > 0) t.rose++;
      else if (d < 0) t.fell++;
      else t.same++;
    }
    return t;
  };
  return { kurtosis: trend(forest.kurtosis), norm: trend(forest.norm) };
}
