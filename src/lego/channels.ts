/**
 * The channel structure of a classifier graph, as disassembly needs it.
 *
 * Every activation tensor (computed from the image) gets an `Activation`: which of its
 * axes holds the channels and how those channels map onto channel *spaces*, the sets of
 * channels that must be pruned together. A space is born at each layer's output (Conv,
 * Gemm, MatMul) and at the image; operators say how channels move (operators.ts):
 *
 *   x = Conv1(img)         x: space A (axis 1)
 *   y = Conv2(img)         y: space B
 *   s = Relu(Add(x, y))    s: A and B united (one residual group: one mask for both)
 *   c = Concat(s, z)       c: concat [A, C]  (channel k of c is channel k of A, or k-|A| of C)
 *   t = Transpose(c, NHWC) t: the same concat ref, now on axis 3 (channels-last)
 *   f = Flatten(t)         f: flatten of t's ref: feature (o*|c| + k)*block + r is channel k
 *   g = Gather(c, [3, 0])  g: gather of c's ref: channel j of g is channel [3, 0][j] of c
 *
 * A channel shuffle (Reshape [N, C, H, W] -> [N, g, C/g, H, W], Transpose, Reshape back)
 * passes through a *spread* state (the channels over several axes, with a table giving
 * the channel of each position) and comes out as a gather ref: a fixed permutation. The
 * pruner then replaces the chain by one Gather of the kept channels.
 *
 * What cannot be followed becomes *untracked* (attention's MatMul of two activations,
 * reshapes that fold channels into the batch): its activation inputs are kept whole,
 * and whenever something depending on it is needed, all of its sources are needed (an
 * untracked edge). Spaces are also kept whole ("fixed") when they are the image, when a
 * normalisation mixes them (LayerNorm over channels: removing one would change the
 * others), or when a constant cannot be sliced. Grouped convolutions tie their input
 * and output channels group by group (GroupTie): a group is kept or removed whole.
 * Operators not in the table are refused here, by name, before any data is read.
 * A worked example of spaces, refs and masks: docs/lego-channels.md ("Worked example: the spaces of a residual block").
 */
import type { Dim, Graph, Model, Node, Tensor } from '../onnx/types.js';
import type { Known } from '../onnx/op-context.js';
import { analyzeShapes } from '../onnx/shapes.js';
import { attrFloat, attrInt, attrInts, attrString, constantValue, opsetVersion, producers, qualifiedOp } from '../onnx/graph.js';
import { autoPadProblem, axisPads, isNum } from '../onnx/dims.js';
import { toFloat32, toNumbers } from '../onnx/tensor.js';
import { UserError } from '../util/errors.js';
import {
  normalizedAxes,
  operatorKind,
  operatorsOfKind,
  reducedAxes,
  reshapeBlocks,
  sliceIndices,
  splitSizes,
  transposePerm,
  SINGLE_OUTPUT,
  type OperatorKind,
} from './operators.js';

/** How the channels of an activation axis map onto spaces. */
export type ChannelRef =
  | { kind: 'space'; id: number }
  | { kind: 'concat'; parts: ChannelRef[] }
  /** an axis merged from (outer, C, block): feature f belongs to channel floor(f / block) mod C */
  | { kind: 'flatten'; from: ChannelRef; block: number; outer?: number }
  /** channel j is channel index[j] of `from` (Slice, Split, Gather, channel shuffles) */
  | { kind: 'gather'; from: ChannelRef; index: number[] }
  /** the input of a layer reading an untracked tensor: `size` channels, all kept, depending on `sources` */
  | { kind: 'untracked'; size: number; sources: ChannelRef[] };

export interface Space {
  size: number;
  /** never pruned (see `reason`) */
  fixed: boolean;
  /** why the space is fixed, for messages */
  reason?: string;
  /** a tensor of the space, to name it in messages */
  tensor: string;
}

/** What analysis knows about one activation tensor. */
export type Activation =
  /** channels on one axis */
  | { kind: 'tracked'; ref: ChannelRef; axis: number; batch: number; rank: number }
  /**
   * channels spread over several axes (inside a channel shuffle): table[p] is the
   * channel at row-major position p over `axes`; `origin` is the tensor the channels
   * last lay on one axis of
   */
  | { kind: 'spread'; ref: ChannelRef; axes: number[]; table: number[]; batch: number; rank: number; origin: string }
  /** channels not followed: everything it depends on is kept whole */
  | { kind: 'untracked'; sources: ChannelRef[]; batch: number; rank: number };

/** The window of one 2-D convolution layer, as channel analysis and contributions read it (autodiff/rules/conv.ts has its own N-D ConvGeometry with full shapes for the gradient). */
export interface Conv2dWindow {
  kernel: [number, number];
  stride: [number, number];
  dilation: [number, number];
  /** top, left padding */
  pad: [number, number];
  /** input spatial size and output spatial size */
  inHW: [number, number];
  outHW: [number, number];
  groups: number;
}

export interface Layer {
  node: Node;
  kind: 'conv' | 'linear';
  input: string;
  output: string;
  /** name of the weight tensor (initializer or Constant output) */
  weight: string;
  /** output channels / features */
  outChannels: number;
  /** input channels / features */
  inChannels: number;
  /** input channels per group (inChannels for linear layers) */
  groupIn: number;
  /** weights as float32: conv [O, groupIn, kh*kw]; linear [O, I] (transposed from [I, O] when stored so) */
  w: Float32Array;
  /** kh*kw for convs, 1 for linear */
  k: number;
  conv?: Conv2dWindow;
  /** linear: the stored weight is [I, O] (MatMul, Gemm transB=0) */
  transposed?: boolean;
  /** depthwise conv: output channel o reads only input channel o, so in and out share a ref */
  depthwise?: boolean;
  /** the channels the layer reads (kind 'untracked' when its input is not followed) */
  inRef: ChannelRef;
  /** the channels it writes: a new space, or the input's ref for depthwise convs */
  outRef: ChannelRef;
  /** input axes of the channels and of the batch */
  inAxis: number;
  batchAxis: number;
  /** linear layers: input positions per image besides the feature axis (tokens, pixels); undefined when not static */
  positions?: number;
}

