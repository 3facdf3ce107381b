/**
 * Constant folding. Exporters leave shape arithmetic in graphs (PyTorch's
 * `x.view(x.size(0), -1)` becomes Shape -> Gather -> Unsqueeze -> Concat -> Reshape),
 * which hides shapes from other passes and costs a few kernel launches per batch. This
 * pass replaces everything computable from constants and static dims by initializers,
 * turns Constant nodes into initializers, rewrites Reshapes whose shape depends only on
 * the symbolic batch into a static form, and removes inference-time no-ops.
 */
import type { Graph, Model, Node, Tensor, ValueInfo } from './types.js';
import type { Known } from './op-context.js';
import { cloneModel, int, topoSort, uniqueName, isDefaultDomain } from './graph.js';
import { analyzeShapes } from './shapes.js';
import { isNum } from './dims.js';
import { cloneTensor, toNumbers } from './tensor.js';
import { fromNumbers } from './evaluate.js';
import { removeDeadNodes, removeUnused, renameTensor, usedTensors } from './prune.js';

/**
 * A new model (the input is not changed) with constant subgraphs folded into
 * initializers, Identity/inference Dropout removed (graph output names kept), and
 * unused nodes and initializers dropped. Folding reads/computes tensors of at most
 * MAX_FOLD_ELEMENTS elements; larger constant computations stay in the graph.
 *
 * @example
 *   const folded = foldConstants(loadModel('exported.onnx'));
 *   // Shape/Gather/Unsqueeze/Concat/Reshape on [N,64,4,4] is now Flatten(axis=1)
 */
export function foldConstants(model: Model): Model {
  const out = cloneModel(model);
  const g = out.graph;
  const { known } = analyzeShapes(withNamedUnknowns(out));
  const graphOutputs = new Set(g.outputs.map((o) => o.name));
  const nodes: Node[] = [];
  for (const node of g.nodes) {
    const folded = foldNode(node, known, graphOutputs);
    if (folded) {
      for (const [name, t] of folded) g.initializers.set(name, t);
      continue;
    }
    nodes.push(node.opType === 'Reshape' ? staticReshape(g, node, known) : node);
  }
  g.nodes = nodes;
  removeNoOps(g, known);
  removeDeadNodes(g);
  removeUnused(g);
  return out;
}

/**
 * Unknown input dims get private symbols for the analysis, so that a Reshape copying
 * one of them can still be recognised (x.view(x.size(0), -1) with an unnamed batch).
 */
function withNamedUnknowns(m: Model): Model {
  const inputs: ValueInfo[] = m.graph.inputs.map((v) =>
    v.shape ? { ...v, shape: v.shape.map((d, i) => (d === null ? `unknown dim ${i} of ${v.name}` : d)) } : v,
  );
  return { ...m, graph: { ...m.graph, inputs } };
}

/** The initializers that replace `node`, or undefined when it stays. */
function foldNode(node: Node, known: Map<string, Known>, graphOutputs: Set<string>): [string, Tensor][] | undefined {
  const outs = node.outputs.filter(Boolean);
  // A graph output keeps its producing node: initializers as outputs are not portable.
  if (outs.length === 0 || outs.some((o) => graphOutputs.has(o))) return undefined;
  const tensors = outs.map((o): [string, Tensor | undefined] => [o, known.get(o)?.tensor]);
  if (tensors.some(([, t]) => !t)) return undefined;
  return tensors as [string, Tensor][];
}

/**
 * A new model in which every float initializer read through an `Identity` alias (what
 * torch.onnx.export makes of parameters that happen to be equal: random-init zero
 * biases, unit LayerNorm weights, all become Identity copies of one tensor) is its own
 * initializer under the alias's name. Training must untie them: they are separate
 * parameters that only started equal. Aliases of aliases are untied too; an alias that
 * is a graph output stays.
 *
 * @example
 *   const m = untieAliases(loadModel('vit.onnx'));   // encoder.ln.bias is now an initializer
 */
