/**
 * The channel structure of a CNN graph, as disassembly needs it: which activation
 * tensors share one channel indexing ("spaces"), which are made of others (Concat
 * parts at channel offsets, Flatten blocks), and which nodes are the layers (Conv,
 * Gemm, MatMul) whose contributions decide the masks.
 *
 * Pass-through operators (BatchNorm, activations, pooling, Dropout, ...) and residual
 * Adds put their inputs and output into one space (union-find), so a mask demanded
 * anywhere in a residual group is seen by every member: this is what keeps ResNets and
 * Inception nets from being pruned inconsistently. Anything the pruner does not
 * understand is refused here, before any data is read.
 */
import type { Graph, Model, Node, Tensor } from '../onnx/types.js';
import type { Known } from '../onnx/op-context.js';
import { analyzeShapes } from '../onnx/shapes.js';
import { attrFloat, attrInt, attrInts, attrString, constantValue, producers } from '../onnx/graph.js';
import { autoPadProblem, axisPads } from '../onnx/dims.js';
import { toFloat32, toNumbers } from '../onnx/tensor.js';
import { UserError } from '../util/errors.js';

/** How an activation tensor's channel axis (axis 1) maps onto spaces. */
export type ChannelRef =
  | { kind: 'space'; id: number }
  | { kind: 'concat'; parts: ChannelRef[] }
  /** features of a flattened [N, C, H, W] tensor: feature f belongs to channel floor(f / block) */
  | { kind: 'flatten'; from: ChannelRef; block: number };

export interface Space {
  size: number;
  /** never pruned: the image input, and channels of grouped (non-depthwise) convolutions */
  fixed: boolean;
  /** a tensor of the space, to name it in messages */
  tensor: string;
}

/** Convolution geometry of one layer (2-D only). */
export interface ConvGeometry {
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
  conv?: ConvGeometry;
  /** linear: the stored weight is [I, O] (MatMul, Gemm transB=0) */
  transposed?: boolean;
  /** depthwise conv: output channel o reads only input channel o, so in and out share a space */
  depthwise?: boolean;
}

/** What a node does to channels. */
export type Role = 'layer' | 'elementwise' | 'concat' | 'flatten' | 'ignore';

export interface ChannelGraph {
  model: Model;
  /** nodes in topological order */
  order: Node[];
  known: Map<string, Known>;
  /** activation tensors (computed from the image) -> channel mapping */
  refs: Map<string, ChannelRef>;
  layers: Layer[];
  roles: Map<Node, Role>;
  spaces: Space[];
  /** union-find parent of each space id */
  parent: number[];
  /** the graph input */
  input: string;
  /** the logits tensor (graph output 0) */
  logits: string;
}

/** Operators that keep channels one to one (constant operands broadcast per channel are sliced). */
const ELEMENTWISE = new Set([
  'Relu', 'LeakyRelu', 'PRelu', 'Sigmoid', 'Tanh', 'Clip', 'Elu', 'Selu', 'Celu', 'HardSigmoid', 'HardSwish', 'Softplus',
  'Softsign', 'Gelu', 'Mish', 'Erf', 'Identity', 'Dropout', 'Neg', 'Abs', 'Exp', 'Log', 'Sqrt', 'Reciprocal', 'Floor', 'Ceil',
  'Round', 'Cast', 'Sin', 'Cos', 'Pow',
  'MaxPool', 'AveragePool', 'LpPool', 'GlobalAveragePool', 'GlobalMaxPool', 'GlobalLpPool', 'Resize', 'Upsample', 'Pad',
  'BatchNormalization', 'InstanceNormalization',
  'Add', 'Sub', 'Mul', 'Div', 'Max', 'Min', 'Sum', 'Mean',
  'ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceSum', 'Squeeze', 'Unsqueeze',
]);

/** Consumers that read only a tensor's shape. */
const SHAPE_ONLY = new Set(['Shape', 'Size']);