/** A grouped convolution: block g of its input (inBlock channels) feeds block g of its output (outBlock channels). */
export interface GroupTie {
  node: string;
  input: ChannelRef;
  output: ChannelRef;
  inBlock: number;
  outBlock: number;
  groups: number;
}

/** When any channel of `target` is needed, every channel of `sources` is (paths through untracked tensors). */
export interface UntrackedEdge {
  target: ChannelRef;
  sources: ChannelRef[];
}

/**
 * A tensor that is a fixed selection of another tensor's channels: channel j is channel
 * index[j] of `source`, on `axis` of both (a Slice, Split or Gather on the channel axis,
 * or the last reshape of a channel shuffle). The pruner computes it as one Gather of
 * the kept channels, so that no shape arithmetic has to follow the new channel counts.
 */
export interface ChannelGather {
  source: string;
  index: number[];
  axis: number;
  /** always rewrite (a shuffle), or only when the source's channels may be pruned */
  always: boolean;
}

/** The kind of a node (operators.ts), or 'ignore' when it reads no activation. */
export type Role = OperatorKind | 'ignore';

export interface ChannelGraph {
  model: Model;
  /** nodes in topological order */
  order: Node[];
  known: Map<string, Known>;
  /** every activation tensor */
  acts: Map<string, Activation>;
  /** the ref of every tracked activation (channels on one axis) */
  refs: Map<string, ChannelRef>;
  layers: Layer[];
  roles: Map<Node, Role>;
  spaces: Space[];
  /** union-find parent of each space id */
  parent: number[];
  ties: GroupTie[];
  edges: UntrackedEdge[];
  /** tensors that are fixed selections of another tensor's channels */
  gathers: Map<string, ChannelGather>;
  /** the graph input */
  input: string;
  /** the logits tensor (graph output 0) */
  logits: string;
  opset: number;
}

/**
 * Analyses a classifier's graph. Throws a UserError naming the node and operator when
 * some operator on the path from the image to the logits is not one the pruner
 * understands, or when the logits cannot be followed to per-class channels.
 *
 * @example
 *   const cg = analyzeChannels(openModel('vgg.onnx'));
 *   cg.layers.map((l) => l.node.name); // ['features.0', 'features.3', ..., 'classifier']
 */
export function analyzeChannels(model: Model): ChannelGraph {
  const g = model.graph;
  if (g.inputs.length !== 1) throw new UserError(`disassembly needs a model with one image input; this one has ${g.inputs.length}`);
  if (g.outputs.length < 1) throw new UserError('the model has no output');
  const { known, order } = analyzeShapes(model);
  const cg: ChannelGraph = {
    model,
    order,
    known,
    acts: new Map(),
    refs: new Map(),
    layers: [],
    roles: new Map(),
    spaces: [],
    parent: [],
    ties: [],
    edges: [],
    gathers: new Map(),
    input: g.inputs[0]!.name,
    logits: g.outputs[0]!.name,
    opset: opsetVersion(model),
  };
  const inShape = known.get(cg.input)?.shape;
  if (!inShape || (inShape.length !== 4 && inShape.length !== 2)) {
    throw new UserError(`disassembly needs an image input [N, C, H, W]; input ${cg.input} has shape ${JSON.stringify(inShape ?? null)}`);
  }
  const a = new Analysis(cg, producers(g));
  const c = inShape[1];
  if (!isNum(c)) throw new UserError(`input ${cg.input} has no static channel count (shape ${JSON.stringify(inShape)})`);
  a.set(cg.input, { kind: 'tracked', ref: newSpace(cg, c, cg.input, 'the image'), axis: 1, batch: 0, rank: inShape.length });
  for (const node of order) a.node(node);
  a.finish();
  return cg;
}

function unknownOp(node: Node): UserError {
  const op = qualifiedOp(node);
  const known = ['layer', 'binary', 'normalize', 'reshape', 'select']
    .map((k) =>
      operatorsOfKind(k as OperatorKind)
        .slice(0, 4)
        .join('/'),
    )
    .join(', ');
  return new UserError(
    `the disassembler does not understand operator "${op}" (node "${node.name}"); it follows ${known}, activations, pooling and similar operators`,
  );
}

function newSpace(cg: ChannelGraph, size: number, tensor: string, fixedBecause?: string): ChannelRef {
  cg.spaces.push({ size, fixed: fixedBecause !== undefined, ...(fixedBecause ? { reason: fixedBecause } : {}), tensor });
  cg.parent.push(cg.parent.length);
  return { kind: 'space', id: cg.spaces.length - 1 };
}

/** The representative of a space (union-find with path halving). */
export function findSpace(cg: ChannelGraph, id: number): number {
  const p = cg.parent;
  while (p[id] !== id) {
    p[id] = p[p[id]!]!;
    id = p[id]!;
  }
  return id;
}

function unite(cg: ChannelGraph, a: number, b: number): number {
  const ra = findSpace(cg, a);
  const rb = findSpace(cg, b);
  if (ra === rb) return ra;
  const keep = Math.min(ra, rb);
  const drop = Math.max(ra, rb);
  cg.parent[drop] = keep;
  const [k, d] = [cg.spaces[keep]!, cg.spaces[drop]!];
  if (d.fixed && !k.fixed) {
    k.fixed = true;
    if (d.reason) k.reason = d.reason;
  }
  return keep;
}

/** Keeps every space behind a ref whole. */
export function fixRef(cg: ChannelGraph, ref: ChannelRef, reason: string): void {
  switch (ref.kind) {
    case 'space': {
      const s = cg.spaces[findSpace(cg, ref.id)]!;
      if (!s.fixed) {
        s.fixed = true;
        s.reason = reason;
      }
      return;
    }
    case 'concat':
      ref.parts.forEach((p) => fixRef(cg, p, reason));
      return;
    case 'flatten':
    case 'gather':
      fixRef(cg, ref.from, reason);
      return;
    case 'untracked':
      ref.sources.forEach((p) => fixRef(cg, p, reason));
      return;
  }
}

