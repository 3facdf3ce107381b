/**
 * Cutting graphs: the part of a model between named tensors (disassembly, stitching),
 * and extra outputs on intermediate tensors (the runtime's taps).
 */
import type { Model, ValueInfo } from './types.js';
import { cloneModel, producers, tensorNames } from './graph.js';
import { inferShapes } from './shapes.js';
import { keepNeeded, removeUnused } from './prune.js';
import { UserError } from '../util/errors.js';

/**
 * The sub-model computing `outputs` from `inputs` (plus the initializers it needs).
 * `inputs` become the graph inputs, with their inferred dtype and shape; metadata and
 * opsets are kept.
 *
 * @example
 *   // the middle of a network: from the stem's output to the features
 *   const mid = extractSubgraph(model, ['stem_out'], ['features']);
 */
export function extractSubgraph(model: Model, inputs: string[], outputs: string[]): Model {
  if (outputs.length === 0) throw new UserError('extractSubgraph: at least one output tensor is needed');
  const g = model.graph;
  const names = tensorNames(g);
  for (const n of [...inputs, ...outputs]) checkExists(n, names);
  const shapes = inferShapes(model);
  const stop = new Set(inputs);
  checkReachable(model, stop, outputs);
  const out = cloneModel(model);
  const sub = out.graph;
  keepNeeded(sub, outputs, stop);
  for (const i of inputs) sub.initializers.delete(i);
  sub.inputs = inputs.map((n) => shapes.get(n)!);
  sub.outputs = outputs.map((n) => shapes.get(n)!);
  removeUnused(sub);
  return out;
}

/**
 * The same model with intermediate tensors added as graph outputs (after the existing
 * ones, each with its inferred dtype and shape); names already among the outputs are
 * not repeated.
 *
 * @example const tapped = addOutputs(model, ['layer1_out', 'layer2_out']);
 */
export function addOutputs(model: Model, names: string[]): Model {
  const all = tensorNames(model.graph);
  for (const n of names) checkExists(n, all);
  const shapes = inferShapes(model);
  const out = cloneModel(model);
  const have = new Set(out.graph.outputs.map((o) => o.name));
  for (const n of names) {
    if (have.has(n)) continue;
    have.add(n);
    out.graph.outputs.push(shapes.get(n) as ValueInfo);
  }
  return out;
}

/** Throws, naming the first tensor an output depends on that is neither an initializer nor among `stop`. */
function checkReachable(model: Model, stop: Set<string>, outputs: string[]): void {
  const g = model.graph;
  const prod = producers(g);
  const graphInputs = new Set(g.inputs.map((v) => v.name));
  const seen = new Set<string>();
  for (const target of outputs) {
    const pending = [target];
    while (pending.length) {
      const t = pending.pop()!;
      if (seen.has(t) || stop.has(t)) continue;
      seen.add(t);
      const p = prod.get(t);
      if (p) pending.push(...p.inputs.filter(Boolean));
      else if (graphInputs.has(t) || !g.initializers.has(t)) {
        throw new UserError(`output "${target}" depends on tensor "${t}", which is not among the given inputs [${[...stop].join(', ')}]`);
      }
    }
  }
}

/** Throws a UserError listing similar names when `name` is not a tensor of the model. */
export function checkExists(name: string, names: Set<string>): void {
  if (names.has(name)) return;
  const near = nearbyNames(name, [...names]);
  throw new UserError(`tensor "${name}" does not exist in model${near.length ? `; nearby names: ${near.join(', ')}` : ''}`);
}

/** Up to five names closest to `name` by edit distance, substring matches first. */
export function nearbyNames(name: string, names: string[], limit = 5): string[] {
  const lower = name.toLowerCase();
  return names
    .map((n) => ({ n, score: editDistance(lower, n.toLowerCase()) - (n.toLowerCase().includes(lower) || lower.includes(n.toLowerCase()) ? 100 : 0) }))
    .sort((a, b) => a.score - b.score || a.n.localeCompare(b.n))
    .slice(0, limit)
    .map((x) => x.n);
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
