/**
 * Shape and dtype inference over a whole graph. Walks the nodes in topological order,
 * applying each operator's rule (rules.ts). Besides shapes it tracks the values of
 * constants and of small integer "shape tensors" (symbolically: Shape(x) of [N,3] is
 * [N,3]), so that Reshape/Slice/Resize... whose shape inputs are computed in the graph
 * still get exact output shapes, with the symbolic batch carried through.
 */
import type { Dim, Model, Node, Tensor, ValueInfo } from './types.js';
import { NodeContext, type Known, type OutInfo } from './op-context.js';
import { ruleFor } from './rules.js';
import { opsetVersion, topoSort, qualifiedOp } from './graph.js';
import { numel } from './tensor.js';
import { isNum } from './dims.js';
import { evaluate, fromNumbers, MAX_FOLD_ELEMENTS } from './evaluate.js';
import { constantNodeValue } from './rules-shape.js';
import { UserError } from '../util/errors.js';

export interface ShapeAnalysis {
  /** what is known of every tensor: graph inputs, initializers, node outputs */
  known: Map<string, Known>;
  /** the nodes in the order they were analysed (topological) */
  order: Node[];
}

/** The message for an operator outside SUPPORTED_OPS. */
export function unsupportedMessage(node: Node): string {
  return `node "${node.name}" uses operator "${qualifiedOp(node)}", which modelsmith does not support`;
}

/**
 * dtype and shape of every tensor in the model. Dims are numbers, symbols ('N') or
 * null when unknown.
 *
 * @example
 *   const shapes = inferShapes(loadModel('net.onnx'));
 *   shapes.get('conv1_out'); // { name: 'conv1_out', dtype: 'float32', shape: ['N', 16, 16, 16] }
 */
export function inferShapes(model: Model): Map<string, ValueInfo> {
  const out = new Map<string, ValueInfo>();
  for (const [name, k] of analyzeShapes(model).known) out.set(name, toValueInfo(name, k));
  return out;
}

/**
 * Writes inferred shapes into graph.valueInfo (intermediate tensors) and graph.outputs,
 * in place; returns the same model.
 *
 * @example annotateShapes(model); saveModel(model, 'net.annotated.onnx');
 */
export function annotateShapes(model: Model): Model {
  const shapes = inferShapes(model);
  const g = model.graph;
  const outputs = new Set(g.outputs.map((o) => o.name));
  for (const n of g.nodes) {
    for (const o of n.outputs) if (o && !outputs.has(o)) g.valueInfo.set(o, shapes.get(o)!);
  }
  g.outputs = g.outputs.map((o) => shapes.get(o.name) ?? o);
  return model;
}

export function toValueInfo(name: string, k: Known): ValueInfo {
  return k.shape ? { name, dtype: k.dtype, shape: [...k.shape] } : { name, dtype: k.dtype };
}

/** Full analysis: shapes, dtypes and known values of every tensor. Throws UserError on unsupported ops and shape conflicts. */
export function analyzeShapes(model: Model): ShapeAnalysis {
  const g = model.graph;
  const known = new Map<string, Known>();
  for (const [name, t] of g.initializers) known.set(name, { dtype: t.dtype, shape: [...t.dims], tensor: t });
  // A graph input shadows an initializer of the same name (the initializer is only its default value).
  for (const v of g.inputs) known.set(v.name, v.shape ? { dtype: v.dtype, shape: [...v.shape] } : { dtype: v.dtype });
  const declared = new Map<string, ValueInfo>([...g.valueInfo, ...g.outputs.map((o): [string, ValueInfo] => [o.name, o])]);
  const order = topoSort(g);
  const opset = opsetVersion(model);
  for (const node of order) {
    const outs = inferNode(
      node,
      node.inputs.map((i) => (i ? known.get(i) : undefined)),
      opset,
    );
    node.outputs.forEach((name, i) => {
      if (name) known.set(name, withDeclared(outs[i]!, declared.get(name)));
    });
  }
  return { known, order };
}

/** What inference knows of each output of one node, given what it knows of the inputs. */
export function inferNode(node: Node, inputs: (Known | undefined)[], opset: number): Known[] {
  const rule = ruleFor(node.opType, node.domain);
  if (!rule) throw new UserError(unsupportedMessage(node));
  const ctx = new NodeContext(node, inputs, opset);
  checkArity(ctx, rule.inputs, rule.outputs ?? [1, 1], rule.attrs ?? []);
  let outs: OutInfo[];
  let values: Dim[] | undefined;
  try {
    outs = rule.infer(ctx);
    values = rule.values?.(ctx);
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${ctx.where}: cannot infer its output shapes (${(e as Error).message})`, { cause: e });
  }
  const result: Known[] = node.outputs.map((_, i) => ({ ...(outs[i] ?? { dtype: outs[0]!.dtype }) }));
  const first = result[0];
  if (first) {
    delete first.values;
    const v = values ?? outs[0]?.values;
    if (v && v.length <= MAX_FOLD_ELEMENTS && sizeMatches(first.shape, v.length)) first.values = v;
    const t = constantOutput(node, inputs, result);
    if (t) first.tensor = t;
  }
  return result;
}

function checkArity(c: NodeContext, [minIn, maxIn]: [number, number], [minOut, maxOut]: [number, number], attrs: string[]): void {
  const n = c.node;
  if (n.inputs.length > maxIn) c.fail(`has ${n.inputs.length} inputs, at most ${maxIn} expected`);
  for (let i = 0; i < minIn; i++) {
    if (!n.inputs[i]) c.fail(`input ${i} is missing (${minIn} required, found ${n.inputs.filter(Boolean).length})`);
  }
  if (n.outputs.length > maxOut) c.fail(`has ${n.outputs.length} outputs, at most ${maxOut} expected`);
  if (n.outputs.filter(Boolean).length < Math.min(minOut, 1)) c.fail('has no output');
  for (const a of attrs) if (!n.attributes[a]) c.fail(`required attribute "${a}" is missing`);
}

function sizeMatches(shape: Dim[] | undefined, length: number): boolean {
  if (!shape) return false;
  return !shape.every(isNum) || numel(shape) === length;
}

/**
 * The full value of output 0 when it can be computed without running the model: a
 * Constant node, a small computation on constant inputs, or a shape tensor whose
 * values are all known numbers.
 */
function constantOutput(node: Node, inputs: (Known | undefined)[], outs: Known[]): Tensor | undefined {
  if (node.opType === 'Constant') return constantNodeValue(node);
  const first = outs[0]!;
  const shape = first.shape;
  if (!shape || !shape.every(isNum) || numel(shape) > MAX_FOLD_ELEMENTS) return undefined;
  if (first.values && first.values.every(isNum)) return fromNumbers(first.dtype, shape, first.values);
  const present = inputs.filter((_, i) => node.inputs[i]);
  if (present.length === 0 || !present.every((k) => k?.tensor && numel(k.tensor.dims) <= MAX_FOLD_ELEMENTS)) return undefined;
  if (outs.some((o) => !o.shape || !o.shape.every(isNum))) return undefined;
  return evaluate(
    node,
    inputs.map((k) => k?.tensor),
    outs.map((o) => o.shape as number[]),
    outs.map((o) => o.dtype),
  )?.[0];
}

/** Fills dims that inference could not determine from the model's own declarations. */
function withDeclared(k: Known, d: ValueInfo | undefined): Known {
  if (!d?.shape) return k;
  if (!k.shape) return { ...k, shape: [...d.shape] };
  if (k.shape.length !== d.shape.length) return k;
  return { ...k, shape: k.shape.map((s, i) => (s === null ? d.shape![i]! : s)) };
}
