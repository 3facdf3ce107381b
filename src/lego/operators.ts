/**
 * How each ONNX operator moves channels: the one table that channel analysis
 * (channels.ts), structural pruning (prune.ts) and block-diagonal assembly
 * (blockdiag.ts) share. Each of them implements every kind once; adding an operator
 * means adding it here under the kind that describes it, nowhere else.
 *
 * The kinds, for an activation whose channels lie on one axis:
 * - `layer`: Conv, Gemm, MatMul with a constant weight: reads the channels of its
 *   contraction axis and writes a new channel space (the units whose contributions
 *   decide the masks).
 * - `unary`: per element (activations, Dropout, Cast, ...): channels pass one to one;
 *   extra inputs are scalar parameters (Clip bounds).
 * - `spatial`: acts on the axes after the channel axis of an [N, C, ...] tensor
 *   (pooling, Pad, Resize): channels pass one to one when they are on axis 1.
 * - `binary`: elementwise with numpy broadcasting (Add, Mul, PRelu, ...): activation
 *   operands with the full channel count share one channel set (residual Adds, gates of
 *   squeeze-excitation blocks); constant operands with a per-channel axis are sliced.
 * - `channel-params`: per-channel parameters of shape [C] as inputs 1.. (BatchNorm).
 * - `normalize`: normalises across some axes (LayerNormalization, Softmax): when the
 *   channel axis is among them, removing a channel would change every other channel's
 *   value, so that channel set is kept whole; otherwise channels pass one to one.
 * - `reduce`: removes or keeps (size 1) some axes (ReduceMean, ...).
 * - `transpose`, `reshape` (Reshape, Flatten, Squeeze, Unsqueeze): move, merge or split
 *   axes; channels are followed through (a channel shuffle is a reshape that splits the
 *   channel axis, a transpose, and a reshape that merges it back).
 * - `concat`: on the channel axis, channel sets are laid side by side; on another axis
 *   (e.g. a class token added to the token axis) the operands share the channel set.
 * - `select`: Slice, Split, Gather: along the channel axis they pick channels (chunk,
 *   head or q/k/v slices); along another axis channels pass through.
 * - `mix`: combines activations in ways channels cannot be followed through (MatMul of
 *   two activations as in attention): its inputs are kept whole and its output is
 *   untracked.
 * - `shape`: reads only the shape.
 * Operators not listed here are refused by name.
 */
import type { Dim, Node } from '../onnx/types.js';
import { attrInt, attrInts, isDefaultDomain } from '../onnx/graph.js';
import { isNum, sliceRange } from '../onnx/dims.js';

export type OperatorKind =
  'layer' | 'unary' | 'spatial' | 'binary' | 'channel-params' | 'normalize' | 'reduce' | 'transpose' | 'reshape' | 'concat' | 'select' | 'mix' | 'shape';

const KINDS: Record<string, OperatorKind> = {};
const register = (kind: OperatorKind, ops: string): void => {
  for (const op of ops.split(/\s+/).filter(Boolean)) KINDS[op] = kind;
};
register('layer', 'Conv Gemm MatMul');
register(
  'unary',
  `Relu LeakyRelu Sigmoid Tanh Clip Elu Selu Celu HardSigmoid HardSwish Softplus Softsign Gelu Mish Erf Identity
  Dropout Neg Abs Exp Log Sqrt Reciprocal Floor Ceil Round Cast Sin Cos ThresholdedRelu Shrink`,
);
register('spatial', 'MaxPool AveragePool LpPool GlobalAveragePool GlobalMaxPool GlobalLpPool Resize Upsample Pad');
register('binary', 'Add Sub Mul Div Pow PRelu Max Min Sum Mean');
register('channel-params', 'BatchNormalization InstanceNormalization');
register('normalize', 'LayerNormalization Softmax LogSoftmax Hardmax LpNormalization MeanVarianceNormalization LRN');
register('reduce', 'ReduceMean ReduceMax ReduceMin ReduceSum ReduceProd ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceSumSquare');
register('transpose', 'Transpose');
register('reshape', 'Reshape Flatten Squeeze Unsqueeze');
register('concat', 'Concat');
register('select', 'Slice Split Gather');
register('shape', 'Shape Size');

/** Operators whose extra outputs (after output 0) carry no activation (Dropout's mask, BatchNorm's training statistics). */
export const SINGLE_OUTPUT = new Set(['Dropout', 'BatchNormalization', 'LayerNormalization']);

/**
 * The kind of `node`, or undefined when the pruner does not know its operator.
 * `isActivation` tells tensors computed from the image: a MatMul, Gemm or Conv is a
 * layer only when its weight is not one of them.
 */
export function operatorKind(node: Node, isActivation: (tensor: string) => boolean): OperatorKind | undefined {
  if (!isDefaultDomain(node.domain)) return undefined;
  const kind = KINDS[node.opType];
  if (kind === 'layer') return isActivation(node.inputs[0] ?? '') && !isActivation(node.inputs[1] ?? '') ? 'layer' : 'mix';
  return kind;
}

