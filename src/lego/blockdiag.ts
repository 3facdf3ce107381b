/**
 * Block-diagonal assembly of components of one architecture family (spec section 6):
 * graphs with the same topology whose layers may have different widths (pruned to
 * different channel sets). The result runs every component at once in one graph:
 * the first layer concatenates output channels, every later Conv/Gemm/MatMul gets a
 * block-diagonal weight (zeros between components), BatchNorm parameters and
 * statistics concatenate, residual Adds and Concats keep each component's channels
 * together, and the logits come out as the concatenation of the components' logits.
 *
 * Each tensor of the merged graph is described by a layout of its axis 1 (channels, or
 * features after Flatten): a list of segments, each a run of one component's channels.
 * A Concat interleaves components (its output holds component 0's first input, then
 * component 1's first input, ...); consumers read the layout, so nothing is copied.
 *
 * @example
 *   const r = mergeBlockDiagonal([a, b]);
 *   if ('model' in r) saveModel(r.model, 'ab.onnx'); else console.log(r.reason);
 */
import type { Dim, Graph, Model, Node, Tensor, ValueInfo } from '../onnx/types.js';
import { attrInt, constantValue, createModel, emptyGraph, int, topoSort } from '../onnx/graph.js';
import { float32, int64, numel, toFloat32 } from '../onnx/tensor.js';
import { foldConstants } from '../onnx/fold.js';
import { inferShapes } from '../onnx/shapes.js';

/** A run of `length` channels of component `comp`, starting at its channel `start`. */
export interface Segment {
  comp: number;
  start: number;
  length: number;
}

type State =
  | { kind: 'shared' }
  | { kind: 'blocked'; layout: Segment[] }
  | { kind: 'const'; values: Tensor[] };

/** Why the components cannot be merged block-diagonally; the caller falls back to parallel branches. */
class NotMergeable extends Error {}

export type BlockDiagonalResult = { model: Model } | { reason: string };

const CHANNELWISE = new Set([
  'Relu', 'LeakyRelu', 'Sigmoid', 'Tanh', 'Elu', 'Selu', 'Softplus', 'HardSigmoid', 'HardSwish', 'Gelu', 'Abs', 'Neg',
  'Identity', 'Dropout', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'Clip', 'Resize', 'Upsample',
]);
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'PRelu']);

/**
 * Merges same-topology classifiers that share one image input into one graph whose
 * single output is the concatenation of their outputs (in component order). Returns
 * the reason when the graphs differ in topology or use an operator this merge cannot
 * lay out block by block.
 */
export function mergeBlockDiagonal(models: readonly Model[]): BlockDiagonalResult {
  try {
    return { model: new Merger(models.map((m) => foldConstants(m))).run() };
  } catch (e) {
    if (e instanceof NotMergeable) return { reason: e.message };
    throw e;
  }
}

interface Part {
  model: Model;
  order: Node[];
  shapes: Map<string, ValueInfo>;
}

class Merger {
  private readonly parts: Part[];
  private readonly g: Graph = emptyGraph('assembled');
  private readonly state = new Map<string, State>();
  private readonly taken = new Set<string>();

  constructor(models: Model[]) {
    this.parts = models.map((model) => ({ model, order: topoSort(model.graph), shapes: inferShapes(model) }));
  }

  run(): Model {
    this.checkTopology();
    const p0 = this.parts[0]!;
    const input = p0.model.graph.inputs[0]!;
    this.g.inputs.push({ ...input, ...(input.shape ? { shape: [...input.shape] } : {}) });
    this.taken.add(input.name);
    this.state.set(input.name, { kind: 'shared' });
    p0.order.forEach((n, i) => this.node(i, n));
    this.finishOutput();
    this.g.nodes = topoSort(this.g);
    const model = createModel(this.g);
    model.opsets = maxOpsets(this.parts.map((p) => p.model));
    model.irVersion = Math.max(...this.parts.map((p) => p.model.irVersion));
    const shapes = inferShapes(model);
    this.g.outputs = this.g.outputs.map((o) => ({ ...(shapes.get(o.name) ?? o), name: o.name }));
    return model;
  }

