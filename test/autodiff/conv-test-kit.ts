/**
 * Pieces shared by the convolution/pool/norm/resize gradient tests: a graph emitter
 * standing in for the differentiator's GradContext, and float32 <-> float64 glue for
 * comparing ONNX Runtime with the reference interpreter.
 */
import assert from 'node:assert/strict';
import type { Attribute, Graph, Model, Node, Tensor } from '../../src/onnx/types.js';
import type { GradContext, GradRule } from '../../src/autodiff/types.js';
import { createModel, emptyGraph, uniqueName } from '../../src/onnx/graph.js';
import { float32, int64, numel } from '../../src/onnx/tensor.js';
import { Rng } from '../../src/util/random.js';
import { REF_OPS, type RefTensor } from '../helpers/reference/registry.js';
import { runOrt } from '../helpers/graphs.js';
import { inferShapes } from '../../src/onnx/shapes.js';

/** Writes emitted nodes into a standalone graph whose inputs are declared by the test. */
export class TestEmitter {
  readonly graph: Graph = emptyGraph('test');
  emit(opType: string, inputs: readonly string[], attributes: Record<string, Attribute> = {}, outputs = 1, hint = opType): string[] {
    const names = Array.from({ length: outputs }, (_, i) => uniqueName(this.graph, `${hint}${i ? `_${i}` : ''}`));
    this.graph.nodes.push({ name: uniqueName(this.graph, `${hint}_node`), opType, inputs: [...inputs], outputs: names, attributes });
    return names;
  }
  addConstant(value: Tensor, hint: string): string {
    const name = uniqueName(this.graph, hint);
    this.graph.initializers.set(name, value);
    return name;
  }
  addConstantNamed(name: string, value: Tensor): void {
    this.graph.initializers.set(name, value);
  }
  input(name: string, shape: number[]): string {
    this.graph.inputs.push({ name, dtype: 'float32', shape });
    return name;
  }
  model(outputs: string[]): Model {
    this.graph.outputs = outputs.map((name) => ({ name, dtype: 'float32' }));
    return createModel(this.graph);
  }
}

export function randomRef(rng: Rng, dims: number[]): RefTensor {
  return { dims, data: Float64Array.from({ length: numel(dims) }, () => rng.normal()) };
}

export const toFloat32Tensor = (t: RefTensor): Tensor => float32(t.dims, Float32Array.from(t.data));

/** Runs one reference operator. */
export function refOp(node: Node, inputs: (RefTensor | undefined)[]): RefTensor[] {
  const op = REF_OPS.get(node.opType);
  assert.ok(op, `no reference op ${node.opType}`);
  return op(node, inputs);
}

/** Runs the node in ORT (float32) and in the reference (float64); asserts every output agrees. */
export async function assertMatchesOrt(
  node: Node,
  inputs: Record<string, RefTensor>,
  tolerance = 1e-4,
  outputDtypes: Record<string, 'int64'> = {},
): Promise<RefTensor[]> {
  const ref = refOp(
    node,
    node.inputs.map((n) => (n ? inputs[n] : undefined)),
  );
  const g = emptyGraph('single');
  g.nodes.push(node);
  for (const name of node.inputs) if (name) g.inputs.push({ name, dtype: 'float32', shape: inputs[name]!.dims });
  g.outputs = node.outputs.map((name) => ({ name, dtype: outputDtypes[name] ?? 'float32' }));
  const feeds = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, toFloat32Tensor(v)]));
  const got = await runOrt(createModel(g), feeds);
  node.outputs.forEach((name, i) => {
    const o = got[name]!;
    assert.deepEqual(ref[i]!.dims, o.dims, `${node.opType} output ${name} shape`);
    assertClose(ref[i]!.data, Array.from(o.data as ArrayLike<number | bigint>, Number), tolerance, `${node.opType} output ${name}`);
  });
  return ref;
}

export function assertClose(expected: ArrayLike<number>, actual: ArrayLike<number>, tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 1e-12;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(expected[i]! - actual[i]!);
    if (err > tolerance * Math.max(1, scale)) assert.fail(`${what}: element ${i} is ${actual[i]}, expected ${expected[i]} (tolerance ${tolerance})`);
  }
}

/** <a, b> for equally shaped tensors. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/**
 * The exact gradient of <dY, f(inputs)> with respect to input `which` for an operator
 * linear in that input: one reference evaluation per coordinate with a one-hot input.
 */