/** Channels of a ref. */
export function refSize(cg: ChannelGraph, ref: ChannelRef): number {
  switch (ref.kind) {
    case 'space':
      return cg.spaces[findSpace(cg, ref.id)]!.size;
    case 'concat':
      return ref.parts.reduce((s, p) => s + refSize(cg, p), 0);
    case 'flatten':
      return refSize(cg, ref.from) * ref.block * (ref.outer ?? 1);
    case 'gather':
      return ref.index.length;
    case 'untracked':
      return ref.size;
  }
}

/** Whether some space behind a ref may lose channels. */
export function prunable(cg: ChannelGraph, ref: ChannelRef): boolean {
  switch (ref.kind) {
    case 'space':
      return !cg.spaces[findSpace(cg, ref.id)]!.fixed;
    case 'concat':
      return ref.parts.some((p) => prunable(cg, p));
    case 'flatten':
    case 'gather':
      return prunable(cg, ref.from);
    case 'untracked':
      return false;
  }
}

/** Number of channels of a tracked tensor, from shape inference. */
export function channelsOf(cg: ChannelGraph, tensor: string): number {
  const a = cg.acts.get(tensor);
  const s = cg.known.get(tensor)?.shape;
  const c = a?.kind === 'tracked' ? s?.[a.axis] : undefined;
  if (typeof c !== 'number') {
    throw new UserError(`cannot tell the channel count of tensor "${tensor}" (shape ${JSON.stringify(s ?? null)}); disassembly needs static channel counts`);
  }
  return c;
}

const identity = (n: number): number[] => Array.from({ length: n }, (_, k) => k);
const isIdentity = (t: readonly number[], n: number): boolean => t.length === n && t.every((v, k) => v === k);
const sameDim = (a: Dim | undefined, b: Dim | undefined): boolean => a !== undefined && a !== null && a === b;

/** The per-node rules of channel analysis, one per operator kind. */
class Analysis {
  private readonly g: Graph;
  private where = '';

  constructor(
    private readonly cg: ChannelGraph,
    private readonly prod: Map<string, Node>,
  ) {
    this.g = cg.model.graph;
  }

  set(tensor: string, a: Activation): void {
    this.cg.acts.set(tensor, a);
    if (a.kind === 'tracked') this.cg.refs.set(tensor, a.ref);
  }

  private isAct = (t: string | undefined): boolean => !!t && this.cg.acts.has(t);
  private act = (t: string): Activation => this.cg.acts.get(t)!;
  private shape = (t: string): Dim[] | undefined => this.cg.known.get(t)?.shape;

  /** Numbers of a small constant (or shape-arithmetic) tensor, when known. */
  private values(t: string | undefined): number[] | undefined {
    if (!t) return undefined;
    const k = this.cg.known.get(t);
    if (k?.tensor) return toNumbers(k.tensor);
    if (k?.values && k.values.every(isNum)) return k.values as number[];
    return undefined;
  }

  private constant(t: string): Tensor | undefined {
    return constantValue(this.g, t, this.prod) ?? this.cg.known.get(t)?.tensor;
  }

  /** The batch axis of a tensor from its symbolic shape (the input's batch symbol), or -1. */
  private batchBySymbol(t: string): number {
    const sym = this.cg.known.get(this.cg.input)?.shape?.[0];
    const s = this.shape(t);
    if (typeof sym !== 'string' || !s) return -1;
    const at = s.flatMap((d, k) => (d === sym ? [k] : []));
    return at.length === 1 ? at[0]! : -1;
  }

  node(node: Node): void {
    const cg = this.cg;
    if (!node.inputs.some(this.isAct)) {
      cg.roles.set(node, 'ignore');
      return;
    }
    const kind = operatorKind(node, this.isAct);
    if (!kind) throw unknownOp(node);
    cg.roles.set(node, kind);
    if (kind === 'shape') return;
    this.where = `node "${node.name}" (${node.opType})`;
    RULES[kind].call(this, node);
  }

  finish(): void {
    const cg = this.cg;
    const out = cg.acts.get(cg.logits);
    if (!out) throw new UserError(`graph output ${cg.logits} is not computed from the image input ${cg.input}`);
    if (out.kind !== 'tracked' || out.ref.kind !== 'space') {
      const what = out.kind === 'tracked' ? `a ${out.ref.kind} of channels` : 'mixed with other axes';
      throw new UserError(`the logits ${cg.logits} do not come from a layer whose output rows the disassembler can follow (they are ${what})`);
    }
    const s = cg.spaces[findSpace(cg, out.ref.id)]!;
    if (s.fixed) throw new UserError(`the logits ${cg.logits} cannot lose classes: ${s.reason ?? 'they are kept whole'}`);
  }

  // ---- helpers shared by the rules ----

  /** A spread state only continues through transposes and reshapes; anything else stops following it. */
  private settle(a: Activation): Activation {
    if (a.kind !== 'spread') return a;
    fixRef(this.cg, a.ref, `its channels are rearranged across axes by a node the pruner cannot rewrite (${this.where})`);
    return { kind: 'untracked', sources: [a.ref], batch: a.batch, rank: a.rank };
  }

  private sourcesOf(a: Activation): ChannelRef[] {
    return a.kind === 'untracked' ? a.sources : [a.ref];
  }

  /** Output untracked: every activation input is kept whole. */
  private untracked(node: Node, reason: string): void {
    const sources: ChannelRef[] = [];
    for (const t of node.inputs) {
      if (!this.isAct(t)) continue;
      const a = this.act(t);
      if (a.kind !== 'untracked') fixRef(this.cg, a.ref, `${reason} (${this.where})`);
      for (const s of this.sourcesOf(a)) if (!sources.includes(s)) sources.push(s);
    }
    for (const o of node.outputs) {
      if (!o) continue;
      this.set(o, { kind: 'untracked', sources, batch: this.batchBySymbol(o), rank: this.shape(o)?.length ?? -1 });
      if (SINGLE_OUTPUT.has(node.opType)) break;
    }
  }