/**
 * Analyses a classifier's graph. Throws a UserError naming the node and operator when
 * some operator on the path from the image to the logits is not one the pruner
 * understands, or when a layer's weights are not constants.
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
  const prod = producers(g);
  const cg: ChannelGraph = {
    model, order, known, refs: new Map(), layers: [], roles: new Map(), spaces: [], parent: [],
    input: g.inputs[0]!.name, logits: g.outputs[0]!.name,
  };
  const inShape = known.get(cg.input)?.shape;
  if (!inShape || (inShape.length !== 4 && inShape.length !== 2)) {
    throw new UserError(`disassembly needs an image input [N, C, H, W]; input ${cg.input} has shape ${JSON.stringify(inShape ?? null)}`);
  }
  cg.refs.set(cg.input, newSpace(cg, channelsOf(cg, cg.input), cg.input, true));
  for (const node of order) {
    const acts = node.inputs.filter((i) => i && cg.refs.has(i));
    if (acts.length === 0 || SHAPE_ONLY.has(node.opType)) {
      cg.roles.set(node, 'ignore');
      continue;
    }
    const where = `node "${node.name}" (${node.opType})`;
    if (node.domain && node.domain !== 'ai.onnx') throw unknownOp(node);
    switch (node.opType) {
      case 'Conv': addConv(cg, node, prod, where); break;
      case 'Gemm': case 'MatMul': addLinear(cg, node, prod, where); break;
      case 'Concat': addConcat(cg, node, where); break;
      case 'Flatten': case 'Reshape': addFlatten(cg, node, where); break;
      default:
        if (!ELEMENTWISE.has(node.opType)) throw unknownOp(node);
        addElementwise(cg, node, g, prod, where);
    }
  }
  if (!cg.refs.has(cg.logits)) throw new UserError(`graph output ${cg.logits} is not computed from the image input ${cg.input}`);
  return cg;
}

function unknownOp(node: Node): UserError {
  const op = node.domain && node.domain !== 'ai.onnx' ? `${node.domain}.${node.opType}` : node.opType;
  return new UserError(`the disassembler does not understand operator "${op}" (node "${node.name}"); it can prune Conv, Gemm, MatMul, BatchNormalization, activations, pooling, Add/Mul, Concat and Flatten/Reshape graphs`);
}

function newSpace(cg: ChannelGraph, size: number, tensor: string, fixed = false): ChannelRef {
  cg.spaces.push({ size, fixed, tensor });
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
  cg.spaces[keep]!.fixed ||= cg.spaces[drop]!.fixed;
  return keep;
}

/** Number of channels (axis 1) of a tensor, from shape inference. */
export function channelsOf(cg: ChannelGraph, tensor: string): number {
  const s = cg.known.get(tensor)?.shape;
  const c = s?.[1];
  if (!s || s.length < 2 || typeof c !== 'number') {
    throw new UserError(`cannot tell the channel count of tensor "${tensor}" (shape ${JSON.stringify(s ?? null)}); disassembly needs static channel counts`);
  }
  return c;
}

/** Channels of a ref. */
export function refSize(cg: ChannelGraph, ref: ChannelRef): number {
  switch (ref.kind) {
    case 'space': return cg.spaces[findSpace(cg, ref.id)]!.size;
    case 'concat': return ref.parts.reduce((s, p) => s + refSize(cg, p), 0);
    case 'flatten': return refSize(cg, ref.from) * ref.block;
  }
}

function constantOf(g: Graph, name: string, prod: Map<string, Node>, where: string, what: string): Tensor {
  const t = constantValue(g, name, prod);
  if (!t) throw new UserError(`${where}: its ${what} "${name}" is computed in the graph; the disassembler needs it as a constant (initializer)`);
  return t;
}