  // ---- topology ----

  private checkTopology(): void {
    const refsOf = (p: Part): string[] => {
      const index = new Map<string, string>();
      p.model.graph.inputs.forEach((v, i) => index.set(v.name, `input${i}`));
      const out: string[] = [];
      p.order.forEach((n, i) => {
        const ins = n.inputs.map((t) => (t === '' ? '-' : index.get(t) ?? (p.model.graph.initializers.has(t) ? 'init' : `?${t}`)));
        const attrs = Object.keys(n.attributes).sort().filter((k) => k !== 'group').map((k) => (n.opType === 'Constant' ? k : `${k}=${JSON.stringify(n.attributes[k])}`));
        out.push(`${n.domain ?? ''}:${n.opType}(${ins.join(',')})[${attrs.join(';')}]`);
        n.outputs.forEach((o, j) => { if (o) index.set(o, `n${i}.${j}`); });
      });
      out.push(`outputs:${p.model.graph.outputs.map((o) => index.get(o.name) ?? '?').join(',')}`);
      return out;
    };
    const first = refsOf(this.parts[0]!);
    for (let k = 0; k < this.parts.length; k++) {
      const p = this.parts[k]!;
      if (p.model.graph.inputs.length !== 1) throw new NotMergeable(`component ${k} has ${p.model.graph.inputs.length} graph inputs; one image input expected`);
      if (p.model.graph.outputs.length !== 1) throw new NotMergeable(`component ${k} has ${p.model.graph.outputs.length} graph outputs; one logits output expected`);
      if (k === 0) continue;
      const sig = refsOf(p);
      if (sig.length !== first.length) throw new NotMergeable(`component ${k} has ${p.order.length} nodes, component 0 has ${this.parts[0]!.order.length}: different topologies`);
      const at = sig.findIndex((s, i) => s !== first[i]);
      if (at >= 0) {
        const n = p.order[at];
        throw new NotMergeable(`component ${k} differs from component 0 at ${n ? `node ${at} (${n.opType} ${n.name})` : 'the graph outputs'}: different topologies`);
      }
    }
  }

  // ---- nodes ----

  private nodes(i: number): Node[] {
    return this.parts.map((p) => p.order[i]!);
  }

  private stateOf(i: number, input: number): State | undefined {
    const ns = this.nodes(i);
    const name = ns[0]!.inputs[input]!;
    const s = this.state.get(name);
    if (s) return s;
    const values = ns.map((n, k) => this.parts[k]!.model.graph.initializers.get(n.inputs[input]!));
    if (values.every((v): v is Tensor => v !== undefined)) return { kind: 'const', values };
    return undefined;
  }

  private node(i: number, n0: Node): void {
    const ns = this.nodes(i);
    if (n0.opType === 'Constant') {
      const values = ns.map((n, k) => constantValue(this.parts[k]!.model.graph, n.outputs[0]!));
      if (!values.every((v): v is Tensor => v !== undefined)) throw new NotMergeable(`Constant node ${n0.name} has no readable value`);
      this.state.set(n0.outputs[0]!, { kind: 'const', values });
      return;
    }
    const states = n0.inputs.map((t, j) => (t === '' ? undefined : this.stateOf(i, j)));
    if (n0.inputs.some((t, j) => t !== '' && !states[j])) {
      throw new NotMergeable(`node ${n0.name} (${n0.opType}) reads a tensor produced by an operator the block-diagonal merge does not lay out`);
    }
    const data = states[0];
    if (n0.opType === 'Conv') return this.conv(i, states);
    if (n0.opType === 'Gemm' || n0.opType === 'MatMul') return this.linear(i, states);
    if (states.every((s) => !s || s.kind !== 'blocked')) return this.sharedNode(i, states);
    if (n0.opType === 'BatchNormalization') return this.batchNorm(i, states);
    if (CHANNELWISE.has(n0.opType) && data?.kind === 'blocked') {
      this.checkExtraOutputs(n0);
      const inputs = n0.inputs.map((t, j) => (j === 0 || t === '' ? t : this.sharedConst(i, j, states[j]!)));
      return this.emit(n0, inputs, data);
    }
    if (BINARY.has(n0.opType)) return this.binary(i, states);
    if (n0.opType === 'Flatten' || n0.opType === 'Reshape') return this.flatten(i, states);
    if (n0.opType === 'Concat') return this.concat(i, states);
    throw new NotMergeable(`operator ${n0.opType} (node ${n0.name}) mixes or reshapes channels in a way the block-diagonal merge does not handle`);
  }