  /** Two refs meeting in one channel set: spaces unite; otherwise both are kept whole. */
  private join(a: ChannelRef, b: ChannelRef): ChannelRef {
    const cg = this.cg;
    if (a.kind === 'space' && b.kind === 'space') return { kind: 'space', id: unite(cg, a.id, b.id) };
    if (sameRef(cg, a, b)) return a;
    fixRef(cg, a, `joins differently arranged channel sets (${this.where})`);
    fixRef(cg, b, `joins differently arranged channel sets (${this.where})`);
    cg.edges.push({ target: a, sources: [b] });
    return a;
  }

  /**
   * Operands meeting elementwise along channel axis `axis` of the output (binary ops,
   * Concat on another axis): activations with the full channel count join; constants
   * with it are sliced by the pruner; other full-size operands keep the set whole.
   * Ranks align from the right (numpy broadcasting; Concat operands have equal ranks).
   */
  private joinOperands(node: Node, axis: number, rank: number): void {
    const cg = this.cg;
    const out = node.outputs[0]!;
    const c = this.shape(out)?.[axis];
    let ref: ChannelRef | undefined;
    let batch = -1;
    const untrackedSources: ChannelRef[] = [];
    let computed = false;
    for (const name of node.inputs) {
      if (!name) continue;
      const s = this.shape(name);
      if (!s) {
        // an operand of unknown shape may carry the channels: keep them whole
        if (this.isAct(name)) untrackedSources.push(...this.sourcesOf(this.act(name)));
        else computed = true;
        continue;
      }
      const local = axis - (rank - s.length);
      const full = local >= 0 && sameDim(s[local], c) && c !== 1;
      if (this.isAct(name)) {
        const a = this.settle(this.act(name));
        if (a.kind === 'tracked' && a.axis === local && full) {
          ref = ref ? this.join(ref, a.ref) : a.ref;
          if (batch < 0 && a.batch >= 0) batch = a.batch + (rank - s.length);
        } else if (full) {
          if (a.kind === 'tracked') fixRef(cg, a.ref, `its channels meet another operand's on a different axis (${this.where})`);
          untrackedSources.push(...this.sourcesOf(a));
        }
      } else if (full && !this.constant(name)) {
        computed = true;
      }
    }
    if (!ref) return this.untracked(node, "its operands' channels could not be followed");
    if (computed) fixRef(cg, ref, `an operand with the same channels is computed in the graph and cannot be sliced (${this.where})`);
    if (untrackedSources.length) {
      fixRef(cg, ref, `it meets an operand whose channels are not followed (${this.where})`);
      cg.edges.push({ target: ref, sources: untrackedSources });
    }
    this.set(out, { kind: 'tracked', ref, axis, batch: batch >= 0 ? batch : this.batchBySymbol(out), rank });
  }

  /** The same activation state on the node's output (with the axes it keeps). */
  private pass(node: Node, a: Activation): void {
    this.set(node.outputs[0]!, a);
  }

  // ---- rules, one per kind ----

  layer(node: Node): void {
    const cg = this.cg;
    const where = this.where;
    const conv = node.opType === 'Conv';
    const wt = this.constant(node.inputs[1]!);
    if (!wt) throw new UserError(`${where}: its weight "${node.inputs[1]}" is computed in the graph; the disassembler needs it as a constant (initializer)`);
    const x = this.settle(this.act(node.inputs[0]!));
    const xs = this.shape(node.inputs[0]!);
    if (!xs) throw new UserError(`${where}: the rank of its input is unknown`);
    if (node.opType === 'Gemm' && node.inputs[2] && this.isAct(node.inputs[2])) {
      throw new UserError(`${where}: its bias is computed from the image; not supported by the disassembler`);
    }
    let o: number,
      i: number,
      gi: number,
      k: number,
      groups = 1,
      geometry: Conv2dWindow | undefined,
      w: Float32Array,
      transposed = false;
    let inAxis: number, outAxis: number;
    if (conv) {
      if (xs.length !== 4) throw new UserError(`${where}: only 2-D convolutions on [N, C, H, W] are supported, input has shape ${JSON.stringify(xs)}`);
      if (wt.dims.length !== 4) throw new UserError(`${where}: weight has shape [${wt.dims.join(',')}], expected [O, I/groups, kh, kw]`);
      [o, gi] = wt.dims as [number, number];
      const [kh, kw] = wt.dims.slice(2) as [number, number];
      groups = attrInt(node, 'group', 1);
      geometry = this.convWindow(node, xs, kh, kw, groups);
      i = gi * groups;
      k = kh * kw;
      w = toFloat32(wt);
      inAxis = 1;
      outAxis = 1;
    } else {
      if (wt.dims.length !== 2) throw new UserError(`${where}: weight has shape [${wt.dims.join(',')}], expected a matrix`);
      const transA = node.opType === 'Gemm' && attrInt(node, 'transA', 0) !== 0;
      if (node.opType === 'Gemm' && xs.length !== 2) throw new UserError(`${where}: Gemm input has rank ${xs.length}, expected 2`);
      transposed = node.opType === 'MatMul' || attrInt(node, 'transB', 0) === 0;
      [o, i] = transposed ? [wt.dims[1]!, wt.dims[0]!] : [wt.dims[0]!, wt.dims[1]!];
      gi = i;
      k = 1;
      const raw = toFloat32(wt);
      const alpha = node.opType === 'Gemm' ? attrFloat(node, 'alpha', 1) : 1;
      w = new Float32Array(o * i);
      for (let r = 0; r < o; r++) for (let c = 0; c < i; c++) w[r * i + c] = alpha * (transposed ? raw[c * o + r]! : raw[r * i + c]!);
      inAxis = transA ? 0 : xs.length - 1;
      outAxis = xs.length - 1;
      if (node.opType === 'Gemm') outAxis = 1;
    }
    const cin = xs[inAxis];
    if (isNum(cin) && cin !== i) throw new UserError(`${where}: weight expects ${i} input channels, input has ${cin}`);
    // The layer follows its input's channels when they lie on the axis it contracts and
    // each image's rows can be told apart (for its contributions).
    const follows = x.kind === 'tracked' && x.axis === inAxis && x.batch >= 0 && x.batch !== inAxis;
    let inRef: ChannelRef;
    if (follows) inRef = x.ref;
    else {
      if (x.kind !== 'untracked') fixRef(cg, x.ref, `${where} reads them on another axis or mixed with the batch`);
      inRef = { kind: 'untracked', size: i, sources: this.sourcesOf(x) };
    }
    const depthwise = conv && groups > 1 && gi === 1 && o === i && follows;
    let outRef: ChannelRef;
    if (depthwise) outRef = inRef;
    else {
      outRef = newSpace(cg, o, node.outputs[0]!);
      if (groups > 1) {
        if (follows) cg.ties.push({ node: node.name, input: inRef, output: outRef, inBlock: gi, outBlock: o / groups, groups });
        else fixRef(cg, outRef, `grouped convolution ${node.name} reads channels that are kept whole`);
      }
    }
    if (inRef.kind === 'untracked') cg.edges.push({ target: outRef, sources: inRef.sources });
    const batchAxis = follows ? (x as Extract<Activation, { kind: 'tracked' }>).batch : -1;
    const outBatch = follows ? (node.opType === 'Gemm' ? 0 : batchAxis) : this.batchBySymbol(node.outputs[0]!);
    this.set(node.outputs[0]!, { kind: 'tracked', ref: outRef, axis: outAxis, batch: outBatch, rank: conv ? 4 : node.opType === 'Gemm' ? 2 : xs.length });
    let positions: number | undefined = 1;
    for (let a = 0; a < xs.length && !conv; a++) {
      if (a === inAxis || a === batchAxis) continue;
      const d = xs[a];
      positions = isNum(d) && positions !== undefined ? positions * d : undefined;
    }
    cg.layers.push({
      node,
      kind: conv ? 'conv' : 'linear',
      input: node.inputs[0]!,
      output: node.outputs[0]!,
      weight: node.inputs[1]!,
      outChannels: o,
      inChannels: i,
      groupIn: gi,
      w,
      k,
      ...(geometry ? { conv: geometry } : {}),
      ...(conv ? {} : { transposed }),
      ...(depthwise ? { depthwise } : {}),
      inRef,
      outRef,
      inAxis,
      batchAxis,
      ...(positions !== undefined && !conv ? { positions } : {}),
    });
  }

