/**
 * Reverse-mode differentiation of an ONNX graph: walks the nodes between the tensors
 * whose gradients are wanted and the seeded tensors (the logits) in reverse
 * topological order, calls each operator's GradRule, and sums the gradients of
 * tensors read by several nodes. Backward nodes are appended to the same graph, so
 * rules read forward tensors directly.
 */
import type { Attribute, DType, Graph, Node, Tensor } from '../onnx/types.js';
import type { Known } from '../onnx/op-context.js';
import type { Emitter, GradContext, GradRule } from './types.js';
import { inferNode } from '../onnx/shapes.js';
import { tensorNames, int, isDefaultDomain, freshName } from '../onnx/graph.js';
import { float32, int64, numel } from '../onnx/tensor.js';
import { fmt, isNum } from '../onnx/dims.js';
import { UserError } from '../util/errors.js';

/** Float dtypes: the only tensors gradients flow through. */
export const isFloat = (d: DType): boolean => d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';

const sameDims = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Appends nodes and initializers to a graph whose shapes are all known, keeping names
 * unique and the shape table current, so that whoever emits can ask for the shape of
 * what it just emitted. Used by the training-graph rewrites, the losses and the rules.
 */
export class GraphWriter {
  private readonly taken: Set<string>;
  private readonly shared = new Map<string, string>();

  constructor(
    readonly graph: Graph,
    readonly known: Map<string, Known>,
    readonly opset: number,
  ) {
    this.taken = tensorNames(graph);
    for (const n of graph.nodes) this.taken.add(n.name);
  }

  /** A fresh name derived from `base`, reserved from now on. */
  name(base: string): string {
    const name = freshName(base, (n) => this.taken.has(n));
    this.taken.add(name);
    return name;
  }

  /** Appends a node with `outputs` fresh names (from `hint`) or the given names; returns them, their shapes already known. */
  emit(
    opType: string,
    inputs: readonly string[],
    attributes: Record<string, Attribute> = {},
    outputs: number | readonly string[] = 1,
    hint = opType.toLowerCase(),
  ): string[] {
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, () => this.name(hint)) : [...outputs];
    for (const o of outs) this.taken.add(o);
    const node: Node = { name: this.name(`${hint}.node`), opType, inputs: [...inputs], outputs: outs, attributes };
    this.graph.nodes.push(node);
    this.infer(node);
    return outs;
  }

  /** Records the shapes of a node's outputs (nodes added or changed by hand). */
  infer(node: Node): void {
    const known = inferNode(
      node,
      node.inputs.map((i) => (i ? this.known.get(i) : undefined)),
      this.opset,
    );
    node.outputs.forEach((o, i) => {
      if (o) this.known.set(o, known[i]!);
    });
  }

  /** An initializer holding `value`; small constants with equal values are shared. */
  constant(value: Tensor, hint: string): string {
    const key =
      numel(value.dims) <= 64 ? `${value.dtype}[${value.dims.join(',')}]${Array.from(value.data as ArrayLike<number | bigint>).join(',')}` : undefined;
    const existing = key === undefined ? undefined : this.shared.get(key);
    if (existing) return existing;
    const name = this.name(hint);
    this.graph.initializers.set(name, value);
    this.known.set(name, { dtype: value.dtype, shape: [...value.dims], tensor: value });
    if (key !== undefined) this.shared.set(key, name);
    return name;
  }

  scalar(v: number, hint = 'const'): string {
    return this.constant(float32([], [v]), hint);
  }

  ints(v: readonly number[], hint = 'ints'): string {
    return this.constant(int64([v.length], v), hint);
  }

  shape(tensor: string): number[] {
    const s = this.known.get(tensor)?.shape;
    if (!s || !s.every(isNum)) {
      // an export whose sizes modelsmith cannot follow (data-dependent, or shape arithmetic without a rule) is bad input, not a bug
      const node = this.graph.nodes.find((n) => n.outputs.includes(tensor));
      const from = node ? ` (output of node "${node.name}", ${node.opType})` : '';
      throw new UserError(
        `training needs the size of every tensor once the batch size is fixed, but the shape of tensor "${tensor}"${from} is ${s ? fmt(s) : 'unknown'}: ` +
          'its sizes are computed in a way modelsmith cannot follow',
      );
    }
    return s;
  }

  dtype(tensor: string): DType {
    const k = this.known.get(tensor);
    if (!k) throw new Error(`tensor "${tensor}" is unknown to the training graph`);
    return k.dtype;
  }

  /** Sums `grad` of shape `from` down to shape `to` over the axes numpy broadcasting added or stretched. */
  unbroadcast(grad: string, from: readonly number[], to: readonly number[], hint = 'unbroadcast'): string {
    if (sameDims(from, to)) return grad;
    const lead = from.length - to.length;
    const axes: number[] = [];
    for (let i = 0; i < from.length; i++) if (i < lead || (to[i - lead] === 1 && from[i] !== 1)) axes.push(i);
    let out = grad;
    if (axes.length) out = this.emit('ReduceSum', [grad, this.ints(axes, 'axes')], { keepdims: int(1) }, 1, hint)[0]!;
    if (!sameDims(this.shape(out), to)) out = this.emit('Reshape', [out, this.ints(to, 'shape')], {}, 1, hint)[0]!;
    return out;
  }
}