  /** A node whose inputs are all the same in every component (e.g. input normalisation). */
  private sharedNode(i: number, states: (State | undefined)[]): void {
    const n0 = this.nodes(i)[0]!;
    const inputs = n0.inputs.map((t, j) => (t === '' || states[j]!.kind === 'shared' ? t : this.sharedConst(i, j, states[j]!)));
    this.g.nodes.push({ ...n0, inputs, outputs: [...n0.outputs], attributes: { ...n0.attributes } });
    for (const o of n0.outputs) if (o) { this.state.set(o, { kind: 'shared' }); this.taken.add(o); }
  }

  private conv(i: number, states: (State | undefined)[]): void {
    const ns = this.nodes(i);
    const n0 = ns[0]!;
    const [x, w, b] = states;
    const weights = this.constOf(w, n0, 'weight');
    const spatial = weights[0]!.dims.slice(2);
    if (weights.some((t) => t.dims.slice(2).join() !== spatial.join())) throw new NotMergeable(`Conv ${n0.name}: kernel sizes differ between components`);
    const groups = ns.map((n) => attrInt(n, 'group', 1));
    const outs = weights.map((t) => t.dims[0]!);
    const kk = numel(spatial);
    let merged: Tensor;
    let layout: Segment[];
    let group = 1;
    let depthwise = false;
    if (groups.every((g) => g === 1)) {
      if (x!.kind === 'shared') {
        merged = concatRows(weights);
        layout = canonical(outs);
      } else if (x!.kind === 'blocked') {
        merged = blockDiagonal(weights, x!.layout, kk);
        layout = canonical(outs);
      } else throw new NotMergeable(`Conv ${n0.name} has a constant input`);
    } else if (x!.kind === 'blocked' && weights.every((t, k) => t.dims[1] === 1 && groups[k] === t.dims[0] && groups[k] === total(x!.layout, k))) {
      // depthwise: output channel c reads input channel c, so the output keeps the input's layout
      merged = gatherRows(weights, x!.layout);
      layout = x!.layout;
      group = layoutLength(x!.layout);
      depthwise = true;
    } else throw new NotMergeable(`Conv ${n0.name} is a grouped convolution (group ${groups.join('/')}), which only merges when depthwise`);
    const inputs = [this.dataName(n0, 0), this.addInit(n0.inputs[1]!, merged)];
    if (b) {
      const biases = this.constOf(b, n0, 'bias');
      inputs.push(this.addInit(n0.inputs[2]!, depthwise ? gatherRows(biases, layout) : concatRows(biases)));
    }
    const attributes = { ...n0.attributes };
    if (group !== 1 || attributes['group']) attributes['group'] = int(group);
    this.emit({ ...n0, attributes }, inputs, { kind: 'blocked', layout });
  }