  private convWindow(node: Node, xs: Dim[], kh: number, kw: number, groups: number): Conv2dWindow {
    const where = this.where;
    const [h, w] = [xs[2], xs[3]];
    if (!isNum(h) || !isNum(w)) throw new UserError(`${where}: input spatial size is not static (${JSON.stringify(xs)})`);
    const strides = attrInts(node, 'strides', [1, 1]);
    const dil = attrInts(node, 'dilations', [1, 1]);
    const autoPad = attrString(node, 'auto_pad', 'NOTSET');
    const explicit = attrInts(node, 'pads', [0, 0, 0, 0]);
    const problem = autoPadProblem(autoPad);
    if (problem) throw new UserError(`${where}: ${problem}`);
    const ph = axisPads(autoPad, h, kh, strides[0]!, dil[0]!, [explicit[0]!, explicit[2]!])!;
    const pw = axisPads(autoPad, w, kw, strides[1]!, dil[1]!, [explicit[1]!, explicit[3]!])!;
    const out = this.shape(node.outputs[0]!);
    const [oh, ow] = [out?.[2], out?.[3]];
    if (!isNum(oh) || !isNum(ow)) throw new UserError(`${where}: output spatial size is not static`);
    return { kernel: [kh, kw], stride: [strides[0]!, strides[1]!], dilation: [dil[0]!, dil[1]!], pad: [ph[0], pw[0]], inHW: [h, w], outHW: [oh, ow], groups };
  }

  unary(node: Node): void {
    if (node.inputs.slice(1).some(this.isAct) || !this.isAct(node.inputs[0])) return this.untracked(node, 'a parameter is computed from the image');
    this.pass(node, this.settle(this.act(node.inputs[0]!)));
  }

  spatial(node: Node): void {
    const x = this.settle(this.act(node.inputs[0]!));
    const xs = this.shape(node.inputs[0]!);
    const ys = this.shape(node.outputs[0]!);
    const keepsAxes = !!xs && !!ys && sameDim(xs[1], ys[1]) && xs[0] === ys[0];
    if (x.kind !== 'tracked' || x.axis !== 1 || x.batch !== 0 || !keepsAxes || node.inputs.slice(1).some(this.isAct)) {
      return this.untracked(node, 'it acts on the channel or batch axis');
    }
    this.pass(node, x);
  }

  binary(node: Node): void {
    const ys = this.shape(node.outputs[0]!);
    if (!ys) return this.untracked(node, 'its output rank is unknown');
    const rank = ys.length;
    for (const name of node.inputs) {
      if (!this.isAct(name)) continue;
      const a = this.act(name);
      const s = this.shape(name);
      if (a.kind !== 'tracked' || !s) continue;
      const axis = a.axis + (rank - s.length);
      if (sameDim(s[a.axis], ys[axis]) && ys[axis] !== 1) return this.joinOperands(node, axis, rank);
    }
    this.untracked(node, "no operand carries the output's channels");
  }

  'channel-params'(node: Node): void {
    const x = this.settle(this.act(node.inputs[0]!));
    if (x.kind !== 'tracked' || x.axis !== 1 || node.inputs.slice(1).some(this.isAct)) return this.untracked(node, 'its channels are not on axis 1');
    this.pass(node, x);
  }

  normalize(node: Node): void {
    const x = this.settle(this.act(node.inputs[0]!));
    if (x.kind !== 'tracked' || node.inputs.slice(1).some(this.isAct)) return this.untracked(node, 'it normalises untracked channels');
    const axes = normalizedAxes(node, x.rank, this.cg.opset);
    if (axes.includes(x.batch)) return this.untracked(node, 'it normalises across the batch');
    if (axes.includes(x.axis)) fixRef(this.cg, x.ref, `${this.where} normalises across these channels, so removing one would change the others`);
    this.pass(node, x);
  }