export function untieAliases(model: Model): Model {
  const out = cloneModel(model);
  const g = out.graph;
  const inputs = new Set(g.inputs.map((v) => v.name));
  const outputs = new Set(g.outputs.map((v) => v.name));
  const isAlias = (n: Node): boolean => {
    if (n.opType !== 'Identity' || !isDefaultDomain(n.domain)) return false;
    const x = n.inputs[0];
    const y = n.outputs[0];
    const t = x ? g.initializers.get(x) : undefined;
    return !!t && !!y && !inputs.has(x!) && !outputs.has(y) && !g.initializers.has(y) && FLOAT_DTYPES.has(t.dtype);
  };
  g.nodes = topoSort(g).filter((n) => {
    if (!isAlias(n)) return true;
    g.initializers.set(n.outputs[0]!, cloneTensor(g.initializers.get(n.inputs[0]!)!));
    g.valueInfo.delete(n.outputs[0]!);
    return false;
  });
  return out;
}

const FLOAT_DTYPES: ReadonlySet<string> = new Set(['float32', 'float64', 'float16', 'bfloat16']);

/**
 * A Reshape whose target shape is computed at run time from symbolic dims, given a
 * static target: entries equal to the input's own dim become 0 (copy), one unknown
 * entry becomes -1. [0, -1] (PyTorch's flatten idiom) becomes Flatten(axis=1).
 */
function staticReshape(g: Graph, node: Node, known: Map<string, Known>): Node {
  const shapeInput = known.get(node.inputs[1] ?? '');
  const x = known.get(node.inputs[0] ?? '')?.shape;
  if (!shapeInput?.values || shapeInput.tensor) return node;
  const allowZero = node.attributes['allowzero']?.value === 1;
  const spec = shapeInput.values.map((v, i) => {
    if (isNum(v)) return v;
    return v !== null && !allowZero && x?.[i] === v ? 0 : undefined;
  });
  const free = spec.filter((v) => v === undefined).length;
  if (free > 1 || (free === 1 && spec.includes(-1))) return node;
  const target = spec.map((v) => v ?? -1);
  const copies = target.indexOf(-1);
  if (!allowZero && x && copies === target.length - 1 && copies > 0 && x.length > copies && target.slice(0, copies).every((v) => v === 0)) {
    return { name: node.name, opType: 'Flatten', inputs: [node.inputs[0]!], outputs: [...node.outputs], attributes: { axis: int(copies) } };
  }
  const name = uniqueName(g, `${node.name}_shape`);
  g.initializers.set(name, fromNumbers('int64', [target.length], target));
  return { ...node, inputs: [node.inputs[0]!, name] };
}

/** Identity, and Dropout in inference mode, replaced by their input where that keeps graph outputs' names. */
function removeNoOps(g: Graph, known: Map<string, Known>): void {
  for (let k = 0; k < g.nodes.length;) {
    if (removeNoOp(g, g.nodes[k]!, known)) g.nodes.splice(k, 1);
    else k++;
  }
}

function removeNoOp(g: Graph, n: Node, known: Map<string, Known>): boolean {
  if (n.opType !== 'Identity' && n.opType !== 'Dropout') return false;
  if (!isDefaultDomain(n.domain)) return false;
  if (n.opType === 'Dropout' && !isInference(n, known, usedTensors(g))) return false;
  const x = n.inputs[0]!;
  const y = n.outputs[0]!;
  const isOutput = (t: string): boolean => g.outputs.some((o) => o.name === t);
  if (!isOutput(y)) {
    for (const c of g.nodes) c.inputs = c.inputs.map((i) => (i === y ? x : i));
    return true;
  }
  const fromNode = g.nodes.some((p) => p !== n && p.outputs.includes(x));
  if (!fromNode || isOutput(x)) return false;
  renameTensor(g, x, y);
  return true;
}

/** A Dropout is a no-op when not in training mode and its mask is not read. */
function isInference(n: Node, known: Map<string, Known>, used: Set<string>): boolean {
  const mask = n.outputs[1];
  if (mask && used.has(mask)) return false;
  if (!n.inputs[2]) return true;
  const mode = known.get(n.inputs[2])?.tensor;
  return !!mode && toNumbers(mode).every((v) => v === 0);
}
