/**
 * Block-diagonal assembly of components of one architecture family (docs/lego-method.md §6):
 * graphs with the same topology whose layers may have different widths (pruned to
 * different channel sets). The result runs every component at once in one graph:
 * the first layer concatenates output channels, every later Conv/Gemm/MatMul gets a
 * block-diagonal weight (zeros between components; grouped and depthwise convolutions
 * get the components' groups side by side), BatchNorm parameters, biases and other
 * per-channel constants concatenate, residual Adds and Concats keep each component's
 * channels together, and the logits come out as the concatenation of the components'
 * logits.
 *
 * Each merged tensor is described by a layout of its channel axis (which may be any
 * axis: channels-last tensors and token tensors keep it last): a list of segments, each
 * a run of one component's channels. A Concat interleaves components (its output holds
 * component 0's first input, then component 1's first input, ...); consumers read the
 * layout, so nothing is copied. What operators do to layouts is decided per operator
 * kind, from the same table channel analysis uses (operators.ts). An operator that
 * mixes a component's channels with each other (a LayerNorm over channels, attention)
 * runs once per component on that component's channels (a Gather), and its outputs
 * are joined again (a Concat) when a later operator can take a layout: the result is
 * still exact, and the layers around it stay block-diagonal. A worked example of layouts,
 * block-diagonal weights, Concat offsets and reordering: docs/lego-channels.md
 * ("Worked example: the segment algebra").
 *
 * @example
 *   const r = mergeBlockDiagonal([a, b]);
 *   if ('model' in r) saveModel(r.model, 'ab.onnx'); else console.log(r.reason);
 */
import type { Dim, Graph, Model, Node, Tensor, ValueInfo } from '../onnx/types.js';
import { attrInt, constantValue, createModel, emptyGraph, int, opsetVersion, topoSort, freshName } from '../onnx/graph.js';
import { float32, int64, numel, toFloat32, toNumbers } from '../onnx/tensor.js';
import { foldConstants } from '../onnx/fold.js';
import { inferShapes } from '../onnx/shapes.js';
import { isNum } from '../onnx/dims.js';
import { UserError } from '../util/errors.js';
import { analyzeChannels, type ChannelGraph } from './channels.js';
import { normalizedAxes, operatorKind, reducedAxes, reshapeBlocks, SINGLE_OUTPUT, transposePerm, type OperatorKind } from './operators.js';
import { mergeOpsets } from '../onnx/merge.js';

/** A run of `length` channels of component `comp`, starting at its channel `start`. */
export interface Segment {
  comp: number;
  start: number;
  length: number;
}

type State =
  /** the same tensor for every component (the image, shape arithmetic on it) */
  | { kind: 'shared'; name: string }
  /** a constant, one value per component */
  | { kind: 'const'; values: Tensor[] }
  /** one merged tensor: the components' channels along `axis`, laid out as `layout` */
  | { kind: 'blocked'; name: string; layout: Segment[]; axis: number }
  /** one tensor per component; `axis` when they have a channel axis (then they can be joined) */
  | { kind: 'split'; names: string[]; axis?: number; sizes?: number[] };
type Blocked = Extract<State, { kind: 'blocked' }>;

/** Why the components cannot be merged block-diagonally; the caller falls back to parallel branches. */
class NotMergeable extends Error {}

export type BlockDiagonalResult = { model: Model } | { reason: string };

/**
 * Merges same-topology classifiers that share one image input into one graph whose
 * single output is the concatenation of their outputs (in component order). Returns
 * the reason when the graphs differ in topology.
 */
export function mergeBlockDiagonal(models: readonly Model[]): BlockDiagonalResult {
  try {
    return { model: new Merger(models.map((m) => foldConstants(m))).run() };
  } catch (e) {
    if (e instanceof NotMergeable) return { reason: e.message };
    if (e instanceof UserError) return { reason: `a component's channels cannot be followed: ${e.message}` };
    throw e;
  }
}

interface Part {
  model: Model;
  order: Node[];
  shapes: Map<string, ValueInfo>;
}

/** A blocked view of an input: its layout and axis, and its merged name (a split input is joined on demand). */
interface View {
  layout: Segment[];
  axis: number;
  name: () => string;
}

class Merger {
  private readonly parts: Part[];
  private readonly g: Graph = emptyGraph('assembled');
  private readonly state = new Map<string, State>();
  private readonly taken = new Set<string>();
  private readonly reserved = new Set<string>();
  private readonly views = new Map<string, string>();
  private channels!: ChannelGraph;
  private opset = 17;

  constructor(models: Model[]) {
    this.parts = models.map((model) => ({ model, order: topoSort(model.graph), shapes: inferShapes(model) }));
  }