  reduce(node: Node): void {
    const x = this.settle(this.act(node.inputs[0]!));
    const r = reducedAxes(node, x.rank, (i) => this.values(node.inputs[i]));
    if (x.kind !== 'tracked' || !r || r.axes.includes(x.batch)) return this.untracked(node, 'it reduces over unknown axes or the batch');
    if (r.axes.includes(x.axis)) return this.untracked(node, 'it reduces over the channels');
    const shift = (a: number): number => (r.keepdims ? a : a - r.axes.filter((b) => b < a).length);
    this.pass(node, { ...x, axis: shift(x.axis), batch: shift(x.batch), rank: r.keepdims ? x.rank : x.rank - r.axes.length });
  }

  transpose(node: Node): void {
    const x = this.act(node.inputs[0]!);
    const perm = transposePerm(node, x.rank);
    const batch = x.batch >= 0 ? perm.indexOf(x.batch) : -1;
    if (x.kind === 'tracked') return this.pass(node, { ...x, axis: perm.indexOf(x.axis), batch });
    if (x.kind === 'untracked') return this.pass(node, { ...x, batch });
    // spread: re-enumerate the table in the row-major order of the moved axes
    const xs = this.shape(node.inputs[0]!)!;
    const oldSizes = x.axes.map((a) => xs[a] as number);
    const moved = x.axes.map((a) => perm.indexOf(a));
    const newAxes = [...moved].sort((p, q) => p - q);
    const order = newAxes.map((q) => moved.indexOf(q)); // new position k holds old channel axis order[k]
    const table = new Array<number>(x.table.length);
    const idx = new Array<number>(order.length).fill(0);
    for (let p = 0; p < table.length; p++) {
      let old = 0;
      for (let j = 0; j < oldSizes.length; j++) old = old * oldSizes[j]! + idx[order.indexOf(j)]!;
      table[p] = x.table[old]!;
      for (let k = order.length - 1; k >= 0; k--) {
        if (++idx[k]! < oldSizes[order[k]!]!) break;
        idx[k] = 0;
      }
    }
    this.pass(node, { ...x, axes: newAxes, table, batch });
  }

  reshape(node: Node): void {
    const cg = this.cg;
    const input = node.inputs[0]!;
    const out = node.outputs[0]!;
    const x = this.act(input);
    const xs = this.shape(input);
    const ys = this.shape(out);
    if (node.inputs.slice(1).some(this.isAct)) return this.untracked(node, 'its target shape depends on activation values');
    if (x.kind === 'untracked' || !xs || !ys) return this.untracked(node, 'its shapes are not known');
    const blocks = reshapeBlocks(xs, ys);
    if (!blocks) return this.untracked(node, 'it folds channels into other axes');
    let batch = -1;
    const bb = x.batch >= 0 ? blocks.find((b) => b.from.includes(x.batch)) : undefined;
    if (bb) {
      const sig = bb.to.filter((a) => ys[a] !== 1);
      if (bb.from.every((a) => a === x.batch || xs[a] === 1) && sig.length <= 1) batch = sig[0] ?? bb.to[0]!;
    }
    const chan = x.kind === 'tracked' ? [x.axis] : x.axes;
    const touched = blocks.filter((b) => b.from.some((a) => chan.includes(a)));
    if (touched.length !== 1) return this.untracked(node, 'it splits the channels across other axes');
    const block = touched[0]!;
    if (block.from.includes(x.batch)) return this.untracked(node, 'it merges the channels with the batch');
    if (!chan.every((a) => block.from.includes(a))) return this.untracked(node, 'it splits the channels across other axes');
    const others = block.from.filter((a) => !chan.includes(a) && xs[a] !== 1);
    let outAxes = block.to.filter((a) => ys[a] !== 1);
    if (outAxes.length === 0) outAxes = [block.to[0]!];
    const rank = ys.length;
    if (node.opType === 'Reshape' && ys.filter((d) => !isNum(d)).length > 1 && x.kind === 'tracked') {
      fixRef(cg, x.ref, `${this.where} has more than one unknown output dimension, so its target cannot be rewritten`);
    }
    if (others.length === 0) {
      // only channel axes in the block: the row-major order over it is the channel order
      const table = x.kind === 'tracked' ? identity(refSize(cg, x.ref)) : x.table;
      if (outAxes.length === 1) {
        if (x.kind === 'tracked') return this.pass(node, { kind: 'tracked', ref: x.ref, axis: outAxes[0]!, batch, rank });
        const ref: ChannelRef = isIdentity(table, refSize(cg, x.ref)) ? x.ref : { kind: 'gather', from: x.ref, index: table };
        const origin = cg.acts.get(x.origin) as Extract<Activation, { kind: 'tracked' }>;
        const os = this.shape(x.origin)!;
        const sameFrame = os.length === rank && origin.axis === outAxes[0] && os.every((d, a) => a === origin.axis || sameDim(d, ys[a]));
        if (sameFrame) cg.gathers.set(out, { source: x.origin, index: table, axis: outAxes[0]!, always: true });
        else fixRef(cg, x.ref, `${this.where} rearranges channels together with other axes`);
        return this.pass(node, { kind: 'tracked', ref, axis: outAxes[0]!, batch, rank });
      }
      if (!outAxes.every((a) => isNum(ys[a]))) return this.untracked(node, 'it splits the channels into axes of unknown size');
      return this.pass(node, {
        kind: 'spread',
        ref: x.ref,
        axes: outAxes,
        table,
        batch,
        rank,
        origin: x.kind === 'tracked' ? input : x.origin,
      });
    }
    if (x.kind !== 'tracked' || outAxes.length !== 1) return this.untracked(node, 'it merges channels with other axes into several axes');
    // channels merged with spatial (or token) axes into one feature axis: a flatten
    const dims = (axes: number[]): number => axes.reduce((p, a) => p * (xs[a] as number), 1);
    const outer = dims(block.from.filter((a) => a < x.axis));
    const inner = dims(block.from.filter((a) => a > x.axis));
    const ref: ChannelRef = inner === 1 && outer === 1 ? x.ref : { kind: 'flatten', from: x.ref, block: inner, ...(outer > 1 ? { outer } : {}) };
    this.pass(node, { kind: 'tracked', ref, axis: outAxes[0]!, batch, rank });
  }

