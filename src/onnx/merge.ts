/**
 * Combining graphs: rename a graph's tensors under a prefix so that several models can
 * live in one graph, then merge them (side by side on a shared input, or chained by
 * connecting a tensor of one part to an input of another, as stitching does).
 */
import type { Dim, Graph, Model, OpsetImport, ValueInfo } from './types.js';
import { createModel, emptyGraph, tensorNames, topoSort, isDefaultDomain } from './graph.js';
import { inferShapes } from './shapes.js';
import { keepNeeded, removeUnused, usedTensors } from './prune.js';
import { checkExists } from './extract.js';
import { fmt } from './dims.js';
import { UserError } from '../util/errors.js';

/**
 * A copy of `graph` with every tensor and node name prefixed, except the tensors named
 * in `shared` (e.g. the common image input). Node names are always prefixed.
 *
 * @example prefixNames(g, 'a/', ['input']) // 'conv1_out' -> 'a/conv1_out', 'input' stays
 */
export function prefixNames(graph: Graph, prefix: string, shared: Iterable<string> = []): Graph {
  const keep = new Set(shared);
  const re = (n: string): string => (n === '' || keep.has(n) ? n : prefix + n);
  const info = (v: ValueInfo): ValueInfo => ({ ...v, name: re(v.name), ...(v.shape ? { shape: [...v.shape] } : {}) });
  return {
    name: graph.name,
    nodes: graph.nodes.map((n) => ({ ...n, name: prefix + n.name, inputs: n.inputs.map(re), outputs: n.outputs.map(re), attributes: { ...n.attributes } })),
    initializers: new Map([...graph.initializers].map(([k, t]) => [re(k), t])),
    inputs: graph.inputs.map(info),
    outputs: graph.outputs.map(info),
    valueInfo: new Map([...graph.valueInfo].map(([k, v]) => [re(k), info(v)])),
  };
}

export interface MergePart {
  model: Model;
  /** prepended to the part's node and tensor names ('' leaves them as they are) */
  prefix: string;
}

/** Feed tensor `from` (final, prefixed name) into the graph input `to` of another part. */
export interface Connection {
  from: string;
  to: string;
}

export interface MergeOptions {
  /** un-prefixed tensor names kept as they are in every part, so the parts share them (e.g. ['input']) */
  shared?: string[];
  connect?: Connection[];
  /** graph outputs of the result (final names); default: every part's outputs, minus connected ones */
  outputs?: string[];
  name?: string;
  metadata?: Record<string, string>;
  /** drop nodes, initializers and inputs not needed for the outputs (default true) */
  prune?: boolean;
}

/**
 * One model containing all parts. Graph inputs with the same final name become one
 * input (their shapes must agree); `connect` replaces a part's input by another part's
 * tensor. Opsets are the highest version of each domain among the parts.
 *
 * @example
 *   // two classifiers side by side on one image input
 *   mergeGraphs([{ model: a, prefix: 'a/' }, { model: b, prefix: 'b/' }], { shared: ['input'] });
 *   // A's first half into a stitch, then into B's second half
 *   mergeGraphs([{ model: head, prefix: 'a/' }, { model: stitch, prefix: 's/' }, { model: tail, prefix: 'b/' }],
 *     { connect: [{ from: 'a/features', to: 's/x' }, { from: 's/y', to: 'b/features' }], outputs: ['b/logits'] });
 */
