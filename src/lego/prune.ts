/**
 * Structural pruning (docs/lego-method.md §4): removes every channel outside the kept masks
 * consistently across the graph, one rule per operator kind (operators.ts). Layers lose
 * output channels (weights and bias) and input channels (Flatten blocks, Concat offsets
 * and gathers come from the channel refs); grouped convolutions lose whole groups;
 * per-channel constants (BatchNorm, biases added after a MatMul, layer scales, position
 * embeddings) are sliced; selections of channels (Slice, Split, Gather on the channel
 * axis, channel shuffles) become one Gather of the kept channels; reshape targets are
 * rewritten with the new sizes; the classifier keeps only the task's rows. The input
 * model is not changed.
 *
 * @example
 *   const component = pruneModel(cg, keep);
 */
import type { Dim, Model, Node, Tensor, TensorData } from '../onnx/types.js';
import { cloneModel, constantValue, int, producers, uniqueName } from '../onnx/graph.js';
import { removeDeadNodes, removeUnused } from '../onnx/prune.js';
import { analyzeShapes } from '../onnx/shapes.js';
import { int64, numel } from '../onnx/tensor.js';
import { UserError } from '../util/errors.js';
import type { OperatorKind } from './operators.js';
import type { Activation, ChannelGraph, ChannelRef, Layer, SpaceMasks } from './channels.js';
import { indicesOf, maskOf, prunable, refSize } from './channels.js';

/** Copy of `t` keeping only indices `keep` along `axis`. */
export function sliceAxis(t: Tensor, axis: number, keep: readonly number[]): Tensor {
  const dims = [...t.dims];
  const outer = numel(dims.slice(0, axis));
  const inner = numel(dims.slice(axis + 1));
  const n = dims[axis]!;
  dims[axis] = keep.length;
  const Ctor = t.data.constructor as new (n: number) => TensorData;
  const out = new Ctor(outer * keep.length * inner);
  for (let a = 0; a < outer; a++) {
    for (let j = 0; j < keep.length; j++) {
      const src = (a * n + keep[j]!) * inner;
      const dst = (a * keep.length + j) * inner;
      (out as Float32Array).set((t.data as Float32Array).subarray(src, src + inner), dst);
    }
  }
  return { dtype: t.dtype, dims, data: out };
}

type Tracked = Extract<Activation, { kind: 'tracked' }>;

/**
 * The pruned model. `keep` holds the kept channels of every space (computeMasks);
 * fixed spaces must be whole there and grouped convolutions' groups closed (closeKeep).
 */
export function pruneModel(cg: ChannelGraph, keep: SpaceMasks): Model {
  return new Pruner(cg, keep).run();
}

class Pruner {
  private readonly out: Model;
  private readonly prod: Map<string, Node>;
  private readonly users = new Map<string, number>();
  private readonly layerOf: Map<Node, Layer>;
  /** node index -> the nodes that replace it */
  private readonly replacements = new Map<number, Node[]>();

  constructor(
    private readonly cg: ChannelGraph,
    private readonly keep: SpaceMasks,
  ) {
    this.out = cloneModel(cg.model);
    this.prod = producers(this.out.graph);
    for (const n of this.out.graph.nodes) for (const i of n.inputs) if (i) this.users.set(i, (this.users.get(i) ?? 0) + 1);
    this.layerOf = new Map(cg.layers.map((l) => [l.node, l]));
  }

  run(): Model {
    const cg = this.cg;
    const g = this.out.graph;
    // The clone's nodes are in the original order; roles are keyed by the original nodes.
    cg.model.graph.nodes.forEach((node, index) => {
      const role = cg.roles.get(node);
      if (!role || role === 'ignore') return;
      if (node.outputs.some((o) => cg.gathers.has(o))) return this.gather(node, index);
      PRUNE[role].call(this, node, index);
    });
    g.nodes = g.nodes.flatMap((n, i) => this.replacements.get(i) ?? [n]);
    g.valueInfo = new Map();
    const logits = g.outputs[0]!;
    const k = this.keptCount(cg.refs.get(cg.logits)!);
    g.outputs[0] = { ...logits, shape: logits.shape ? [logits.shape[0] ?? 'N', k] : ['N', k] };
    removeDeadNodes(g);
    removeUnused(g);
    this.checkShapes();
    return this.out;
  }