export function linearGradient(node: Node, inputs: (RefTensor | undefined)[], which: number, dy: RefTensor): Float64Array {
  const target = inputs[which]!;
  const grad = new Float64Array(target.data.length);
  for (let j = 0; j < grad.length; j++) {
    const onehot = { dims: target.dims, data: new Float64Array(target.data.length) };
    onehot.data[j] = 1;
    const args = inputs.map((t, i) => (i === which ? onehot : t));
    grad[j] = dot(dy.data, refOp(node, args)[0]!.data);
  }
  return grad;
}

/**
 * Runs one gradient rule on one node, as the differentiator would, in ONNX Runtime:
 * the forward node and the rule's backward nodes in one graph, fed float32 inputs and
 * output gradients. Returns each input's gradient (undefined where the rule gave none).
 */
export async function runRule(
  rule: GradRule,
  node: Node,
  inputs: Record<string, RefTensor>,
  options: { needs?: boolean[]; constants?: string[]; int64?: string[]; seed?: number; withoutForward?: boolean } = {},
): Promise<{ grads: (Float32Array | undefined)[]; dys: RefTensor[]; outputs: RefTensor[] }> {
  const outputs = refOp(
    node,
    node.inputs.map((n) => (n ? inputs[n] : undefined)),
  );
  const rng = new Rng(options.seed ?? 7);
  const dys = outputs.map((o) => randomRef(rng, o.dims));
  const e = new TestEmitter();
  const shapes = new Map<string, number[]>();
  const constants = new Set([...(options.constants ?? []), ...(options.int64 ?? [])]);
  for (const name of node.inputs) {
    if (!name) continue;
    shapes.set(name, inputs[name]!.dims);
    if (options.int64?.includes(name)) e.addConstantNamed(name, int64(inputs[name]!.dims, inputs[name]!.data));
    else if (constants.has(name)) e.addConstantNamed(name, toFloat32Tensor(inputs[name]!));
    else e.input(name, inputs[name]!.dims);
  }
  node.outputs.forEach((o, i) => shapes.set(o, outputs[i]!.dims));
  if (!options.withoutForward) e.graph.nodes.push(node);
  const dOutputs = node.outputs.map((o, i) => (i === 0 ? e.input(`d_${o}`, dys[i]!.dims) : undefined));
  const ctx: GradContext = {
    node,
    dOutputs,
    needs: options.needs ?? node.inputs.map((n) => !!n && !constants.has(n)),
    shape: (t) => {
      const s = shapes.get(t);
      assert.ok(s, `test context: no shape for ${t}`);
      return s;
    },
    dtype: () => 'float32',
    constant: (t) => e.graph.initializers.get(t),
    emit: (op, ins, attrs, n, hint) => e.emit(op, ins, attrs, n, hint),
    addConstant: (v, hint) => e.addConstant(v, hint),
    forward: (t) => t,
    unbroadcast: () => assert.fail('unbroadcast is not used by these rules'),
  };
  const grads = rule(ctx);
  const wanted = grads.filter((g): g is string => !!g);
  const feeds: Record<string, Tensor> = { [`d_${node.outputs[0]}`]: toFloat32Tensor(dys[0]!) };
  for (const [k, v] of Object.entries(inputs)) if (!constants.has(k)) feeds[k] = toFloat32Tensor(v);
  const model = e.model(wanted);
  // As the differentiator does: every emitted operator must be known to the IR's shape
  // inference, and each gradient must have its input's shape.
  const inferred = inferShapes(model);
  grads.forEach((g, i) => {
    if (g) assert.deepEqual(inferred.get(g)?.shape, inputs[node.inputs[i]!]!.dims, `inferred shape of the gradient of ${node.inputs[i]}`);
  });
  const got = wanted.length > 0 ? await runOrt(model, feeds) : {};
  return { grads: grads.map((g) => (g ? (got[g]!.data as Float32Array) : undefined)), dys, outputs };
}

/** Central finite differences of <dY, output 0 of node> in float64 with respect to input `which`. */
export function numericGradient(node: Node, inputs: (RefTensor | undefined)[], which: number, dy: RefTensor, h = 1e-6): Float64Array {
  const target = inputs[which]!;
  const grad = new Float64Array(target.data.length);
  const at = (j: number, delta: number): number => {
    const data = Float64Array.from(target.data);
    data[j] += delta;
    const args = inputs.map((t, i) => (i === which ? { dims: target.dims, data } : t));
    return dot(dy.data, refOp(node, args)[0]!.data);
  };
  for (let j = 0; j < grad.length; j++) grad[j] = (at(j, h) - at(j, -h)) / (2 * h);
  return grad;
}