function addConv(cg: ChannelGraph, node: Node, prod: Map<string, Node>, where: string): void {
  const g = cg.model.graph;
  const x = cg.known.get(node.inputs[0]!)?.shape;
  if (!x || x.length !== 4) throw new UserError(`${where}: only 2-D convolutions on [N, C, H, W] are supported, input has shape ${JSON.stringify(x ?? null)}`);
  const wt = constantOf(g, node.inputs[1]!, prod, where, 'weight');
  if (wt.dims.length !== 4) throw new UserError(`${where}: weight has shape [${wt.dims.join(',')}], expected [O, I/groups, kh, kw]`);
  const [o, gi, kh, kw] = wt.dims as [number, number, number, number];
  const groups = attrInt(node, 'group', 1);
  const cin = channelsOf(cg, node.inputs[0]!);
  const [h, w] = [x[2], x[3]];
  if (typeof h !== 'number' || typeof w !== 'number') throw new UserError(`${where}: input spatial size is not static (${JSON.stringify(x)})`);
  const strides = attrInts(node, 'strides', [1, 1]);
  const dil = attrInts(node, 'dilations', [1, 1]);
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  const explicit = attrInts(node, 'pads', [0, 0, 0, 0]);
  const problem = autoPadProblem(autoPad);
  if (problem) throw new UserError(`${where}: ${problem}`);
  const ph = axisPads(autoPad, h, kh, strides[0]!, dil[0]!, [explicit[0]!, explicit[2]!])!;
  const pw = axisPads(autoPad, w, kw, strides[1]!, dil[1]!, [explicit[1]!, explicit[3]!])!;
  const pads = [ph[0], pw[0], ph[1], pw[1]];
  const out = cg.known.get(node.outputs[0]!)?.shape;
  const oh = out?.[2];
  const ow = out?.[3];
  if (typeof oh !== 'number' || typeof ow !== 'number') throw new UserError(`${where}: output spatial size is not static`);
  const inRef = cg.refs.get(node.inputs[0]!)!;
  const depthwise = groups > 1 && groups === cin && o === cin && gi === 1;
  let outRef: ChannelRef;
  if (depthwise && inRef.kind === 'space') {
    outRef = { kind: 'space', id: findSpace(cg, inRef.id) };
  } else {
    outRef = newSpace(cg, o, node.outputs[0]!);
    if (groups > 1) {
      // Grouped convolutions tie input and output channels group by group; they are kept whole.
      fixRef(cg, inRef);
      fixRef(cg, outRef);
    }
  }
  cg.refs.set(node.outputs[0]!, outRef);
  cg.roles.set(node, 'layer');
  const geometry: ConvGeometry = {
    kernel: [kh, kw], stride: [strides[0]!, strides[1]!], dilation: [dil[0]!, dil[1]!], pad: [pads[0]!, pads[1]!], inHW: [h, w], outHW: [oh, ow], groups,
  };
  addLayerOnly(cg, node, wt, o, cin, gi, kh * kw, where, geometry, depthwise);
}

function addLayerOnly(cg: ChannelGraph, node: Node, wt: Tensor, o: number, cin: number, gi: number, k: number, where: string, conv: ConvGeometry, depthwise: boolean): void {
  if (gi * conv.groups !== cin) throw new UserError(`${where}: weight expects ${gi * conv.groups} input channels, input has ${cin}`);
  cg.layers.push({
    node, kind: 'conv', input: node.inputs[0]!, output: node.outputs[0]!, weight: node.inputs[1]!,
    outChannels: o, inChannels: cin, groupIn: gi, w: toFloat32(wt), k, conv, ...(depthwise ? { depthwise } : {}),
  });
}

function fixRef(cg: ChannelGraph, ref: ChannelRef): void {
  if (ref.kind === 'space') cg.spaces[findSpace(cg, ref.id)]!.fixed = true;
  else if (ref.kind === 'concat') ref.parts.forEach((p) => fixRef(cg, p));
  else fixRef(cg, ref.from);
}