  // ---- helpers ----

  /** Kept channel indices of a ref, or undefined when all are kept. */
  private kept(ref: ChannelRef): number[] | undefined {
    const m = maskOf(this.cg, ref, this.keep);
    return m.every((x) => x) ? undefined : indicesOf(m);
  }

  private keptCount(ref: ChannelRef): number {
    return indicesOf(maskOf(this.cg, ref, this.keep)).length;
  }

  private constant(name: string): Tensor | undefined {
    return constantValue(this.out.graph, name, this.prod) ?? this.cg.known.get(name)?.tensor;
  }

  private copy(index: number): Node {
    return this.out.graph.nodes[index]!;
  }

  /** Replaces input `slot` of node `index` by a new constant value. */
  private replace(index: number, slot: number, value: Tensor): void {
    const g = this.out.graph;
    const node = g.nodes[index]!;
    const name = node.inputs[slot]!;
    if (g.initializers.has(name) && this.users.get(name) === 1) {
      g.initializers.set(name, value);
      return;
    }
    const fresh = uniqueName(g, `${name}.pruned`);
    g.initializers.set(fresh, value);
    node.inputs[slot] = fresh;
  }

  private tracked(tensor: string): Tracked | undefined {
    const a = this.cg.acts.get(tensor);
    return a?.kind === 'tracked' ? a : undefined;
  }

  /** The shape a tensor has after pruning, where known: the channel axis shrinks to the kept count. */
  prunedShape(tensor: string): Dim[] | undefined {
    const s = this.cg.known.get(tensor)?.shape;
    const a = this.tracked(tensor);
    if (!s || !a) return s;
    const out = [...s];
    out[a.axis] = this.keptCount(a.ref);
    return out;
  }

  // ---- rules, one per kind ----

  layer(node: Node, index: number): void {
    const layer = this.layerOf.get(node)!;
    const copy = this.copy(index);
    const outKeep = this.kept(layer.outRef);
    const inKeep = layer.inRef.kind === 'untracked' ? undefined : this.kept(layer.inRef);
    let w = this.constant(copy.inputs[1]!)!;
    if (layer.kind === 'conv') {
      const groups = layer.conv!.groups;
      if (groups === 1) {
        if (outKeep) w = sliceAxis(w, 0, outKeep);
        if (inKeep) w = sliceAxis(w, 1, inKeep);
      } else if (outKeep) {
        // depthwise or grouped: whole groups go (closeKeep), so the weight loses output rows only
        const og = layer.outChannels / groups;
        if (outKeep.length % og !== 0 || (inKeep && inKeep.length / layer.groupIn !== outKeep.length / og)) {
          throw new Error(`node "${node.name}": pruning would split a group of a grouped convolution (a modelsmith bug)`);
        }
        w = sliceAxis(w, 0, outKeep);
        copy.attributes = { ...copy.attributes, group: int(outKeep.length / og) };
      }
    } else {
      const [oAxis, iAxis] = layer.transposed ? [1, 0] : [0, 1];
      if (outKeep) w = sliceAxis(w, oAxis, outKeep);
      if (inKeep) w = sliceAxis(w, iAxis, inKeep);
    }
    if (outKeep || inKeep) this.replace(index, 1, w);
    const biasName = copy.inputs[2];
    if (outKeep && biasName) {
      const b = this.constant(biasName);
      if (!b) throw new UserError(`node "${node.name}" (${node.opType}): bias "${biasName}" is not a constant`);
      const size = layer.outChannels;
      if (b.dims.length >= 1 && b.dims[b.dims.length - 1] === size) this.replace(index, 2, sliceAxis(b, b.dims.length - 1, outKeep));
      else if (numel(b.dims) !== 1) throw new UserError(`node "${node.name}" (${node.opType}): bias of shape [${b.dims.join(',')}] cannot be pruned`);
    }
  }