  concat(node: Node): void {
    const ys = this.shape(node.outputs[0]!);
    if (!ys) return this.untracked(node, 'its output rank is unknown');
    const rank = ys.length;
    const axis = ((a) => (a < 0 ? a + rank : a))(attrInt(node, 'axis', 1));
    const acts = node.inputs.map((t) => (this.isAct(t) ? this.settle(this.act(t)) : undefined));
    const onChannels = acts.some((a) => a?.kind === 'tracked' && a.axis === axis);
    if (onChannels) {
      if (!acts.every((a) => a?.kind === 'tracked' && a.axis === axis)) return this.untracked(node, 'it concatenates channels with untracked or constant ones');
      const parts = acts.map((a) => (a as Extract<Activation, { kind: 'tracked' }>).ref);
      const first = acts[0] as Extract<Activation, { kind: 'tracked' }>;
      this.set(node.outputs[0]!, { kind: 'tracked', ref: parts.length === 1 ? parts[0]! : { kind: 'concat', parts }, axis, batch: first.batch, rank });
      return;
    }
    const tracked = acts.find((a) => a?.kind === 'tracked') as Extract<Activation, { kind: 'tracked' }> | undefined;
    if (!tracked || tracked.batch === axis) return this.untracked(node, 'it concatenates along the batch or untracked channels');
    this.joinOperands(node, tracked.axis, rank);
  }

  select(node: Node): void {
    const x = this.settle(this.act(node.inputs[0]!));
    if (node.inputs.slice(1).some(this.isAct) || x.kind !== 'tracked') return this.untracked(node, 'it selects untracked channels or by activation values');
    const xs = this.shape(node.inputs[0]!)!;
    const norm = (a: number): number => (a < 0 ? a + x.rank : a);
    const cg = this.cg;
    const input = node.inputs[0]!;
    const picked = (output: string, index: number[]): Activation => {
      cg.gathers.set(output, { source: input, index, axis: x.axis, always: false });
      return { ...x, ref: isIdentity(index, refSize(cg, x.ref)) ? x.ref : { kind: 'gather', from: x.ref, index } };
    };
    if (node.opType === 'Gather') {
      const axis = norm(attrInt(node, 'axis', 0));
      const idx = this.values(node.inputs[1]);
      const idxRank = this.shape(node.inputs[1]!)?.length;
      if (!idx || idxRank === undefined || idxRank > 1 || axis === x.batch) return this.untracked(node, 'it gathers by unknown indices or along the batch');
      const size = xs[axis];
      if (axis === x.axis) {
        if (idxRank === 0 || !isNum(size)) return this.untracked(node, 'it picks a single channel');
        return this.pass(
          node,
          picked(
            node.outputs[0]!,
            idx.map((v) => (v < 0 ? v + size : v)),
          ),
        );
      }
      const drop = (a: number): number => (idxRank === 0 && a > axis ? a - 1 : a);
      return this.pass(node, { ...x, axis: drop(x.axis), batch: drop(x.batch), rank: idxRank === 0 ? x.rank - 1 : x.rank });
    }
    if (node.opType === 'Slice') {
      const legacy = node.inputs.length < 3;
      const starts = legacy ? attrInts(node, 'starts') : this.values(node.inputs[1]);
      const ends = legacy ? attrInts(node, 'ends') : this.values(node.inputs[2]);
      const axes = (legacy ? attrInts(node, 'axes') : node.inputs[3] ? this.values(node.inputs[3]) : undefined) ?? starts?.map((_, k) => k);
      const steps = (legacy ? undefined : node.inputs[4] ? this.values(node.inputs[4]) : undefined) ?? starts?.map(() => 1);
      if (!starts || !ends || !axes || !steps) return this.untracked(node, 'its bounds are not known');
      const at = axes.map(norm);
      if (at.includes(x.batch)) return this.untracked(node, 'it slices the batch');
      const k = at.indexOf(x.axis);
      if (k < 0) return this.pass(node, x);
      const size = xs[x.axis];
      if (at.length > 1 || !isNum(size)) return this.untracked(node, 'it slices the channels together with other axes');
      return this.pass(node, picked(node.outputs[0]!, sliceIndices(size, starts[k]!, ends[k]!, steps[k]!)));
    }
    // Split
    const axis = norm(attrInt(node, 'axis', 0));
    if (axis === x.batch) return this.untracked(node, 'it splits the batch');
    if (axis !== x.axis) {
      node.outputs.forEach((o) => o && this.set(o, x));
      return;
    }
    const size = xs[axis];
    const sizes = isNum(size) ? splitSizes(node, size, cg.opset, (i) => this.values(node.inputs[i])) : undefined;
    if (!sizes) return this.untracked(node, 'its part sizes are not known');
    let start = 0;
    node.outputs.forEach((o, j) => {
      const n = sizes[j]!;
      if (o)
        this.set(
          o,
          picked(
            o,
            Array.from({ length: n }, (_, t) => start + t),
          ),
        );
      start += n;
    });
  }

  mix(node: Node): void {
    this.untracked(node, 'it combines activations across axes');
  }
}

const RULES: Record<OperatorKind, (this: Analysis, node: Node) => void> = {
  layer: Analysis.prototype.layer,
  unary: Analysis.prototype.unary,
  spatial: Analysis.prototype.spatial,
  binary: Analysis.prototype.binary,
  'channel-params': Analysis.prototype['channel-params'],
  normalize: Analysis.prototype.normalize,
  reduce: Analysis.prototype.reduce,
  transpose: Analysis.prototype.transpose,
  reshape: Analysis.prototype.reshape,
  concat: Analysis.prototype.concat,
  select: Analysis.prototype.select,
  mix: Analysis.prototype.mix,
  shape: () => undefined,
};

