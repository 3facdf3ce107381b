/** Queries and small edits on the IR that every pass needs. */
import type { Attribute, Graph, Model, Node, Tensor } from './types.js';
import { DEFAULT_IR_VERSION, DEFAULT_OPSET } from './types.js';
import { UserError } from '../util/errors.js';
import { toNumbers } from './tensor.js';

export function emptyGraph(name = 'graph'): Graph {
  return { name, nodes: [], initializers: new Map(), inputs: [], outputs: [], valueInfo: new Map() };
}

export function createModel(graph: Graph, metadata: Record<string, string> = {}): Model {
  return {
    graph,
    irVersion: DEFAULT_IR_VERSION,
    opsets: [{ domain: '', version: DEFAULT_OPSET }],
    producerName: 'modelsmith',
    producerVersion: '0.1.0',
    metadata,
  };
}

/** Whether a domain (of a node or an opset import) is the default ONNX one: '' or 'ai.onnx'; a node without a domain is in it. */
export const isDefaultDomain = (domain: string | undefined): boolean => !domain || domain === 'ai.onnx';

/** A node's operator as users read it: the opType, prefixed by its domain outside the default one. */
export const qualifiedOp = (node: Pick<Node, 'opType' | 'domain'>): string => (isDefaultDomain(node.domain) ? node.opType : `${node.domain}.${node.opType}`);

/** The opset version of the default ('' / 'ai.onnx') domain. */
export function opsetVersion(model: Model): number {
  return model.opsets.find((o) => isDefaultDomain(o.domain))?.version ?? DEFAULT_OPSET;
}

// ---- attributes ----

export function attr(node: Node, name: string): Attribute | undefined {
  return node.attributes[name];
}

export function attrInt(node: Node, name: string, fallback: number): number {
  const a = node.attributes[name];
  if (!a) return fallback;
  if (a.kind !== 'int') throw new UserError(`node ${node.name} (${node.opType}): attribute ${name} should be an int, found ${a.kind}`);
  return a.value;
}

export function attrFloat(node: Node, name: string, fallback: number): number {
  const a = node.attributes[name];
  if (!a) return fallback;
  if (a.kind !== 'float' && a.kind !== 'int') throw new UserError(`node ${node.name} (${node.opType}): attribute ${name} should be a float, found ${a.kind}`);
  return a.value;
}

export function attrInts(node: Node, name: string, fallback: number[]): number[];
export function attrInts(node: Node, name: string): number[] | undefined;
export function attrInts(node: Node, name: string, fallback?: number[]): number[] | undefined {
  const a = node.attributes[name];
  if (!a) return fallback;
  if (a.kind !== 'ints') throw new UserError(`node ${node.name} (${node.opType}): attribute ${name} should be a list of ints, found ${a.kind}`);
  return a.value;
}

export function attrString(node: Node, name: string, fallback: string): string {
  const a = node.attributes[name];
  if (!a) return fallback;
  if (a.kind !== 'string') throw new UserError(`node ${node.name} (${node.opType}): attribute ${name} should be a string, found ${a.kind}`);
  return a.value;
}

export function attrTensor(node: Node, name: string): Tensor | undefined {
  const a = node.attributes[name];
  return a?.kind === 'tensor' ? a.value : undefined;
}

export const ints = (value: number[]): Attribute => ({ kind: 'ints', value });
export const int = (value: number): Attribute => ({ kind: 'int', value });
export const float = (value: number): Attribute => ({ kind: 'float', value });
export const str = (value: string): Attribute => ({ kind: 'string', value });

// ---- structure ----

/** tensor name -> the node producing it */
export function producers(graph: Graph): Map<string, Node> {
  const m = new Map<string, Node>();
  for (const n of graph.nodes) for (const o of n.outputs) if (o) m.set(o, n);
  return m;
}

/** tensor name -> the nodes consuming it (in node order) */
export function consumers(graph: Graph): Map<string, Node[]> {
  const m = new Map<string, Node[]>();
  for (const n of graph.nodes) {
    for (const i of n.inputs) {
      if (!i) continue;
      let list = m.get(i);
      if (!list) m.set(i, (list = []));
      if (!list.includes(n)) list.push(n);
    }
  }
  return m;
}

/** Every tensor name that exists: graph inputs, initializers, node outputs. */
export function tensorNames(graph: Graph): Set<string> {
  const s = new Set<string>();
  for (const v of graph.inputs) s.add(v.name);
  for (const k of graph.initializers.keys()) s.add(k);
  for (const n of graph.nodes) for (const o of n.outputs) if (o) s.add(o);
  return s;
}

/**
 * Nodes in an order where every producer comes before its consumers (Kahn's algorithm,
 * stable with respect to the original order). Throws on cycles and on inputs that
 * nothing produces.
 */