  /** The node's output channel space when it loses channels: where the channels sit, which are kept, how many there were. */
  private prunedOutput(node: Node): { a: Tracked; chKeep: number[]; c: number } | undefined {
    const a = this.tracked(node.outputs[0]!);
    if (!a) return undefined;
    const chKeep = this.kept(a.ref);
    if (!chKeep) return undefined;
    return { a, chKeep, c: refSize(this.cg, a.ref) };
  }

  /** Constant operands with a per-channel axis (aligned from the right) lose the removed channels. */
  operands(node: Node, index: number): void {
    const out = this.prunedOutput(node);
    if (!out) return;
    const { a, chKeep, c } = out;
    node.inputs.forEach((name, slot) => {
      if (!name || this.cg.acts.has(name)) return;
      const t = this.constant(name);
      if (!t) return;
      const axis = a.axis - (a.rank - t.dims.length);
      if (axis >= 0 && t.dims[axis] === c && c > 1) this.replace(index, slot, sliceAxis(t, axis, chKeep));
    });
  }

  channelParams(node: Node, index: number): void {
    const out = this.prunedOutput(node);
    if (!out) return;
    const { chKeep, c } = out;
    node.inputs.forEach((name, slot) => {
      if (slot === 0 || !name) return;
      const t = this.constant(name);
      if (t && t.dims.length === 1 && t.dims[0] === c) this.replace(index, slot, sliceAxis(t, 0, chKeep));
    });
  }

  concat(node: Node, index: number): void {
    // on the channel axis the parts are already pruned; on another axis constants are sliced
    this.operands(node, index);
  }

  /** A Reshape whose output channels shrink gets a constant target with the new sizes. */
  reshape(node: Node, index: number): void {
    if (node.opType !== 'Reshape') return;
    const out = node.outputs[0]!;
    const a = this.tracked(out);
    if (!a || !prunable(this.cg, a.ref)) return;
    const dims = this.prunedShape(out)!;
    if (dims.filter((d) => typeof d !== 'number').length > 1) throw new Error(`node "${node.name}": reshape target cannot be rewritten (a modelsmith bug)`);
    this.replace(
      index,
      1,
      int64(
        [dims.length],
        dims.map((d) => (typeof d === 'number' ? d : -1)),
      ),
    );
  }

  /** Channel selections and shuffles: one Gather of the kept channels per output. */
  gather(node: Node, index: number): void {
    const cg = this.cg;
    const nodes: Node[] = [];
    for (const o of node.outputs) {
      const spec = o ? cg.gathers.get(o) : undefined;
      if (!o || !spec) continue;
      const src = this.tracked(spec.source)!;
      if (!spec.always && !prunable(cg, src.ref)) return;
      const srcMask = maskOf(cg, src.ref, this.keep);
      const position = new Map(indicesOf(srcMask).map((c, p) => [c, p]));
      const outKept = indicesOf(maskOf(cg, this.tracked(o)!.ref, this.keep));
      const picks = outKept.map((j) => position.get(spec.index[j]!));
      if (picks.some((p) => p === undefined)) throw new Error(`node "${node.name}": a kept channel reads a removed one (a modelsmith bug)`);
      const idx = uniqueName(this.out.graph, `${o}.channels`);
      this.out.graph.initializers.set(idx, int64([picks.length], picks as number[]));
      const name = `${node.name}.channels${nodes.length ? `_${nodes.length}` : ''}`;
      nodes.push({ name, opType: 'Gather', inputs: [spec.source, idx], outputs: [o], attributes: { axis: int(spec.axis) } });
    }
    this.replacements.set(index, nodes);
  }