  private linear(i: number, states: (State | undefined)[]): void {
    const ns = this.nodes(i);
    const n0 = ns[0]!;
    const [x, w, c] = states;
    if (n0.opType === 'Gemm' && attrInt(n0, 'transA', 0) !== 0) throw new NotMergeable(`Gemm ${n0.name} has transA=1`);
    const rank = this.parts.map((p) => p.shapes.get(p.order[i]!.inputs[0]!)?.shape?.length);
    if (rank.some((r) => r !== 2)) throw new NotMergeable(`${n0.opType} ${n0.name}: input is not a [batch, features] matrix`);
    const transB = n0.opType === 'Gemm' && attrInt(n0, 'transB', 0) === 1;
    // Work on [out, in] matrices; MatMul and transB=0 store [in, out].
    const weights = this.constOf(w, n0, 'weight').map((t) => (transB ? t : transpose(t)));
    const outs = weights.map((t) => t.dims[0]!);
    let merged: Tensor;
    if (x!.kind === 'shared') merged = concatRows(weights);
    else if (x!.kind === 'blocked') merged = blockDiagonal(weights, x!.layout, 1);
    else throw new NotMergeable(`${n0.opType} ${n0.name} has a constant input`);
    const inputs = [this.dataName(n0, 0), this.addInit(n0.inputs[1]!, transB ? merged : transpose(merged))];
    if (c) {
      const biases = this.constOf(c, n0, 'bias');
      const same = biases.every((t) => numel(t.dims) === 1 && toFloat32(t)[0] === toFloat32(biases[0]!)[0]);
      inputs.push(same ? this.addInit(n0.inputs[2]!, biases[0]!) : this.addInit(n0.inputs[2]!, concatRows(biases.map((t, k) => flatBias(t, outs[k]!, n0)))));
    }
    this.emit(n0, inputs, { kind: 'blocked', layout: canonical(outs) });
  }

  private batchNorm(i: number, states: (State | undefined)[]): void {
    const n0 = this.nodes(i)[0]!;
    const x = states[0]!;
    if (x.kind !== 'blocked') throw new NotMergeable(`BatchNormalization ${n0.name} on a constant`);
    this.checkExtraOutputs(n0);
    const inputs = [this.dataName(n0, 0)];
    for (let j = 1; j < 5; j++) inputs.push(this.addInit(n0.inputs[j]!, gatherRows(this.constOf(states[j], n0, `input ${j}`), x.layout)));
    this.emit(n0, inputs, x);
  }

  private binary(i: number, states: (State | undefined)[]): void {
    const n0 = this.nodes(i)[0]!;
    const [a, b] = states as [State, State];
    if (a.kind === 'blocked' && b.kind === 'blocked') {
      const second = sameLayout(a.layout, b.layout) ? this.dataName(n0, 1) : this.permute(n0.inputs[1]!, b.layout, a.layout, n0);
      return this.emit(n0, [this.dataName(n0, 0), second], a);
    }
    const blockedAt = a.kind === 'blocked' ? 0 : 1;
    const other = blockedAt === 0 ? b : a;
    const x = (blockedAt === 0 ? a : b) as { kind: 'blocked'; layout: Segment[] };
    if (other.kind !== 'const') throw new NotMergeable(`${n0.opType} ${n0.name} combines a component-specific tensor with a shared one`);
    const rank = this.parts[0]!.shapes.get(n0.inputs[blockedAt]!)?.shape?.length;
    if (rank === undefined) throw new NotMergeable(`${n0.opType} ${n0.name}: unknown rank`);
    const name = this.channelConst(n0.inputs[1 - blockedAt]!, other.values, x.layout, rank, n0);
    const inputs = blockedAt === 0 ? [this.dataName(n0, 0), name] : [name, this.dataName(n0, 1)];
    this.emit(n0, inputs, x);
  }

  private flatten(i: number, states: (State | undefined)[]): void {
    const n0 = this.nodes(i)[0]!;
    const x = states[0]!;
    if (x.kind !== 'blocked') throw new NotMergeable(`${n0.opType} ${n0.name} on a constant`);
    if (n0.opType === 'Flatten' && attrInt(n0, 'axis', 1) !== 1) throw new NotMergeable(`Flatten ${n0.name} has axis ${attrInt(n0, 'axis', 1)}, not 1`);
    // Features after flattening are channel-major: channel c owns features [c*inner, (c+1)*inner).
    const inner = this.parts.map((p, k) => {
      const n = p.order[i]!;
      const s = p.shapes.get(n.inputs[0]!)?.shape;
      const o = p.shapes.get(n.outputs[0]!)?.shape;
      const rest = s?.slice(2);
      if (!s || !o || !rest || !rest.every((d): d is number => typeof d === 'number')) throw new NotMergeable(`${n0.opType} ${n0.name}: spatial size unknown in component ${k}`);
      if (o.length !== 2) throw new NotMergeable(`${n0.opType} ${n0.name} does not flatten to [batch, features]`);
      return numel(rest);
    });
    if (inner.some((v) => v !== inner[0])) throw new NotMergeable(`${n0.opType} ${n0.name}: spatial sizes differ between components`);
    const layout = x.layout.map((s) => ({ comp: s.comp, start: s.start * inner[0]!, length: s.length * inner[0]! }));
    this.emit({ ...n0, opType: 'Flatten', attributes: { axis: int(1) } }, [this.dataName(n0, 0)], { kind: 'blocked', layout });
  }