export interface DifferentiateOptions {
  /** forward tensor -> name of the tensor holding d(loss)/d(tensor) (the logits' gradient) */
  seeds: ReadonlyMap<string, string>;
  /** tensors whose gradients are wanted (graph inputs, parameters or intermediate tensors) */
  wrt: readonly string[];
  /** tensors treated as constants: no gradient flows into them or through them */
  stop?: ReadonlySet<string>;
  /** what a rule sees of a node, when it should see more than the emitted node says */
  view?: (node: Node) => Node;
  rules: Readonly<Record<string, GradRule>>;
}

/**
 * Emits the backward pass into `w.graph` and returns, for each `wrt` tensor, the name
 * of its gradient. A `wrt` tensor the seeds do not depend on gets zeros.
 *
 * @example
 *   const grads = differentiate(writer, { seeds: new Map([['logits', dLogits]]), wrt: ['fc.weight'], rules: RULES });
 */
export function differentiate(w: GraphWriter, o: DifferentiateOptions): Map<string, string> {
  const order = [...w.graph.nodes];
  const stop = o.stop ?? new Set<string>();
  const active = activeTensors(w, order, o.wrt, stop);
  const reaching = tensorsReaching(order, o.seeds.keys());
  const grads = new Gradients(w);
  for (const [t, g] of o.seeds) grads.add(t, g);
  for (let k = order.length - 1; k >= 0; k--) {
    const node = order[k]!;
    const needs = node.inputs.map((i) => !!i && active.has(i));
    if (!needs.some(Boolean) || !node.outputs.some((out) => reaching.has(out))) continue;
    const dOutputs = node.outputs.map((out) => (out ? grads.total(out) : undefined));
    if (dOutputs.every((d) => d === undefined)) continue;
    const view = o.view?.(node) ?? node;
    const results = applyRule(w, o.rules, view, dOutputs, needs);
    node.inputs.forEach((input, i) => {
      if (!needs[i]) return;
      const g = results[i];
      // a silent zero would freeze a parameter without anyone noticing
      if (g === undefined) throw new UserError(`no gradient rule for input ${i} ("${input}") of operator ${node.opType} (node ${node.name})`);
      grads.add(input, checked(w, view, i, g));
    });
  }
  return new Map(o.wrt.map((t) => [t, grads.total(t) ?? zeros(w, t)]));
}

/** Float tensors that depend on a `wrt` tensor (including those tensors themselves). */
function activeTensors(w: GraphWriter, order: readonly Node[], wrt: readonly string[], stop: ReadonlySet<string>): Set<string> {
  const active = new Set(wrt.filter((t) => !stop.has(t)));
  for (const n of order) {
    if (!n.inputs.some((i) => i && active.has(i))) continue;
    for (const out of n.outputs) if (out && !stop.has(out) && isFloat(w.dtype(out))) active.add(out);
  }
  return active;
}

/** Tensors from which some seed tensor is computed. */
function tensorsReaching(order: readonly Node[], seeds: Iterable<string>): Set<string> {
  const reach = new Set(seeds);
  for (let k = order.length - 1; k >= 0; k--) {
    const n = order[k]!;
    if (n.outputs.some((out) => reach.has(out))) for (const i of n.inputs) if (i) reach.add(i);
  }
  return reach;
}