function addLinear(cg: ChannelGraph, node: Node, prod: Map<string, Node>, where: string): void {
  const g = cg.model.graph;
  const x = cg.known.get(node.inputs[0]!)?.shape;
  if (!x || x.length !== 2) throw new UserError(`${where}: the disassembler handles linear layers on [N, features] inputs; input has shape ${JSON.stringify(x ?? null)}`);
  if (cg.refs.has(node.inputs[1]!)) throw new UserError(`${where}: both operands are computed from the input; the disassembler needs constant weights`);
  if (node.opType === 'Gemm' && attrInt(node, 'transA', 0) !== 0) throw new UserError(`${where}: transA=1 is not supported by the disassembler`);
  const wt = constantOf(g, node.inputs[1]!, prod, where, 'weight');
  if (wt.dims.length !== 2) throw new UserError(`${where}: weight has shape [${wt.dims.join(',')}], expected a matrix`);
  const transposed = node.opType === 'MatMul' || attrInt(node, 'transB', 0) === 0;
  const [o, i] = transposed ? [wt.dims[1]!, wt.dims[0]!] : [wt.dims[0]!, wt.dims[1]!];
  const cin = channelsOf(cg, node.inputs[0]!);
  if (i !== cin) throw new UserError(`${where}: weight expects ${i} input features, input has ${cin}`);
  const raw = toFloat32(wt);
  const alpha = node.opType === 'Gemm' ? attrFloat(node, 'alpha', 1) : 1;
  const w = new Float32Array(o * i);
  for (let r = 0; r < o; r++) for (let c = 0; c < i; c++) w[r * i + c] = alpha * (transposed ? raw[c * o + r]! : raw[r * i + c]!);
  cg.refs.set(node.outputs[0]!, newSpace(cg, o, node.outputs[0]!));
  cg.roles.set(node, 'layer');
  cg.layers.push({ node, kind: 'linear', input: node.inputs[0]!, output: node.outputs[0]!, weight: node.inputs[1]!, outChannels: o, inChannels: i, groupIn: i, w, k: 1, transposed });
}

function addConcat(cg: ChannelGraph, node: Node, where: string): void {
  const rank = cg.known.get(node.outputs[0]!)?.shape?.length ?? 0;
  const axis = attrInt(node, 'axis', 1);
  if (axis !== 1 && axis !== 1 - rank) throw new UserError(`${where}: only Concat on the channel axis (1) is supported, found axis ${axis}`);
  const parts = node.inputs.map((i) => {
    const r = cg.refs.get(i);
    if (!r) throw new UserError(`${where}: concatenates constant "${i}" with activations; not supported by the disassembler`);
    return r;
  });
  cg.refs.set(node.outputs[0]!, { kind: 'concat', parts });
  cg.roles.set(node, 'concat');
}

function addFlatten(cg: ChannelGraph, node: Node, where: string): void {
  const x = cg.known.get(node.inputs[0]!)?.shape;
  const y = cg.known.get(node.outputs[0]!)?.shape;
  const ref = cg.refs.get(node.inputs[0]!)!;
  if (node.opType === 'Reshape' && cg.refs.has(node.inputs[1]!)) throw new UserError(`${where}: its target shape is computed from activations; not supported`);
  if (node.opType === 'Flatten' && attrInt(node, 'axis', 1) !== 1) throw new UserError(`${where}: only Flatten with axis 1 is supported`);
  if (!x || !y || y.length !== 2) throw new UserError(`${where}: the disassembler handles reshapes of [N, C, ...] to [N, features] only (here ${JSON.stringify(x ?? null)} -> ${JSON.stringify(y ?? null)})`);
  const inner = x.slice(2);
  if (!inner.every((d) => typeof d === 'number')) throw new UserError(`${where}: input spatial size is not static (${JSON.stringify(x)})`);
  const block = (inner as number[]).reduce((a, b) => a * b, 1);
  const c = channelsOf(cg, node.inputs[0]!);
  if (typeof y[1] === 'number' && y[1] !== c * block) throw new UserError(`${where}: reshapes ${JSON.stringify(x)} to ${JSON.stringify(y)}, which mixes the batch and feature axes`);
  cg.refs.set(node.outputs[0]!, block === 1 ? ref : { kind: 'flatten', from: ref, block });
  cg.roles.set(node, 'flatten');
}