  run(): Model {
    this.checkTopology();
    const p0 = this.parts[0]!;
    this.channels = analyzeChannels(p0.model);
    this.opset = opsetVersion(p0.model);
    for (const n of p0.model.graph.nodes) for (const o of n.outputs) if (o) this.reserved.add(o);
    const input = p0.model.graph.inputs[0]!;
    this.g.inputs.push({ ...input, ...(input.shape ? { shape: [...input.shape] } : {}) });
    this.taken.add(input.name);
    this.state.set(input.name, { kind: 'shared', name: input.name });
    p0.order.forEach((n, i) => this.node(i, n));
    this.finishOutput();
    this.g.nodes = topoSort(this.g);
    const model = createModel(this.g);
    model.opsets = mergeOpsets(this.parts.map((p) => p.model.opsets));
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
        const ins = n.inputs.map((t) => (t === '' ? '-' : (index.get(t) ?? (p.model.graph.initializers.has(t) ? 'init' : `?${t}`))));
        const attrs = Object.keys(n.attributes)
          .sort()
          .filter((k) => k !== 'group')
          .map((k) => (n.opType === 'Constant' ? k : `${k}=${JSON.stringify(n.attributes[k])}`));
        out.push(`${n.domain ?? ''}:${n.opType}(${ins.join(',')})[${attrs.join(';')}]`);
        n.outputs.forEach((o, j) => {
          if (o) index.set(o, `n${i}.${j}`);
        });
      });
      out.push(`outputs:${p.model.graph.outputs.map((o) => index.get(o.name) ?? '?').join(',')}`);
      return out;
    };
    const first = refsOf(this.parts[0]!);
    for (let k = 0; k < this.parts.length; k++) {
      const p = this.parts[k]!;
      if (p.model.graph.inputs.length !== 1) throw new NotMergeable(`component ${k} has ${p.model.graph.inputs.length} graph inputs; one image input expected`);
      if (p.model.graph.outputs.length !== 1)
        throw new NotMergeable(`component ${k} has ${p.model.graph.outputs.length} graph outputs; one logits output expected`);
      if (k === 0) continue;
      const sig = refsOf(p);
      if (sig.length !== first.length)
        throw new NotMergeable(`component ${k} has ${p.order.length} nodes, component 0 has ${this.parts[0]!.order.length}: different topologies`);
      const at = sig.findIndex((s, i) => s !== first[i]);
      if (at >= 0) {
        const n = p.order[at];
        throw new NotMergeable(
          `component ${k} differs from component 0 at ${n ? `node ${at} (${n.opType} ${n.name})` : 'the graph outputs'}: different topologies`,
        );
      }
    }
  }

  // ---- nodes ----

  private nodes(i: number): Node[] {
    return this.parts.map((p) => p.order[i]!);
  }

  private stateOf(i: number, input: number): State | undefined {
    const ns = this.nodes(i);
    const s = this.state.get(ns[0]!.inputs[input]!);
    if (s) return s;
    const values = ns.map((n, k) => this.parts[k]!.model.graph.initializers.get(n.inputs[input]!));
    if (values.every((v): v is Tensor => v !== undefined)) return { kind: 'const', values };
    return undefined;
  }

  private node(i: number, n0: Node): void {
    if (n0.opType === 'Constant') {
      const values = this.parts.map((p) => constantValue(p.model.graph, p.order[i]!.outputs[0]!));
      if (!values.every((v): v is Tensor => v !== undefined)) throw new NotMergeable(`Constant node ${n0.name} has no readable value`);
      this.state.set(n0.outputs[0]!, { kind: 'const', values });
      return;
    }
    const states = n0.inputs.map((t, j) => (t === '' ? undefined : this.stateOf(i, j)));
    if (n0.inputs.some((t, j) => t !== '' && !states[j])) throw new NotMergeable(`node ${n0.name} (${n0.opType}) reads a tensor no earlier node produces`);
    const kind = operatorKind(n0, (t) => {
      const s = this.state.get(t);
      return !!s && s.kind !== 'const';
    });
    // layers always belong to their component, even on the shared image with equal weights
    if (kind !== 'layer' && !states.some((s) => s?.kind === 'blocked' || s?.kind === 'split')) {
      if (states.every((s) => !s || s.kind === 'shared' || (s.kind === 'const' && sameValues(s.values)))) return this.sharedNode(i, states);
      return this.perComponent(i, states);
    }
    const rule = kind ? MERGE[kind] : undefined;
    if (!rule || !rule.call(this, i, states)) this.perComponent(i, states);
  }

  /** A node whose inputs are all the same in every component (e.g. input normalisation). */
  private sharedNode(i: number, states: (State | undefined)[]): void {
    const n0 = this.nodes(i)[0]!;
    const inputs = n0.inputs.map((t, j) => (t === '' ? t : this.sharedName(n0, j, states[j]!)));
    const outputs = n0.outputs.map((o) => (o ? this.claim(o) : o));
    this.g.nodes.push({ ...n0, inputs, outputs, attributes: { ...n0.attributes } });
    n0.outputs.forEach((o, j) => {
      if (o) this.state.set(o, { kind: 'shared', name: outputs[j]! });
    });
  }

  /**
   * The fallback that always holds: the node runs once per component, on that
   * component's own tensors (its channels gathered out of a merged tensor).
   */
  private perComponent(i: number, states: (State | undefined)[]): void {
    const ns = this.nodes(i);
    const n0 = ns[0]!;
    const names = n0.outputs.map((o) => (o ? this.parts.map((_, k) => this.claim(`${o}.c${k}`)) : undefined));
    ns.forEach((nk, k) => {
      const inputs = nk.inputs.map((t, j) => {
        const s = states[j];
        if (t === '' || !s) return t;
        switch (s.kind) {
          case 'shared':
            return s.name;
          case 'const':
            return this.addInit(`${n0.inputs[j]}.c${k}`, s.values[k]!);
          case 'split':
            return s.names[k]!;
          case 'blocked':
            return this.componentOf(s, k);
        }
      });
      const outputs = nk.outputs.map((o, j) => (o ? names[j]![k]! : o));
      this.g.nodes.push({ ...nk, name: `${nk.name}.c${k}`, inputs, outputs, attributes: { ...nk.attributes } });
    });
    n0.outputs.forEach((o, j) => {
      if (!o) return;
      const a = this.channels.acts.get(o);
      const axis = a?.kind === 'tracked' ? a.axis : undefined;
      const sizes = axis === undefined ? undefined : this.parts.map((p) => p.shapes.get(p.order[i]!.outputs[j]!)?.shape?.[axis]);
      const known = sizes?.every(isNum) ? (sizes as number[]) : undefined;
      this.state.set(o, { kind: 'split', names: names[j]!, ...(known ? { axis, sizes: known } : {}) });
    });
  }

  /** Component k's channels of a merged tensor, in its own order (one Gather, made once). */
  private componentOf(s: Blocked, k: number): string {
    const key = `${s.name}#${k}`;
    const done = this.views.get(key);
    if (done) return done;
    const where = positions(s.layout);
    const idx = Array.from({ length: total(s.layout, k) }, (_, c) => where.get(`${k}:${c}`)!);
    const out = this.claim(`${s.name}.c${k}`);
    const indices = this.addInit(`${s.name}.c${k}.channels`, int64([idx.length], idx));
    this.g.nodes.push({ name: out, opType: 'Gather', inputs: [s.name, indices], outputs: [out], attributes: { axis: int(s.axis) } });
    this.views.set(key, out);
    return out;
  }

  /** The blocked view of input j, if it has one (a split tensor with a channel axis is joined by a Concat when first used). */
  private view(i: number, j: number, s: State | undefined): View | undefined {
    if (!s) return undefined;
    if (s.kind === 'blocked') return { layout: s.layout, axis: s.axis, name: () => s.name };
    if (s.kind !== 'split' || s.axis === undefined || !s.sizes) return undefined;
    const n0 = this.nodes(i)[0]!;
    const tensor = n0.inputs[j]!;
    const axis = s.axis;
    const layout = canonical(s.sizes);
    return {
      layout,
      axis,
      name: () => {
        const now = this.state.get(tensor);
        if (now?.kind === 'blocked') return now.name;
        const out = this.claim(tensor);
        this.g.nodes.push({ name: out, opType: 'Concat', inputs: [...s.names], outputs: [out], attributes: { axis: int(axis) } });
        this.state.set(tensor, { kind: 'blocked', name: out, layout, axis });
        return out;
      },
    };
  }

  private emit(n0: Node, inputs: string[], layout: Segment[], axis: number, attributes = n0.attributes): void {
    const first = this.claim(n0.outputs[0]!);
    const outputs = n0.outputs.map((o, j) => (j === 0 ? first : o ? this.claim(o) : o));
    this.g.nodes.push({ ...n0, inputs, outputs, attributes: { ...attributes } });
    this.state.set(n0.outputs[0]!, { kind: 'blocked', name: first, layout, axis });
  }

  // ---- rules, one per operator kind; false = run per component ----

  layer(i: number, states: (State | undefined)[]): boolean {
    const ns = this.nodes(i);
    const n0 = ns[0]!;
    const x = states[0]!;
    const weights = this.constOf(states[1]);
    if (!weights) return false;
    const conv = n0.opType === 'Conv';
    const rank = this.rank(n0.inputs[0]!);
    if (!conv && (rank === undefined || (n0.opType === 'Gemm' && (rank !== 2 || attrInt(n0, 'transA', 0) !== 0)))) return false;
    const inAxis = conv ? 1 : rank! - 1;
    const v = x.kind === 'shared' ? undefined : this.view(i, 0, x);
    if (x.kind !== 'shared' && (!v || v.axis !== inAxis)) return false;
    const bias = states[2] ? this.constOf(states[2]) : undefined;
    if (states[2] && !bias) return false;
    if (conv) {
      const spatial = weights[0]!.dims.slice(2);
      if (weights.some((t) => t.dims.slice(2).join() !== spatial.join())) throw new NotMergeable(`Conv ${n0.name}: kernel sizes differ between components`);
      const groups = ns.map((n) => attrInt(n, 'group', 1));
      const kk = numel(spatial);
      let merged: Tensor;
      let layout: Segment[];
      if (groups.every((g) => g === 1)) {
        merged = v ? blockDiagonal(weights, v.layout, kk) : concatRows(weights);
        layout = canonical(weights.map((t) => t.dims[0]!));
      } else {
        const gi = weights[0]!.dims[1]!;
        const og = weights[0]!.dims[0]! / groups[0]!;
        const same = weights.every((t, k) => t.dims[1] === gi && t.dims[0]! / groups[k]! === og && groups[k]! * gi === total(v?.layout ?? [], k));
        if (!v || !same || v.layout.some((s) => s.start % gi !== 0 || s.length % gi !== 0)) return false;
        // grouped (depthwise when gi = 1): each input group keeps its own weight rows, in the layout's order
        const rows: Segment[] = v.layout.map((s) => ({ comp: s.comp, start: (s.start / gi) * og, length: (s.length / gi) * og }));
        merged = gatherRows(weights, rows);
        layout = compact(rows);
        const group = layoutLength(v.layout) / gi;
        const inputs = [v.name(), this.addInit(n0.inputs[1]!, merged)];
        if (bias) inputs.push(this.addInit(n0.inputs[2]!, gatherRows(bias, rows)));
        this.emit(n0, inputs, layout, 1, { ...n0.attributes, group: int(group) });
        return true;
      }
      const inputs = [v ? v.name() : (x as { name: string }).name, this.addInit(n0.inputs[1]!, merged)];
      if (bias) inputs.push(this.addInit(n0.inputs[2]!, concatRows(bias)));
      const attributes = { ...n0.attributes };
      if (attributes['group']) attributes['group'] = int(1);
      this.emit(n0, inputs, layout, 1, attributes);
      return true;
    }
    const transB = n0.opType === 'Gemm' && attrInt(n0, 'transB', 0) === 1;
    if (weights.some((t) => t.dims.length !== 2)) return false;
    // work on [out, in] matrices; MatMul and transB=0 store [in, out]
    const mats = weights.map((t) => (transB ? t : transpose(t)));
    const outs = mats.map((t) => t.dims[0]!);
    const merged = v ? blockDiagonal(mats, v.layout, 1) : concatRows(mats);
    const inputs = [v ? v.name() : (x as { name: string }).name, this.addInit(n0.inputs[1]!, transB ? merged : transpose(merged))];
    if (bias) {
      const same = bias.every((t) => numel(t.dims) === 1 && toFloat32(t)[0] === toFloat32(bias[0]!)[0]);
      inputs.push(same ? this.addInit(n0.inputs[2]!, bias[0]!) : this.addInit(n0.inputs[2]!, concatRows(bias.map((t, k) => flatBias(t, outs[k]!, n0)))));
    }
    this.emit(n0, inputs, canonical(outs), n0.opType === 'Gemm' ? 1 : rank! - 1);
    return true;
  }

  /** Elementwise on the data input; every other input a parameter equal in all components. */
  unary(i: number, states: (State | undefined)[], axisOk: (axis: number) => boolean = () => true): boolean {
    const n0 = this.nodes(i)[0]!;
    const v = this.view(i, 0, states[0]);
    if (!v || !axisOk(v.axis) || !this.singleOutput(n0)) return false;
    const params = states.slice(1).map((s, j) => (s ? this.equalParam(n0, j + 1, s) : ''));
    if (params.some((p) => p === undefined)) return false;
    this.emit(n0, [v.name(), ...(params as string[])], v.layout, v.axis);
    return true;
  }

  spatial(i: number, states: (State | undefined)[]): boolean {
    return this.unary(i, states, (axis) => axis === 1);
  }

  normalize(i: number, states: (State | undefined)[]): boolean {
    const n0 = this.nodes(i)[0]!;
    const rank = this.rank(n0.inputs[0]!);
    if (rank === undefined) return false;
    const axes = normalizedAxes(n0, rank, this.opset);
    return this.unary(i, states, (axis) => !axes.includes(axis));
  }

  'channel-params'(i: number, states: (State | undefined)[]): boolean {
    const n0 = this.nodes(i)[0]!;
    const v = this.view(i, 0, states[0]);
    if (!v || v.axis !== 1 || !this.singleOutput(n0)) return false;
    const params = states.slice(1).map((s) => this.constOf(s));
    if (params.some((p) => !p || p.some((t) => t.dims.length !== 1))) return false;
    this.emit(n0, [v.name(), ...params.map((p, j) => this.addInit(n0.inputs[j + 1]!, gatherRows(p!, v.layout)))], v.layout, 1);
    return true;
  }

  binary(i: number, states: (State | undefined)[]): boolean {
    const n0 = this.nodes(i)[0]!;
    const rank = this.rank(n0.outputs[0]!);
    if (rank === undefined) return false;
    return this.operands(i, states, rank);
  }

  /**
   * Operands meeting elementwise (numpy broadcasting): every merged operand carries the
   * channels on the same output axis (reordered to the first one's layout if needed);
   * constants are either equal everywhere or per-channel along that axis.
   */
  private operands(i: number, states: (State | undefined)[], rank: number): boolean {
    const n0 = this.nodes(i)[0]!;
    let first: View | undefined;
    let axis = -1;
    for (let j = 0; j < states.length; j++) {
      const v = this.view(i, j, states[j]);
      if (!v) continue;
      const r = this.rank(n0.inputs[j]!);
      if (r === undefined) return false;
      const a = v.axis + (rank - r);
      if (first && (a !== axis || !sameChannels(v.layout, first.layout))) return false;
      if (!first) {
        first = v;
        axis = a;
      }
    }
    if (!first) return false;
    // plan every operand before emitting anything, so that a refusal leaves no node behind
    const plan: (() => string | undefined)[] = [];
    for (let j = 0; j < states.length; j++) {
      const s = states[j];
      if (!s) {
        plan.push(() => n0.inputs[j]!);
        continue;
      }
      const v = this.view(i, j, s);
      if (v) {
        plan.push(() => (sameLayout(v.layout, first.layout) ? v.name() : this.permute(v.name(), v.layout, first.layout, v.axis)));
        continue;
      }
      if (s.kind !== 'const') return false;
      const at = axis - (rank - s.values[0]!.dims.length);
      if (!channelConstFits(s.values, first.layout, at)) return false;
      plan.push(() => this.channelConst(n0.inputs[j]!, s.values, first.layout, at));
    }
    const inputs = plan.map((f) => f()!);
    this.emit(n0, inputs, first.layout, axis);
    return true;
  }

  reduce(i: number, states: (State | undefined)[]): boolean {
    const first = this.firstOperand(i, states);
    if (!first) return false;
    const { n0, v, rank } = first;
    const equalConst = (j: number): number[] | undefined => {
      const s = states[j];
      return s?.kind === 'const' && sameValues(s.values) ? toNumbers(s.values[0]!) : undefined;
    };
    const r = reducedAxes(n0, rank, equalConst);
    if (!r || r.axes.includes(v.axis)) return false;
    const params = states.slice(1).map((s, j) => (s ? this.equalParam(n0, j + 1, s) : ''));
    if (params.some((p) => p === undefined)) return false;
    this.emit(n0, [v.name(), ...(params as string[])], v.layout, r.keepdims ? v.axis : v.axis - r.axes.filter((a) => a < v.axis).length);
    return true;
  }

  transpose(i: number, states: (State | undefined)[]): boolean {
    const first = this.firstOperand(i, states);
    if (!first) return false;
    const { n0, v, rank } = first;
    this.emit(n0, [v.name()], v.layout, transposePerm(n0, rank).indexOf(v.axis));
    return true;
  }

  /**
   * Reshapes that keep the channel axis whole, or merge it with the axes after and
   * before it into one feature axis (Flatten): the target shape is rewritten with the
   * merged channel count.
   */
  reshape(i: number, states: (State | undefined)[]): boolean {
    const n0 = this.nodes(i)[0]!;
    const v = this.view(i, 0, states[0]);
    const xs = this.shapeOf(0, n0.inputs[0]!);
    const ys = this.shapeOf(0, n0.outputs[0]!);
    if (!v || !xs || !ys) return false;
    const blocks = reshapeBlocks(xs, ys);
    const block = blocks?.find((b) => b.from.includes(v.axis));
    if (!block) return false;
    const significant = block.from.filter((a) => a !== v.axis && xs[a] !== 1);
    const to = block.to.filter((a) => ys[a] !== 1);
    const outAxis = to.length === 1 ? to[0]! : to.length === 0 ? block.to[0]! : -1;
    if (outAxis < 0 || significant.some((a) => !isNum(xs[a]))) return false;
    const dims = (axes: number[]): number => axes.reduce((p, a) => p * (xs[a] as number), 1);
    const inner = dims(block.from.filter((a) => a > v.axis));
    const outer = dims(block.from.filter((a) => a < v.axis));
    const c0 = total(v.layout, 0);
    const sizes = this.parts.map((_, k) => total(v.layout, k));
    // features of component k: (o * C_k + c) * inner + r; merged: (o * C + position) * inner + r
    const layout: Segment[] = [];
    for (let o = 0; o < outer; o++) {
      for (const s of v.layout) layout.push({ comp: s.comp, start: (o * sizes[s.comp]! + s.start) * inner, length: s.length * inner });
    }
    if (!isNum(ys[outAxis]) || ys[outAxis] !== c0 * inner * outer) return false;
    const inputs = [v.name()];
    if (n0.opType === 'Reshape') {
      const target = ys.map((d, a) => (a === outAxis ? layoutLength(layout) : d));
      if (target.filter((d) => !isNum(d)).length > 1) return false;
      inputs.push(
        this.addInit(
          `${n0.inputs[1]}.merged`,
          int64(
            [target.length],
            target.map((d) => (isNum(d) ? d : -1)),
          ),
        ),
      );
    } else {
      for (let j = 1; j < n0.inputs.length; j++) {
        const p = states[j] ? this.equalParam(n0, j, states[j]!) : '';
        if (p === undefined) return false;
        inputs.push(p);
      }
    }
    this.emit(n0, inputs, compact(layout), outAxis);
    return true;
  }

  concat(i: number, states: (State | undefined)[]): boolean {
    const n0 = this.nodes(i)[0]!;
    const rank = this.rank(n0.outputs[0]!);
    if (rank === undefined) return false;
    const axis = ((a) => (a < 0 ? a + rank : a))(attrInt(n0, 'axis', 1));
    const views = states.map((s, j) => this.view(i, j, s));
    if (!views.every((v) => v && v.axis === axis)) {
      // along another axis the operands share the channels
      return views.some((v) => v && v.axis !== axis) && this.operands(i, states, rank);
    }
    const offsets = new Array<number>(this.parts.length).fill(0);
    const layout: Segment[] = [];
    for (const v of views as View[]) {
      for (const seg of v.layout) layout.push({ comp: seg.comp, start: offsets[seg.comp]! + seg.start, length: seg.length });
      for (let k = 0; k < this.parts.length; k++) offsets[k]! += total(v.layout, k);
    }
    const inputs = (views as View[]).map((v) => v.name());
    this.emit(n0, inputs, compact(layout), axis);
    return true;
  }

  /** Gather with constant indices: on the channel axis it picks each component's channels; on another axis it passes them. */
  select(i: number, states: (State | undefined)[]): boolean {
    const first = this.firstOperand(i, states);
    if (!first) return false;
    const { n0, v, rank } = first;
    if (n0.opType === 'Split' || !this.singleOutput(n0)) return false;
    if (n0.opType === 'Slice') {
      const axes = states[3] ? this.constOf(states[3]) : undefined;
      if (
        !axes ||
        !sameValues(axes) ||
        toNumbers(axes[0]!)
          .map((a) => (a < 0 ? a + rank : a))
          .includes(v.axis)
      )
        return false;
      const params = states.slice(1).map((s, j) => (s ? this.equalParam(n0, j + 1, s) : ''));
      if (params.some((p) => p === undefined)) return false;
      this.emit(n0, [v.name(), ...(params as string[])], v.layout, v.axis);
      return true;
    }
    const idx = this.constOf(states[1]);
    if (!idx) return false;
    const axis = ((a) => (a < 0 ? a + rank : a))(attrInt(n0, 'axis', 0));
    if (axis !== v.axis) {
      if (!sameValues(idx) || idx[0]!.dims.length > 1) return false;
      this.emit(n0, [v.name(), this.addInit(n0.inputs[1]!, idx[0]!)], v.layout, idx[0]!.dims.length === 0 && axis < v.axis ? v.axis - 1 : v.axis);
      return true;
    }
    if (idx.some((t) => t.dims.length !== 1)) return false;
    const where = positions(v.layout);
    const picks: number[] = [];
    idx.forEach((t, k) => {
      const size = total(v.layout, k);
      for (const c of toNumbers(t)) picks.push(where.get(`${k}:${c < 0 ? c + size : c}`)!);
    });
    if (picks.some((p) => p === undefined)) return false;
    this.emit(n0, [v.name(), this.addInit(n0.inputs[1]!, int64([picks.length], picks))], canonical(idx.map((t) => t.dims[0]!)), v.axis);
    return true;
  }

  // ---- output ----

  private finishOutput(): void {
    const out0 = this.parts[0]!.model.graph.outputs[0]!;
    const s = this.state.get(out0.name);
    if (!s || s.kind === 'const' || s.kind === 'shared') throw new NotMergeable(`the output ${out0.name} is not computed per component`);
    const batch: Dim = out0.shape?.[0] ?? 'N';
    if (s.kind === 'split') {
      const name = this.claim(out0.name);
      this.g.nodes.push({ name, opType: 'Concat', inputs: [...s.names], outputs: [name], attributes: { axis: int(1) } });
      this.g.outputs.push({ name, dtype: out0.dtype, shape: [batch, s.sizes ? s.sizes.reduce((a, b) => a + b, 0) : null] });
      return;
    }
    if (s.axis !== 1) throw new NotMergeable(`the output ${out0.name} does not hold the classes on axis 1`);
    const counts = this.parts.map((_, k) => total(s.layout, k));
    if (!sameLayout(s.layout, canonical(counts))) {
      // the classes come out interleaved: reorder them under the output's own name
      const producer = this.g.nodes.find((n) => n.outputs.includes(s.name))!;
      const inner = this.claim(`${s.name}.unordered`);
      producer.outputs = producer.outputs.map((o) => (o === s.name ? inner : o));
      this.permute(inner, s.layout, canonical(counts), 1, s.name);
    }
    this.g.outputs.push({ name: s.name, dtype: out0.dtype, shape: [batch, counts.reduce((a, b) => a + b, 0)] });
  }

  // ---- helpers ----

  /** The channel view of a node's first input and that input's rank, when both are known: what the one-operand merges start from. */
  private firstOperand(i: number, states: (State | undefined)[]): { n0: Node; v: View; rank: number } | undefined {
    const n0 = this.nodes(i)[0]!;
    const v = this.view(i, 0, states[0]);
    const rank = this.rank(n0.inputs[0]!);
    return v && rank !== undefined ? { n0, v, rank } : undefined;
  }

  private rank(tensor: string): number | undefined {
    return this.shapeOf(0, tensor)?.length;
  }

  private shapeOf(k: number, tensor: string): Dim[] | undefined {
    return this.parts[k]!.shapes.get(tensor)?.shape;
  }

  private singleOutput(n0: Node): boolean {
    if (n0.outputs.length <= 1) return true;
    if (!SINGLE_OUTPUT.has(n0.opType)) return false;
    const used = new Set(this.parts[0]!.model.graph.nodes.flatMap((n) => n.inputs));
    return n0.outputs.slice(1).every((o) => !o || !used.has(o));
  }

  private constOf(s: State | undefined): Tensor[] | undefined {
    return s?.kind === 'const' ? s.values : undefined;
  }

  /** A parameter input that is the same in every component (a Clip bound, pads, axes), or undefined. */
  private equalParam(n0: Node, j: number, s: State): string | undefined {
    if (s.kind === 'shared') return s.name;
    if (s.kind !== 'const' || !sameValues(s.values)) return undefined;
    return this.addInit(n0.inputs[j]!, s.values[0]!);
  }

  private sharedName(n0: Node, j: number, s: State): string {
    if (s.kind === 'shared') return s.name;
    if (s.kind === 'const') return this.addInit(n0.inputs[j]!, s.values[0]!);
    throw new Error('sharedName on a merged tensor');
  }

  /** A constant laid out like the channels it meets along its axis `axis` (see channelConstFits). */
  private channelConst(base: string, values: Tensor[], layout: Segment[], axis: number): string {
    if (sameValues(values) && broadcastsOver(values[0]!, axis)) return this.addInit(base, values[0]!);
    return this.addInit(base, gatherAlong(values, layout, axis));
  }

  /** Gather along `axis` that reorders a merged tensor from layout `from` to layout `to` (which hold the same channels). */
  private permute(name: string, from: Segment[], to: Segment[], axis: number, outName?: string): string {
    const where = positions(from);
    const idx: number[] = [];
    for (const s of to) for (let t = 0; t < s.length; t++) idx.push(where.get(`${s.comp}:${s.start + t}`)!);
    const indices = this.addInit(`${name}.order`, int64([idx.length], idx));
    const out = outName ?? this.claim(`${name}.reordered`);
    this.g.nodes.push({ name: out, opType: 'Gather', inputs: [name, indices], outputs: [out], attributes: { axis: int(axis) } });
    return out;
  }

  private addInit(base: string, t: Tensor): string {
    const name = this.claim(base);
    this.g.initializers.set(name, t);
    return name;
  }

  /** A name not yet used in the merged graph, reserved now. */
  private claim(base: string): string {
    const name = this.taken.has(base) ? this.fresh(base) : base;
    this.taken.add(name);
    return name;
  }

  private fresh(base: string): string {
    return freshName(base, (n) => this.taken.has(n) || this.reserved.has(n));
  }
}