  private concat(i: number, states: (State | undefined)[]): void {
    const n0 = this.nodes(i)[0]!;
    const rank = this.parts[0]!.shapes.get(n0.outputs[0]!)?.shape?.length ?? 0;
    const axis = attrInt(n0, 'axis', 1);
    if (axis !== 1 && axis !== 1 - rank) throw new NotMergeable(`Concat ${n0.name} joins on axis ${axis}, not the channel axis`);
    if (states.some((s) => s?.kind !== 'blocked')) throw new NotMergeable(`Concat ${n0.name} joins component-specific and shared tensors`);
    const offsets = new Array<number>(this.parts.length).fill(0);
    const layout: Segment[] = [];
    for (const s of states as { kind: 'blocked'; layout: Segment[] }[]) {
      for (const seg of s.layout) layout.push({ comp: seg.comp, start: offsets[seg.comp]! + seg.start, length: seg.length });
      for (let k = 0; k < this.parts.length; k++) offsets[k]! += total(s.layout, k);
    }
    this.emit(n0, n0.inputs.map((_, j) => this.dataName(n0, j)), { kind: 'blocked', layout: compact(layout) });
  }

  // ---- output ----

  private finishOutput(): void {
    const out0 = this.parts[0]!.model.graph.outputs[0]!;
    const s = this.state.get(out0.name);
    if (!s || s.kind !== 'blocked') throw new NotMergeable(`the output ${out0.name} is not computed per component`);
    const counts = this.parts.map((_, k) => total(s.layout, k));
    let name = out0.name;
    if (!sameLayout(s.layout, canonical(counts))) {
      const produced = this.g.nodes.find((n) => n.outputs.includes(out0.name))!;
      const inner = this.fresh(`${out0.name}.unordered`);
      produced.outputs = produced.outputs.map((o) => (o === out0.name ? inner : o));
      this.state.set(inner, s);
      name = this.permute(inner, s.layout, canonical(counts), produced, out0.name);
    }
    const batch: Dim = out0.shape?.[0] ?? 'N';
    this.g.outputs.push({ name, dtype: out0.dtype, shape: [batch, counts.reduce((a, b) => a + b, 0)] });
  }

  // ---- helpers ----

  private checkExtraOutputs(n0: Node): void {
    const used = new Set(this.parts[0]!.model.graph.nodes.flatMap((n) => n.inputs));
    for (const o of n0.outputs.slice(1)) if (o && used.has(o)) throw new NotMergeable(`${n0.opType} ${n0.name}: its extra output ${o} is used`);
  }

  private constOf(s: State | undefined, n0: Node, what: string): Tensor[] {
    if (!s || s.kind !== 'const') throw new NotMergeable(`${n0.opType} ${n0.name}: ${what} is not a constant`);
    return s.values;
  }

  /** A constant that must be identical in every component (e.g. a Dropout ratio). */
  private sharedConst(i: number, j: number, s: State): string {
    const n0 = this.nodes(i)[0]!;
    if (s.kind === 'shared') return n0.inputs[j]!;
    if (s.kind !== 'const' || !s.values.every((v) => sameTensor(v, s.values[0]!))) {
      throw new NotMergeable(`${n0.opType} ${n0.name}: input ${j} (${n0.inputs[j]}) differs between components`);
    }
    return this.addInit(n0.inputs[j]!, s.values[0]!);
  }