function applyRule(
  w: GraphWriter,
  rules: Readonly<Record<string, GradRule>>,
  node: Node,
  dOutputs: (string | undefined)[],
  needs: boolean[],
): (string | undefined)[] {
  const rule = Object.hasOwn(rules, node.opType) && isDefaultDomain(node.domain) ? rules[node.opType] : undefined;
  if (!rule) throw new UserError(`no gradient rule for operator ${node.opType} (node ${node.name})`);
  return rule(new RuleContext(w, node, dOutputs, needs));
}

/** A rule's gradient must have its input's shape; a mismatch is a bug in the rule, caught here rather than in ONNX Runtime. */
function checked(w: GraphWriter, node: Node, i: number, grad: string): string {
  const want = w.shape(node.inputs[i]!);
  const got = w.shape(grad);
  if (!sameDims(want, got)) {
    throw new Error(
      `gradient rule for ${node.opType} (node ${node.name}) gave input ${i} ("${node.inputs[i]}", [${want.join(',')}]) a gradient of shape [${got.join(',')}]`,
    );
  }
  return grad;
}

function zeros(w: GraphWriter, t: string): string {
  const value = { kind: 'tensor', value: float32([1], [0]) } as const;
  return w.emit('ConstantOfShape', [w.ints(w.shape(t), 'shape')], { value }, 1, `grad/${t}/zeros`)[0]!;
}

/** Gradient contributions per tensor, summed when first read. */
class Gradients {
  private readonly parts = new Map<string, string[]>();
  constructor(private readonly w: GraphWriter) {}

  add(tensor: string, grad: string): void {
    const list = this.parts.get(tensor);
    if (list) list.push(grad);
    else this.parts.set(tensor, [grad]);
  }

  total(tensor: string): string | undefined {
    const list = this.parts.get(tensor);
    if (!list || list.length === 0) return undefined;
    if (list.length > 1) {
      const sum = this.w.emit('Sum', list, {}, 1, `grad/${tensor}/sum`)[0]!;
      this.parts.set(tensor, [sum]);
      return sum;
    }
    return list[0];
  }
}

class RuleContext implements GradContext {
  private readonly prefix: string;

  constructor(
    private readonly w: GraphWriter,
    readonly node: Node,
    readonly dOutputs: readonly (string | undefined)[],
    readonly needs: readonly boolean[],
  ) {
    this.prefix = `grad/${node.name || node.opType}`;
  }

  shape(tensor: string): number[] {
    return this.w.shape(tensor);
  }

  dtype(tensor: string): DType {
    return this.w.dtype(tensor);
  }

  constant(tensor: string): Tensor | undefined {
    return this.w.known.get(tensor)?.tensor;
  }

  // the writer fills in the other defaults; the hint is needed here to scope it to the node
  readonly emit: GradContext['emit'] = (opType, inputs, attributes, outputs, hint = opType.toLowerCase()) =>
    this.w.emit(opType, inputs, attributes, outputs, `${this.prefix}/${hint}`);

  addConstant(value: Tensor, hint: string): string {
    return this.w.constant(value, `${this.prefix}/${hint}`);
  }

  forward(tensor: string): string {
    return tensor;
  }

  unbroadcast(grad: string, from: readonly number[], to: readonly number[]): string {
    return this.w.unbroadcast(grad, from, to, `${this.prefix}/unbroadcast`);
  }
}

// ---- small helpers for rules ----

/** A float32 scalar constant (broadcasts against anything). */
export const scalarConstant = (e: Emitter, v: number, hint = 'scalar'): string => e.addConstant(float32([], [v]), hint);

/** A 1-D int64 constant (axes, shapes, pads, split sizes). */
export const intsConstant = (e: Emitter, v: readonly number[], hint = 'ints'): string => e.addConstant(int64([v.length], v), hint);

/** One emitted node with one output. */
export const emit1 = (e: Emitter, op: string, inputs: readonly string[], attributes: Record<string, Attribute> = {}, hint?: string): string =>
  e.emit(op, inputs, attributes, 1, hint)[0]!;

/** `x` reshaped to the static shape `dims`. */
export const reshape = (e: Emitter, x: string, dims: readonly number[], hint = 'reshape'): string =>
  emit1(e, 'Reshape', [x, intsConstant(e, dims, `${hint}_shape`)], {}, hint);