function addElementwise(cg: ChannelGraph, node: Node, g: Graph, prod: Map<string, Node>, where: string): void {
  const out = node.outputs[0]!;
  const outShape = cg.known.get(out)?.shape;
  if (!outShape || outShape.length < 2) throw new UserError(`${where}: output rank is unknown or below 2`);
  checkChannelAxisKept(cg, node, outShape.length, where);
  const c = channelsOf(cg, out);
  let ref: ChannelRef | undefined;
  for (const name of node.inputs) {
    const r = name ? cg.refs.get(name) : undefined;
    if (!r) continue;
    const ci = channelsOf(cg, name);
    if (ci !== c) {
      if (ci === 1) continue; // a broadcast gate such as spatial attention: not channel-tied
      throw new UserError(`${where}: input "${name}" has ${ci} channels but the output has ${c}`);
    }
    if (!ref) { ref = r; continue; }
    if (r.kind === 'space' && ref.kind === 'space') ref = { kind: 'space', id: unite(cg, r.id, ref.id) };
    else if (!sameRef(cg, r, ref)) throw new UserError(`${where}: joins tensors whose channels are concatenations or flattenings of different layers; not supported by the disassembler`);
  }
  if (!ref) throw new UserError(`${where}: no input carries the output's ${c} channels`);
  // Constant per-channel operands are only checked here; the pruner slices them.
  for (const name of node.inputs.slice(1)) {
    if (!name || cg.refs.has(name)) continue;
    if (!constantValue(g, name, prod) && !cg.known.get(name)?.tensor) {
      throw new UserError(`${where}: operand "${name}" is neither an activation nor a constant`);
    }
  }
  cg.refs.set(out, ref);
  cg.roles.set(node, 'elementwise');
}

/** Reductions, Squeeze, Unsqueeze and Pad must leave the batch and channel axes alone. */
function checkChannelAxisKept(cg: ChannelGraph, node: Node, rank: number, where: string): void {
  if (!(node.opType.startsWith('Reduce') || node.opType === 'Squeeze' || node.opType === 'Unsqueeze')) return;
  const fromInput = node.inputs[1] ? cg.known.get(node.inputs[1])?.tensor : undefined;
  const a = fromInput ? toNumbers(fromInput) : attrInts(node, 'axes');
  if (!a || (node.inputs[1] && !fromInput)) throw new UserError(`${where}: only ${node.opType} over constant spatial axes is supported`);
  const inRank = node.opType === 'Unsqueeze' ? rank - a.length : rank + (node.opType === 'Squeeze' || attrInt(node, 'keepdims', 1) === 0 ? a.length : 0);
  const norm = a.map((x) => (x < 0 ? x + (node.opType === 'Unsqueeze' ? rank : inRank) : x));
  if (norm.some((x) => x < 2)) throw new UserError(`${where}: acts on the batch or channel axis (axes ${a.join(',')}); not supported by the disassembler`);
}

function sameRef(cg: ChannelGraph, a: ChannelRef, b: ChannelRef): boolean {
  if (a.kind === 'space' && b.kind === 'space') return findSpace(cg, a.id) === findSpace(cg, b.id);
  if (a.kind === 'flatten' && b.kind === 'flatten') return a.block === b.block && sameRef(cg, a.from, b.from);
  if (a.kind === 'concat' && b.kind === 'concat') return a.parts.length === b.parts.length && a.parts.every((p, i) => sameRef(cg, p, b.parts[i]!));
  return false;
}

// ---- masks over refs ----

/** A mask per space representative; absent = nothing demanded yet. */
export type SpaceMasks = Map<number, Uint8Array>;

/** The mask of a ref: space masks composed through Concat parts and Flatten blocks. */
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
      for (const p of parts) { out.set(p, off); off += p.length; }
      return out;
    }
    case 'flatten': {
      const m = maskOf(cg, ref.from, masks);
      const out = new Uint8Array(m.length * ref.block);
      for (let c = 0; c < m.length; c++) if (m[c]) out.fill(1, c * ref.block, (c + 1) * ref.block);
      return out;
    }
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
      for (let i = 0; i < m.length; i++) if (mask[i] && !m[i]) { m[i] = 1; grew = true; }
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
      const n = mask.length / ref.block;
      const ch = new Uint8Array(n);
      for (let c = 0; c < n; c++) {
        for (let j = c * ref.block; j < (c + 1) * ref.block; j++) if (mask[j]) { ch[c] = 1; break; }
      }
      return demand(cg, ref.from, ch, masks);
    }
  }
}

/** Ascending indices of the set entries of a mask. */
export function indicesOf(mask: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i]) out.push(i);
  return out;
}