  /** A per-channel constant operand of a binary op, laid out like the data it meets. */
  private channelConst(base: string, values: Tensor[], layout: Segment[], rank: number, n0: Node): string {
    if (values.every((v) => numel(v.dims) === 1 && sameTensor(v, values[0]!))) return this.addInit(base, values[0]!);
    const q = values[0]!.dims.length;
    const axis = q - (rank - 1);
    const ok = axis >= 0 && values.every((v, k) => v.dims.length === q && v.dims[axis] === total(layout, k) && v.dims.every((d, a) => a === axis || d === 1));
    if (!ok) throw new NotMergeable(`${n0.opType} ${n0.name}: its constant operand is not per-channel`);
    const flat = gatherRows(values.map((v) => float32([numel(v.dims)], toFloat32(v))), layout);
    const dims = values[0]!.dims.map((d, a) => (a === axis ? layoutLength(layout) : d));
    return this.addInit(base, float32(dims, flat.data as Float32Array));
  }

  /** Gather on axis 1 that reorders a tensor from layout `from` to layout `to`. */
  private permute(name: string, from: Segment[], to: Segment[], n0: Node, outName?: string): string {
    const where = new Map<string, number>();
    let p = 0;
    for (const s of from) for (let t = 0; t < s.length; t++) where.set(`${s.comp}:${s.start + t}`, p++);
    const idx: number[] = [];
    for (const s of to) {
      for (let t = 0; t < s.length; t++) {
        const at = where.get(`${s.comp}:${s.start + t}`);
        if (at === undefined) throw new NotMergeable(`${n0.opType} ${n0.name}: operands hold different channels`);
        idx.push(at);
      }
    }
    const indices = this.addInit(`${name}.order`, int64([idx.length], idx));
    const out = outName ?? this.fresh(`${name}.reordered`);
    this.taken.add(out);
    this.g.nodes.push({ name: out, opType: 'Gather', inputs: [name, indices], outputs: [out], attributes: { axis: int(1) } });
    this.state.set(out, { kind: 'blocked', layout: to });
    return out;
  }

  private dataName(n0: Node, j: number): string {
    return n0.inputs[j]!;
  }

  private emit(n0: Node, inputs: string[], out: State): void {
    this.g.nodes.push({ ...n0, inputs, outputs: [...n0.outputs], attributes: { ...n0.attributes } });
    const first = n0.outputs[0]!;
    this.state.set(first, out);
    for (const o of n0.outputs) if (o) this.taken.add(o);
  }

  private addInit(base: string, t: Tensor): string {
    const name = this.fresh(base);
    this.taken.add(name);
    this.g.initializers.set(name, t);
    return name;
  }

  private fresh(base: string): string {
    const used = (n: string): boolean => this.taken.has(n) || this.parts[0]!.model.graph.nodes.some((x) => x.outputs.includes(n));
    if (!used(base)) return base;
    for (let k = 1; ; k++) if (!used(`${base}_${k}`)) return `${base}_${k}`;
  }
}

// ---- layouts ----

/** Components one after another: [comp 0: sizes[0]] [comp 1: sizes[1]] ... */
export function canonical(sizes: readonly number[]): Segment[] {
  return sizes.map((length, comp) => ({ comp, start: 0, length })).filter((s) => s.length > 0);
}

function total(layout: readonly Segment[], comp: number): number {
  let n = 0;
  for (const s of layout) if (s.comp === comp) n += s.length;
  return n;
}

const layoutLength = (layout: readonly Segment[]): number => layout.reduce((a, s) => a + s.length, 0);

function sameLayout(a: readonly Segment[], b: readonly Segment[]): boolean {
  const x = compact(a), y = compact(b);
  return x.length === y.length && x.every((s, i) => s.comp === y[i]!.comp && s.start === y[i]!.start && s.length === y[i]!.length);
}

/** Joins neighbouring segments that continue each other. */
function compact(layout: readonly Segment[]): Segment[] {
  const out: Segment[] = [];
  for (const s of layout) {
    const last = out[out.length - 1];
    if (last && last.comp === s.comp && last.start + last.length === s.start) last.length += s.length;
    else if (s.length > 0) out.push({ ...s });
  }
  return out;
}