export function topoSort(graph: Graph): Node[] {
  const available = new Set<string>([...graph.inputs.map((v) => v.name), ...graph.initializers.keys(), '']);
  const prod = producers(graph);
  for (const n of graph.nodes) {
    for (const i of n.inputs) {
      if (!available.has(i) && !prod.has(i)) {
        throw new UserError(`node ${n.name} (${n.opType}) reads tensor "${i}", which no node, input or initializer provides`);
      }
    }
  }
  const pending = new Map<Node, number>();
  const waiting = new Map<string, Node[]>();
  const ready: Node[] = [];
  for (const n of graph.nodes) {
    const missing = new Set(n.inputs.filter((i) => !available.has(i)));
    pending.set(n, missing.size);
    for (const i of missing) {
      let l = waiting.get(i);
      if (!l) waiting.set(i, (l = []));
      l.push(n);
    }
    if (missing.size === 0) ready.push(n);
  }
  const order: Node[] = [];
  const index = new Map(graph.nodes.map((n, i) => [n, i]));
  while (ready.length) {
    // Keep the original order among ready nodes so sorting an already sorted graph is a no-op.
    let best = 0;
    for (let k = 1; k < ready.length; k++) if (index.get(ready[k]!)! < index.get(ready[best]!)!) best = k;
    const n = ready.splice(best, 1)[0]!;
    order.push(n);
    for (const o of n.outputs) {
      for (const c of waiting.get(o) ?? []) {
        const left = pending.get(c)! - 1;
        pending.set(c, left);
        if (left === 0) ready.push(c);
      }
      waiting.delete(o);
    }
  }
  if (order.length !== graph.nodes.length) {
    const stuck = graph.nodes
      .filter((n) => !order.includes(n))
      .slice(0, 3)
      .map((n) => n.name);
    throw new UserError(`graph ${graph.name} has a cycle through nodes ${stuck.join(', ')}`);
  }
  return order;
}

/** Constant values known without running anything: initializers and Constant nodes. */
export function constantValue(graph: Graph, name: string, prod = producers(graph)): Tensor | undefined {
  const init = graph.initializers.get(name);
  if (init) return init;
  const p = prod.get(name);
  if (p && p.opType === 'Constant') {
    const t = attrTensor(p, 'value');
    if (t) return t;
    const a = p.attributes;
    if (a['value_int']?.kind === 'int') return { dtype: 'int64', dims: [], data: BigInt64Array.of(BigInt(a['value_int'].value)) };
    if (a['value_ints']?.kind === 'ints')
      return { dtype: 'int64', dims: [a['value_ints'].value.length], data: BigInt64Array.from(a['value_ints'].value.map(BigInt)) };
    if (a['value_float']?.kind === 'float') return { dtype: 'float32', dims: [], data: Float32Array.of(a['value_float'].value) };
    if (a['value_floats']?.kind === 'floats')
      return { dtype: 'float32', dims: [a['value_floats'].value.length], data: Float32Array.from(a['value_floats'].value) };
  }
  return undefined;
}

export function constantNumbers(graph: Graph, name: string, prod?: Map<string, Node>): number[] | undefined {
  const t = constantValue(graph, name, prod);
  return t ? toNumbers(t) : undefined;
}

/** A name not yet used by any tensor or node of the graph. */
export function uniqueName(graph: Graph, base: string, taken = tensorNames(graph)): string {
  for (const n of graph.nodes) taken.add(n.name);
  return freshName(base, (name) => taken.has(name));
}

/** `base`, else the first of `base_1`, `base_2`, ... that is not taken: the one rule every graph writer derives new names by. */
export function freshName(base: string, isTaken: (name: string) => boolean): string {
  if (!isTaken(base)) return base;
  for (let k = 1; ; k++) if (!isTaken(`${base}_${k}`)) return `${base}_${k}`;
}

export function cloneGraph(g: Graph): Graph {
  return {
    name: g.name,
    nodes: g.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs], attributes: { ...n.attributes } })),
    initializers: new Map(g.initializers),
    inputs: g.inputs.map((v) => ({ ...v, ...(v.shape ? { shape: [...v.shape] } : {}) })),
    outputs: g.outputs.map((v) => ({ ...v, ...(v.shape ? { shape: [...v.shape] } : {}) })),
    valueInfo: new Map(g.valueInfo),
  };
}

/** Shallow copy: the graph structure is new, tensors are shared (they are treated as immutable). */
export function cloneModel(m: Model): Model {
  return { ...m, graph: cloneGraph(m.graph), opsets: m.opsets.map((o) => ({ ...o })), metadata: { ...m.metadata } };
}