/** The operator names of one kind (for messages and docs). */
export function operatorsOfKind(kind: OperatorKind): string[] {
  return Object.keys(KINDS).filter((op) => KINDS[op] === kind);
}

/** The axes (normalised, ascending) a `normalize` operator mixes, for an input of rank `rank`. */
export function normalizedAxes(node: Node, rank: number, opset: number): number[] {
  const norm = (a: number): number => (a < 0 ? a + rank : a);
  const from = (a: number): number[] => Array.from({ length: rank - a }, (_, k) => a + k);
  switch (node.opType) {
    case 'LayerNormalization':
      return from(norm(attrInt(node, 'axis', -1)));
    case 'Softmax':
    case 'LogSoftmax':
    case 'Hardmax':
      // before opset 13 these flattened every axis from `axis` on into one
      return opset >= 13 ? [norm(attrInt(node, 'axis', -1))] : from(norm(attrInt(node, 'axis', 1)));
    case 'LpNormalization':
      return [norm(attrInt(node, 'axis', -1))];
    case 'MeanVarianceNormalization':
      return attrInts(node, 'axes', [0, 2, 3])
        .map(norm)
        .sort((a, b) => a - b);
    case 'LRN':
      return [1];
    default:
      return [];
  }
}

/**
 * Axes reduced by a `reduce` operator (normalised, ascending) and whether they are kept
 * with size 1; undefined when the axes are not known constants. `values(i)` gives the
 * numbers of constant input i.
 */
export function reducedAxes(node: Node, rank: number, values: (input: number) => number[] | undefined): { axes: number[]; keepdims: boolean } | undefined {
  const keepdims = attrInt(node, 'keepdims', 1) !== 0;
  let axes = attrInts(node, 'axes');
  if (node.inputs[1]) {
    const v = values(1);
    if (!v) return undefined;
    axes = v;
  }
  if (!axes || axes.length === 0) {
    if (attrInt(node, 'noop_with_empty_axes', 0) !== 0) return { axes: [], keepdims };
    axes = Array.from({ length: rank }, (_, k) => k);
  }
  return { axes: [...new Set(axes.map((a) => (a < 0 ? a + rank : a)))].sort((a, b) => a - b), keepdims };
}

/** A Transpose's permutation (default: reversed axes). */
export function transposePerm(node: Node, rank: number): number[] {
  return attrInts(node, 'perm') ?? Array.from({ length: rank }, (_, k) => rank - 1 - k);
}

/**
 * A reshape seen as contiguous blocks of input axes that become contiguous blocks of
 * output axes with the same number of elements: [N, 16, 4, 4] -> [N, 2, 8, 4, 4] is
 * N->N, 16->(2, 8), 4->4, 4->4. A symbolic dimension (the batch) must meet the same
 * symbol and forms a block of its own. Axes of size 1 join the block before them.
 * Undefined when a dimension is unknown or the shapes do not decompose.
 */
export interface ReshapeBlock {
  from: number[];
  to: number[];
}

export function reshapeBlocks(x: readonly Dim[], y: readonly Dim[]): ReshapeBlock[] | undefined {
  const blocks: ReshapeBlock[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length || j < y.length) {
    if (i < x.length && j < y.length && !isNum(x[i]) && x[i] !== null && x[i] === y[j]) {
      blocks.push({ from: [i++], to: [j++] });
    } else {
      const from: number[] = [];
      const to: number[] = [];
      let px = 1;
      let py = 1;
      while (from.length === 0 || to.length === 0 || px !== py) {
        if ((px <= py || j >= y.length) && i < x.length) {
          const d = x[i];
          if (!isNum(d)) return undefined;
          px *= d;
          from.push(i++);
        } else if (j < y.length) {
          const d = y[j];
          if (!isNum(d)) return undefined;
          py *= d;
          to.push(j++);
        } else {
          return undefined;
        }
      }
      blocks.push({ from, to });
    }
    // trailing axes of size 1 belong to the block just closed
    const last = blocks[blocks.length - 1]!;
    while (i < x.length && x[i] === 1) last.from.push(i++);
    while (j < y.length && y[j] === 1) last.to.push(j++);
  }
  return blocks;
}

/** The indices a Slice picks along an axis of `size` (ONNX's clamping rules). */
export function sliceIndices(size: number, start: number, end: number, step: number): number[] {
  const r = sliceRange(size, start, end, step);
  return Array.from({ length: r.count }, (_, k) => r.start + k * step);
}

/** The sizes a Split cuts its axis into; undefined when they are not known constants. */
export function splitSizes(node: Node, size: number, opset: number, values: (input: number) => number[] | undefined): number[] | undefined {
  const parts = node.outputs.length;
  let sizes: number[] | undefined;
  if (opset >= 13 && node.inputs[1]) sizes = values(1);
  else if (opset < 13) sizes = attrInts(node, 'split');
  if (node.inputs[1] && !sizes) return undefined;
  if (sizes) return sizes.reduce((a, b) => a + b, 0) === size ? sizes : undefined;
  // equal parts; opset 18 lets the last one be smaller
  const each = Math.ceil(size / parts);
  return Array.from({ length: parts }, (_, k) => Math.max(0, Math.min(each, size - k * each)));
}