export function mergeGraphs(parts: MergePart[], opts: MergeOptions = {}): Model {
  if (parts.length === 0) throw new UserError('mergeGraphs: no models to merge');
  const prefixes = parts.map((p) => p.prefix);
  const dup = prefixes.find((p, i) => prefixes.indexOf(p) !== i);
  if (dup !== undefined) throw new UserError(`mergeGraphs: prefix "${dup}" is used by two parts; each part needs its own prefix`);
  const graphs = parts.map((p) => prefixNames(p.model.graph, p.prefix, opts.shared));
  const g = combine(graphs, opts.name ?? 'merged');
  for (const c of opts.connect ?? []) connect(g, c);
  const connected = new Set((opts.connect ?? []).map((c) => c.from));
  const outputs = opts.outputs ?? graphs.flatMap((p) => p.outputs.map((o) => o.name)).filter((o) => !connected.has(o));
  const names = tensorNames(g);
  for (const o of outputs) checkExists(o, names);
  const declared = new Map(graphs.flatMap((p) => p.outputs.map((o): [string, ValueInfo] => [o.name, o])));
  g.outputs = outputs.map((o) => declared.get(o) ?? { name: o, dtype: 'float32' });
  if (opts.prune ?? true) {
    keepNeeded(g);
    removeUnused(g);
    const used = usedTensors(g);
    g.inputs = g.inputs.filter((v) => used.has(v.name));
  }
  g.nodes = topoSort(g);
  const model = createModel(g, opts.metadata ?? {});
  model.opsets = mergeOpsets(parts.map((p) => p.model.opsets));
  model.irVersion = Math.max(...parts.map((p) => p.model.irVersion));
  const shapes = inferShapes(model);
  g.outputs = g.outputs.map((o) => shapes.get(o.name) ?? o);
  return model;
}

/** Puts prefixed graphs into one, checking that no tensor is defined twice. */
function combine(graphs: Graph[], name: string): Graph {
  const g = emptyGraph(name);
  const defined = new Map<string, number>();
  const define = (t: string, part: number): void => {
    const other = defined.get(t);
    if (other !== undefined && other !== part)
      throw new UserError(
        `mergeGraphs: tensor "${t}" is defined by part ${other} and part ${part}; give the parts different prefixes or leave it out of shared`,
      );
    defined.set(t, part);
  };
  graphs.forEach((p, k) => {
    for (const [n, t] of p.initializers) {
      define(n, k);
      g.initializers.set(n, t);
    }
    for (const n of p.nodes) for (const o of n.outputs) if (o) define(o, k);
    g.nodes.push(...p.nodes);
    for (const [n, v] of p.valueInfo) g.valueInfo.set(n, v);
    for (const v of p.inputs) addInput(g, v);
  });
  return g;
}

/** Adds a graph input, or checks that an input of the same name has a compatible dtype and shape. */
function addInput(g: Graph, v: ValueInfo): void {
  const have = g.inputs.find((i) => i.name === v.name);
  if (!have) {
    g.inputs.push(v);
    return;
  }
  const clash = (): never => {
    throw new UserError(`mergeGraphs: shared input "${v.name}" is ${have.dtype}${fmt(have.shape)} in one part and ${v.dtype}${fmt(v.shape)} in another`);
  };
  if (have.dtype !== v.dtype) clash();
  if (!have.shape || !v.shape) return;
  if (have.shape.length !== v.shape.length) clash();
  have.shape = have.shape.map((d, i): Dim => {
    const e = v.shape![i]!;
    if (typeof d === 'number' && typeof e === 'number' && d !== e) clash();
    return typeof d === 'number' ? d : typeof e === 'number' ? e : (d ?? e);
  });
}

function connect(g: Graph, c: Connection): void {
  const names = tensorNames(g);
  checkExists(c.from, names);
  if (!g.inputs.some((v) => v.name === c.to)) {
    throw new UserError(
      `mergeGraphs: cannot connect "${c.from}" to "${c.to}": "${c.to}" is not a graph input of any part (inputs: ${g.inputs.map((v) => v.name).join(', ')})`,
    );
  }
  g.inputs = g.inputs.filter((v) => v.name !== c.to);
  for (const n of g.nodes) n.inputs = n.inputs.map((i) => (i === c.to ? c.from : i));
  g.valueInfo.delete(c.to);
}

/** The highest version of each domain's opset among the lists (the default domain as ''): what a graph combining their models imports. */
export function mergeOpsets(lists: readonly (readonly OpsetImport[])[]): OpsetImport[] {
  const best = new Map<string, number>();
  for (const list of lists) {
    for (const o of list) {
      const d = isDefaultDomain(o.domain) ? '' : o.domain;
      best.set(d, Math.max(best.get(d) ?? 0, o.version));
    }
  }
  return [...best].map(([domain, version]) => ({ domain, version }));
}