  /** Every activation that survives has the channel count its refs say (shape arithmetic the pruner left alone included). */
  private checkShapes(): void {
    const { known } = analyzeShapes(this.out);
    for (const [tensor, a] of this.cg.acts) {
      if (a.kind !== 'tracked') continue;
      const d = known.get(tensor)?.shape?.[a.axis];
      if (typeof d !== 'number') continue;
      const want = this.keptCount(a.ref);
      if (d !== want) throw new Error(`pruning left tensor "${tensor}" with ${d} channels where ${want} are kept (a modelsmith bug)`);
    }
  }
}

type Rule = (this: Pruner, node: Node, index: number) => void;
const none: Rule = () => undefined;

/** What pruning does to each kind of node (selections on the channel axis are handled first, as gathers). */
const PRUNE: Record<OperatorKind, Rule> = {
  layer: Pruner.prototype.layer,
  binary: Pruner.prototype.operands,
  'channel-params': Pruner.prototype.channelParams,
  concat: Pruner.prototype.concat,
  reshape: Pruner.prototype.reshape,
  unary: none,
  spatial: none,
  normalize: none,
  reduce: none,
  transpose: none,
  select: none,
  mix: none,
  shape: none,
};

/**
 * The original model with every removed channel zeroed where a layer reads it (the
 * layer's input weights), and with the logits restricted to the kept rows by a Gather.
 * The pruned model must compute exactly this: tests compare the two.
 */
export function maskedOriginal(cg: ChannelGraph, keep: SpaceMasks): Model {
  const out = cloneModel(cg.model);
  const g = out.graph;
  const prod = producers(g);
  for (const layer of cg.layers) {
    if (layer.inRef.kind === 'untracked') continue;
    const inMask = maskOf(cg, layer.inRef, keep);
    if (inMask.every((x) => x)) continue;
    const node = g.nodes[cg.model.graph.nodes.indexOf(layer.node)]!;
    const w = constantValue(g, node.inputs[1]!, prod) ?? cg.known.get(node.inputs[1]!)!.tensor!;
    const data = Float32Array.from(w.data as Float32Array);
    const [d0, d1] = [w.dims[0]!, w.dims[1]!];
    const inner = numel(w.dims.slice(2));
    const groups = layer.conv?.groups ?? 1;
    const og = layer.outChannels / groups;
    for (let a = 0; a < d0; a++) {
      for (let b = 0; b < d1; b++) {
        // weight [O, I/groups, ...] (conv, Gemm transB=1) or [I, O] (MatMul, Gemm transB=0)
        const i = layer.transposed ? a : Math.floor(a / og) * layer.groupIn + b;
        if (!inMask[i]) data.fill(0, (a * d1 + b) * inner, (a * d1 + b + 1) * inner);
      }
    }
    const name = uniqueName(g, `${node.inputs[1]}.masked`);
    g.initializers.set(name, { dtype: 'float32', dims: [...w.dims], data });
    node.inputs[1] = name;
  }
  const rows = indicesOf(maskOf(cg, cg.refs.get(cg.logits)!, keep));
  const idx = uniqueName(g, 'masked.rows');
  g.initializers.set(idx, int64([rows.length], rows));
  const old = g.outputs[0]!.name;
  const fresh = uniqueName(g, `${old}.full`);
  for (const n of g.nodes) n.outputs = n.outputs.map((o) => (o === old ? fresh : o));
  for (const n of g.nodes) n.inputs = n.inputs.map((i) => (i === old ? fresh : i));
  g.nodes.push({ name: 'masked.gather', opType: 'Gather', inputs: [fresh, idx], outputs: [old], attributes: { axis: int(1) } });
  g.outputs[0] = { name: old, dtype: 'float32', shape: ['N', rows.length] };
  g.valueInfo = new Map();
  removeUnused(g);
  return out;
}