function sameRef(cg: ChannelGraph, a: ChannelRef, b: ChannelRef): boolean {
  if (a === b) return true;
  if (a.kind === 'space' && b.kind === 'space') return findSpace(cg, a.id) === findSpace(cg, b.id);
  if (a.kind === 'flatten' && b.kind === 'flatten') return a.block === b.block && (a.outer ?? 1) === (b.outer ?? 1) && sameRef(cg, a.from, b.from);
  if (a.kind === 'concat' && b.kind === 'concat') return a.parts.length === b.parts.length && a.parts.every((p, i) => sameRef(cg, p, b.parts[i]!));
  if (a.kind === 'gather' && b.kind === 'gather') {
    return a.index.length === b.index.length && a.index.every((v, i) => v === b.index[i]) && sameRef(cg, a.from, b.from);
  }
  return false;
}

// ---- masks over refs ----

/** A mask per space representative; absent = nothing demanded yet. */
export type SpaceMasks = Map<number, Uint8Array>;

/** The mask of a ref: space masks composed through Concat parts, Flatten blocks and gathers. */
export function maskOf(cg: ChannelGraph, ref: ChannelRef, masks: SpaceMasks): Uint8Array {
  switch (ref.kind) {
    case 'space': {
      const id = findSpace(cg, ref.id);
      return masks.get(id) ?? new Uint8Array(cg.spaces[id]!.size);
    }
    case 'concat': {
      const parts = ref.parts.map((p) => maskOf(cg, p, masks));
      const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
      let off = 0;
      for (const p of parts) {
        out.set(p, off);
        off += p.length;
      }
      return out;
    }
    case 'flatten': {
      const m = maskOf(cg, ref.from, masks);
      const c = m.length;
      const out = new Uint8Array(c * ref.block * (ref.outer ?? 1));
      for (let o = 0; o < (ref.outer ?? 1); o++) {
        for (let k = 0; k < c; k++) if (m[k]) out.fill(1, (o * c + k) * ref.block, (o * c + k + 1) * ref.block);
      }
      return out;
    }
    case 'gather': {
      const m = maskOf(cg, ref.from, masks);
      return Uint8Array.from(ref.index, (i) => m[i]!);
    }
    case 'untracked':
      return new Uint8Array(ref.size).fill(1);
  }
}

/** ORs a demand into the spaces behind a ref; returns whether any mask grew. */
export function demand(cg: ChannelGraph, ref: ChannelRef, mask: Uint8Array, masks: SpaceMasks): boolean {
  switch (ref.kind) {
    case 'space': {
      const id = findSpace(cg, ref.id);
      let m = masks.get(id);
      if (!m) masks.set(id, (m = new Uint8Array(cg.spaces[id]!.size)));
      let grew = false;
      for (let i = 0; i < m.length; i++)
        if (mask[i] && !m[i]) {
          m[i] = 1;
          grew = true;
        }
      return grew;
    }
    case 'concat': {
      let off = 0;
      let grew = false;
      for (const p of ref.parts) {
        const n = refSize(cg, p);
        grew = demand(cg, p, mask.subarray(off, off + n), masks) || grew;
        off += n;
      }
      return grew;
    }
    case 'flatten': {
      const c = refSize(cg, ref.from);
      const ch = new Uint8Array(c);
      for (let f = 0; f < mask.length; f++) if (mask[f]) ch[Math.floor(f / ref.block) % c] = 1;
      return demand(cg, ref.from, ch, masks);
    }
    case 'gather': {
      const ch = new Uint8Array(refSize(cg, ref.from));
      ref.index.forEach((i, j) => {
        if (mask[j]) ch[i] = 1;
      });
      return demand(cg, ref.from, ch, masks);
    }
    case 'untracked': {
      if (!mask.some((x) => x)) return false;
      let grew = false;
      for (const s of ref.sources) grew = demand(cg, s, new Uint8Array(refSize(cg, s)).fill(1), masks) || grew;
      return grew;
    }
  }
}

/**
 * Demands along untracked paths: when any channel of an edge's target is needed, all
 * of its sources are (e.g. a layer after attention needs all of q, k and v). Returns
 * whether any mask grew; the mask walk repeats until nothing does.
 */
export function demandUntracked(cg: ChannelGraph, masks: SpaceMasks): boolean {
  let grew = false;
  for (const e of cg.edges) {
    if (!maskOf(cg, e.target, masks).some((x) => x)) continue;
    for (const s of e.sources) grew = demand(cg, s, new Uint8Array(refSize(cg, s)).fill(1), masks) || grew;
  }
  return grew;
}

/**
 * Makes kept masks consistent with grouped convolutions: a group is kept whole (its
 * input block and its output block) as soon as any of its channels is kept. Runs to a
 * fixed point, since one space can be tied to several layers.
 */
export function closeKeep(cg: ChannelGraph, keep: SpaceMasks): void {
  for (let changed = true; changed;) {
    changed = false;
    for (const t of cg.ties) {
      const mi = maskOf(cg, t.input, keep);
      const mo = maskOf(cg, t.output, keep);
      const gi = new Uint8Array(mi.length);
      const go = new Uint8Array(mo.length);
      for (let g = 0; g < t.groups; g++) {
        const any = mi.subarray(g * t.inBlock, (g + 1) * t.inBlock).some((x) => x) || mo.subarray(g * t.outBlock, (g + 1) * t.outBlock).some((x) => x);
        if (!any) continue;
        gi.fill(1, g * t.inBlock, (g + 1) * t.inBlock);
        go.fill(1, g * t.outBlock, (g + 1) * t.outBlock);
      }
      if (demand(cg, t.input, gi, keep)) changed = true;
      if (demand(cg, t.output, go, keep)) changed = true;
    }
  }
}

/** Ascending indices of the set entries of a mask. */
export function indicesOf(mask: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i]) out.push(i);
  return out;
}
