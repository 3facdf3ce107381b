/**
 * Runs a model in the float64 reference interpreter: only the nodes needed for the
 * requested outputs, in topological order. A feed may also override an intermediate
 * tensor (the nodes producing it are then skipped), which is how finite differences
 * perturb a tensor inside the graph.
 */
import type { Model, Node } from '../../../src/onnx/types.js';
import { producers, topoSort } from '../../../src/onnx/graph.js';
import { toNumbers } from '../../../src/onnx/tensor.js';
import { REF_OPS, type RefTensor } from './registry.js';

/**
 * @example
 *   const { logits } = runReference(model, { input: { dims: [2, 3], data: Float64Array.of(...) } }, ['logits']);
 */
export function runReference(model: Model, feeds: Record<string, RefTensor>, outputs: string[]): Record<string, RefTensor> {
  const prepared = prepare(model);
  const values = new Map<string, RefTensor>(prepared.initializers);
  for (const [name, t] of Object.entries(feeds)) values.set(name, t);
  const needed = neededNodes(prepared.producers, outputs, new Set(values.keys()));
  for (const node of prepared.order) {
    if (!needed.has(node)) continue;
    const op = REF_OPS.get(node.opType);
    if (!op) throw new Error(`the reference interpreter has no operator ${node.opType} (node ${node.name})`);
    const inputs = node.inputs.map((i) => {
      if (!i) return undefined;
      const v = values.get(i);
      if (!v) throw new Error(`reference: node ${node.name} reads "${i}", which has no value`);
      return v;
    });
    const results = op(node, inputs);
    node.outputs.forEach((o, k) => {
      if (o && results[k]) values.set(o, results[k]!);
    });
  }
  const out: Record<string, RefTensor> = {};
  for (const name of outputs) {
    const v = values.get(name);
    if (!v) throw new Error(`reference: output "${name}" was not computed`);
    out[name] = v;
  }
  return out;
}

interface Prepared {
  order: Node[];
  producers: Map<string, Node>;
  initializers: Map<string, RefTensor>;
}

/** Finite differences run one model hundreds of times: sort it and convert its weights once. */
const PREPARED = new WeakMap<Model, Prepared>();

function prepare(model: Model): Prepared {
  let p = PREPARED.get(model);
  if (!p) {
    const initializers = new Map<string, RefTensor>();
    for (const [name, t] of model.graph.initializers) initializers.set(name, { dims: [...t.dims], data: Float64Array.from(toNumbers(t)) });
    p = { order: topoSort(model.graph), producers: producers(model.graph), initializers };
    PREPARED.set(model, p);
  }
  return p;
}

/** Nodes on which `outputs` depend, not looking upstream of tensors that already have values. */
function neededNodes(prod: Map<string, Node>, outputs: readonly string[], available: ReadonlySet<string>): Set<Node> {
  const needed = new Set<Node>();
  const pending = [...outputs];
  while (pending.length) {
    const t = pending.pop()!;
    if (available.has(t)) continue;
    const n = prod.get(t);
    if (!n || needed.has(n)) continue;
    needed.add(n);
    for (const i of n.inputs) if (i) pending.push(i);
  }
  return needed;
}

/** float32 (or any numeric) data as a reference tensor. */
export function toRef(dims: readonly number[], data: ArrayLike<number> | BigInt64Array): RefTensor {
  const values = data instanceof BigInt64Array ? Array.from(data, Number) : Array.from(data as ArrayLike<number>);
  return { dims: [...dims], data: Float64Array.from(values) };
}