type Rule = (this: Merger, i: number, states: (State | undefined)[]) => boolean;
const never: Rule = () => false;

/** What each operator kind does to layouts (false: the node runs per component). */
const MERGE: Record<OperatorKind, Rule> = {
  layer: Merger.prototype.layer,
  unary: function (this: Merger, i, states) {
    return this.unary(i, states);
  },
  spatial: Merger.prototype.spatial,
  binary: Merger.prototype.binary,
  'channel-params': Merger.prototype['channel-params'],
  normalize: Merger.prototype.normalize,
  reduce: Merger.prototype.reduce,
  transpose: Merger.prototype.transpose,
  reshape: Merger.prototype.reshape,
  concat: Merger.prototype.concat,
  select: Merger.prototype.select,
  mix: never,
  shape: never,
};

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

/** Position in the merged axis of each component channel, keyed `comp:channel`. */
function positions(layout: readonly Segment[]): Map<string, number> {
  const where = new Map<string, number>();
  let p = 0;
  for (const s of layout) for (let t = 0; t < s.length; t++) where.set(`${s.comp}:${s.start + t}`, p++);
  return where;
}

function sameLayout(a: readonly Segment[], b: readonly Segment[]): boolean {
  const x = compact(a),
    y = compact(b);
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
  const x = a.data,
    y = b.data;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

const sameValues = (ts: readonly Tensor[]): boolean => ts.every((t) => sameTensor(t, ts[0]!));

/** A constant that does not vary along `axis` (absent there, size 1, or a scalar). */
const broadcastsOver = (t: Tensor, axis: number): boolean => axis < 0 || t.dims[axis] === 1 || numel(t.dims) === 1;

/**
 * Whether constants meeting channels laid out as `layout` along their axis `axis` can be
 * merged: equal and broadcast over the channels, or per-channel there (every other axis
 * equal across components).
 */
function channelConstFits(values: readonly Tensor[], layout: readonly Segment[], axis: number): boolean {
  if (sameValues(values) && broadcastsOver(values[0]!, axis)) return true;
  const q = values[0]!.dims.length;
  const fits = (v: Tensor, k: number): boolean =>
    v.dims.length === q && v.dims[axis] === total(layout, k) && v.dims.every((d, a) => a === axis || d === values[0]!.dims[a]);
  return axis >= 0 && values.every(fits);
}

/** Whether two layouts hold the same channels (in any order). */
function sameChannels(a: readonly Segment[], b: readonly Segment[]): boolean {
  if (layoutLength(a) !== layoutLength(b)) return false;
  const where = positions(a);
  return b.every((s) => {
    for (let t = 0; t < s.length; t++) if (!where.has(`${s.comp}:${s.start + t}`)) return false;
    return true;
  });
}

/** Stacks [O_k, ...rest] tensors along axis 0. */
function concatRows(ts: readonly Tensor[]): Tensor {
  const rest = ts[0]!.dims.slice(1);
  const data = new Float32Array(ts.reduce((a, t) => a + numel(t.dims), 0));
  let at = 0;
  for (const t of ts) {
    data.set(toFloat32(t), at);
    at += numel(t.dims);
  }
  return float32([ts.reduce((a, t) => a + t.dims[0]!, 0), ...rest], data);
}

/** Rows (axis 0) picked per layout segment: row p of the result is row start+t of component comp. */
function gatherRows(ts: readonly Tensor[], layout: readonly Segment[]): Tensor {
  return gatherAlong(ts, layout, 0);
}

/** Slices along `axis` picked per layout segment and laid side by side (other axes equal in every component). */
function gatherAlong(ts: readonly Tensor[], layout: readonly Segment[], axis: number): Tensor {
  const dims = ts[0]!.dims;
  const outer = numel(dims.slice(0, axis));
  const inner = numel(dims.slice(axis + 1));
  const n = layoutLength(layout);
  const data = new Float32Array(outer * n * inner);
  const src = ts.map((t) => toFloat32(t));
  for (let o = 0; o < outer; o++) {
    let p = 0;
    for (const s of layout) {
      const size = ts[s.comp]!.dims[axis]!;
      const from = (o * size + s.start) * inner;
      data.set(src[s.comp]!.subarray(from, from + s.length * inner), (o * n + p) * inner);
      p += s.length;
    }
  }
  return float32(
    dims.map((d, a) => (a === axis ? n : d)),
    data,
  );
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
  outs.reduce((a, o, k) => {
    rowOffset[k] = a;
    return a + o;
  }, 0);
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