// ---- tensors ----

function sameTensor(a: Tensor, b: Tensor): boolean {
  if (a.dtype !== b.dtype || a.dims.join() !== b.dims.join()) return false;
  const x = a.data, y = b.data;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** Stacks [O_k, ...rest] tensors along axis 0. */
function concatRows(ts: readonly Tensor[]): Tensor {
  const rest = ts[0]!.dims.slice(1);
  const data = new Float32Array(ts.reduce((a, t) => a + numel(t.dims), 0));
  let at = 0;
  for (const t of ts) { data.set(toFloat32(t), at); at += numel(t.dims); }
  return float32([ts.reduce((a, t) => a + t.dims[0]!, 0), ...rest], data);
}

/** Rows (axis 0) picked per layout segment: row p of the result is row start+t of component comp. */
function gatherRows(ts: readonly Tensor[], layout: readonly Segment[]): Tensor {
  const inner = numel(ts[0]!.dims.slice(1));
  const data = new Float32Array(layoutLength(layout) * inner);
  let p = 0;
  for (const s of layout) {
    const src = toFloat32(ts[s.comp]!);
    data.set(src.subarray(s.start * inner, (s.start + s.length) * inner), p * inner);
    p += s.length;
  }
  return float32([layoutLength(layout), ...ts[0]!.dims.slice(1)], data);
}

/**
 * W_k is [O_k, I_k, ...kernel] (kernel volume kk). The result is [sum O_k, sum I_k, ...]
 * with component k's rows reading only its own input channels, placed as the input
 * layout says; everything between components is zero.
 */
function blockDiagonal(ws: readonly Tensor[], layout: readonly Segment[], kk: number): Tensor {
  const inTotal = layoutLength(layout);
  const outs = ws.map((w) => w.dims[0]!);
  const outTotal = outs.reduce((a, b) => a + b, 0);
  const data = new Float32Array(outTotal * inTotal * kk);
  const rowOffset: number[] = [];
  outs.reduce((a, o, k) => { rowOffset[k] = a; return a + o; }, 0);
  ws.forEach((w, k) => {
    const ik = w.dims[1]!;
    if (ik !== total(layout, k)) throw new NotMergeable(`a layer of component ${k} reads ${ik} channels but its input has ${total(layout, k)}`);
  });
  let p = 0;
  for (const s of layout) {
    const w = ws[s.comp]!;
    const src = toFloat32(w);
    const ik = w.dims[1]!;
    for (let o = 0; o < w.dims[0]!; o++) {
      const from = (o * ik + s.start) * kk;
      const to = ((rowOffset[s.comp]! + o) * inTotal + p) * kk;
      data.set(src.subarray(from, from + s.length * kk), to);
    }
    p += s.length;
  }
  return float32([outTotal, inTotal, ...ws[0]!.dims.slice(2)], data);
}

function transpose(t: Tensor): Tensor {
  const [r, c] = t.dims as [number, number];
  const src = toFloat32(t);
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = src[i * c + j]!;
  return float32([c, r], out);
}

/** A Gemm bias ([O], [1, O] or a broadcast scalar) as [O]. */
function flatBias(t: Tensor, outs: number, n0: Node): Tensor {
  const v = toFloat32(t);
  if (v.length === outs) return float32([outs], v);
  if (v.length === 1) return float32([outs], new Array(outs).fill(v[0]!));
  throw new NotMergeable(`${n0.opType} ${n0.name}: bias has ${v.length} values for ${outs} outputs`);
}

function maxOpsets(models: readonly Model[]): Model['opsets'] {
  const best = new Map<string, number>();
  for (const m of models) for (const o of m.opsets) {
    const d = o.domain === 'ai.onnx' ? '' : o.domain;
    best.set(d, Math.max(best.get(d) ?? 0, o.version));
  }
  return [...best].map(([domain, version]) => ({ domain, version }));
}
