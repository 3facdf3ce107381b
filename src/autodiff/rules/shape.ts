/**
 * Gradient rules for operators that only move values around: reshapes, transposes,
 * concatenation and splitting, slicing and padding (each other's gradient), gathers
 * (scatter-adds), tiling, and the no-ops (Identity, inactive Dropout).
 */
import type { GradContext, GradRule } from '../types.js';
import { attrInt, attrInts, attrString, int, ints } from '../../onnx/graph.js';
import type { DType } from '../../onnx/types.js';
import { int64, numel, tensor, toNumbers } from '../../onnx/tensor.js';
import { normAxis, sliceRange } from '../../onnx/dims.js';
import { UserError } from '../../util/errors.js';
import { emit1, intsConstant } from '../grad.js';

const where = (c: GradContext): string => `node ${c.node.name} (${c.node.opType})`;

/** Values of a constant input (Slice starts, Pad pads...): required to differentiate. */
function constantInput(c: GradContext, i: number, what: string): number[] {
  const t = c.constant(c.node.inputs[i]!);
  if (!t) throw new UserError(`${where(c)}: its ${what} must be constant to differentiate it`);
  return toNumbers(t);
}

const reshapeBack: GradRule = (c) => [emit1(c, 'Reshape', [c.dOutputs[0]!, intsConstant(c, c.shape(c.node.inputs[0]!), 'shape')])];

const identity: GradRule = (c) => [c.dOutputs[0]];

const transpose: GradRule = (c) => {
  const rank = c.shape(c.node.inputs[0]!).length;
  const perm = attrInts(
    c.node,
    'perm',
    Array.from({ length: rank }, (_, i) => rank - 1 - i),
  );
  const inverse = new Array<number>(rank);
  perm.forEach((p, i) => (inverse[p] = i));
  return [emit1(c, 'Transpose', [c.dOutputs[0]!], { perm: ints(inverse) })];
};

const concat: GradRule = (c) => {
  const rank = c.shape(c.node.inputs[0]!).length;
  const axis = normAxis(attrInt(c.node, 'axis', 0), rank, where(c));
  const sizes = c.node.inputs.map((i) => c.shape(i)[axis]!);
  const parts = c.emit('Split', [c.dOutputs[0]!, intsConstant(c, sizes, 'sizes')], { axis: int(axis) }, sizes.length, 'split');
  return parts.map((p, i) => (c.needs[i] ? p : undefined));
};

/** The gradient of Split: its outputs' gradients concatenated, zeros for outputs nothing used. */
const split: GradRule = (c) => {
  const x = c.shape(c.node.inputs[0]!);
  const axis = normAxis(attrInt(c.node, 'axis', 0), x.length, where(c));
  const parts = c.node.outputs.map((o, i) => c.dOutputs[i] ?? zerosLike(c, c.shape(o)));
  return [parts.length === 1 ? parts[0] : emit1(c, 'Concat', parts, { axis: int(axis) })];
};

function zerosLike(c: GradContext, shape: readonly number[], dtype: DType = 'float32'): string {
  return emit1(c, 'ConstantOfShape', [intsConstant(c, shape, 'shape')], { value: { kind: 'tensor', value: tensor(dtype, [1], [0]) } }, 'zeros');
}

/**
 * Grows (positive amounts) or crops (negative amounts) each axis at its start and end:
 * a Slice for the crops, then one constant Pad for the growth.
 */
function padOrCrop(c: GradContext, g: string, begin: readonly number[], end: readonly number[]): string {
  const shape = c.shape(g);
  const axes: number[] = [];
  const starts: number[] = [];
  const ends: number[] = [];
  shape.forEach((d, a) => {
    if (begin[a]! >= 0 && end[a]! >= 0) return;
    axes.push(a);
    starts.push(Math.max(0, -begin[a]!));
    ends.push(d - Math.max(0, -end[a]!));
  });
  let out = g;
  if (axes.length) out = emit1(c, 'Slice', [g, intsConstant(c, starts, 'starts'), intsConstant(c, ends, 'ends'), intsConstant(c, axes, 'axes')]);
  const pads = [...begin.map((b) => Math.max(0, b)), ...end.map((e) => Math.max(0, e))];
  if (pads.some((p) => p > 0)) out = emit1(c, 'Pad', [out, intsConstant(c, pads, 'pads')], { mode: { kind: 'string', value: 'constant' } });
  return out;
}

/**
 * Spreads the gradient of a strided slice back along one axis: dY[k] belongs at
 * start + k*step. Each element is followed by step-1 zeros (Unsqueeze, Pad, Reshape)
 * and reversed first when the step is negative; returns the new tensor and the
 * position its element 0 must land at.
 */
function unstride(c: GradContext, g: string, axis: number, start: number, count: number, step: number): { g: string; start: number } {
  let out = g;
  let first = start;
  if (step < 0) {
    out = emit1(
      c,
      'Slice',
      [out, intsConstant(c, [-1], 'starts'), intsConstant(c, [-(2 ** 62)], 'ends'), intsConstant(c, [axis], 'axes'), intsConstant(c, [-1], 'steps')],
      {},
      'reverse',
    );
    first = start + (count - 1) * step;
  }
  const s = Math.abs(step);
  if (s === 1) return { g: out, start: first };
  const shape = c.shape(out);
  const rank = shape.length;
  const lifted = emit1(c, 'Unsqueeze', [out, intsConstant(c, [axis + 1], 'axes')]);
  const pads = new Array<number>(2 * (rank + 1)).fill(0);
  pads[rank + 1 + axis + 1] = s - 1;
  const spaced = emit1(c, 'Pad', [lifted, intsConstant(c, pads, 'pads')], { mode: { kind: 'string', value: 'constant' } });
  const merged = shape.map((d, a) => (a === axis ? d * s : d));
  return { g: emit1(c, 'Reshape', [spaced, intsConstant(c, merged, 'shape')]), start: first };
}

const slice: GradRule = (c) => {
  const x = c.shape(c.node.inputs[0]!);
  const starts = constantInput(c, 1, 'starts');
  const ends = constantInput(c, 2, 'ends');
  const axes = c.node.inputs[3] ? constantInput(c, 3, 'axes') : starts.map((_, i) => i);
  const steps = c.node.inputs[4] ? constantInput(c, 4, 'steps') : starts.map(() => 1);
  let g = c.dOutputs[0]!;
  const begin = x.map(() => 0);
  axes.forEach((rawAxis, k) => {
    const axis = normAxis(rawAxis, x.length, where(c));
    const { start, count } = sliceRange(x[axis]!, starts[k]!, ends[k]!, steps[k]!);
    const spread = unstride(c, g, axis, start, count, steps[k]!);
    g = spread.g;
    begin[axis] = spread.start;
  });
  const now = c.shape(g);
  return [
    padOrCrop(
      c,
      g,
      begin,
      x.map((d, a) => d - begin[a]! - now[a]!),
    ),
  ];
};

/** Constant-mode Pad: the gradient is the un-padded (or, for negative pads, re-padded) window. */
const pad: GradRule = (c) => {
  const mode = attrString(c.node, 'mode', 'constant');
  if (mode !== 'constant') throw new UserError(`${where(c)}: no gradient rule for Pad mode "${mode}" (only "constant")`);
  const rank = c.shape(c.node.inputs[0]!).length;
  const pads = constantInput(c, 1, 'pads');
  const begin = pads.slice(0, rank).map((p) => -p);
  const end = pads.slice(rank, 2 * rank).map((p) => -p);
  return [padOrCrop(c, c.dOutputs[0]!, begin, end)];
};

const expand: GradRule = (c) => [c.unbroadcast(c.dOutputs[0]!, c.shape(c.node.outputs[0]!), c.shape(c.node.inputs[0]!))];

/**
 * Indices of a Gather-like node with negative entries wrapped: `values` when constant
 * (`name()` then adds them as a constant only if asked), else nodes computing them.
 */
function wrappedIndices(c: GradContext, size: number): { name: () => string; values?: number[] } {
  const input = c.node.inputs[1]!;
  const t = c.constant(input);
  if (t) {
    const values = toNumbers(t).map((v) => (v < 0 ? v + size : v));
    if (values.some((v) => v < 0 || v >= size)) throw new UserError(`${where(c)}: an index is outside [-${size}, ${size - 1}]`);
    return { name: () => c.addConstant(int64([...t.dims], values), 'indices'), values };
  }
  const idx = c.dtype(input) === 'int64' ? input : emit1(c, 'Cast', [input], { to: int(7) }, 'indices64');
  const negative = emit1(c, 'Less', [idx, intsScalar(c, 0)]);
  const wrapped = emit1(c, 'Where', [negative, emit1(c, 'Add', [idx, intsScalar(c, size)]), idx], {}, 'indices');
  return { name: () => wrapped };
}

const intsScalar = (c: GradContext, v: number): string => c.addConstant(int64([], [v]), 'int');

/**
 * Gather along `axis`: dY (shape x[:axis] + indices + x[axis+1:]) seen as [pre, K, post]
 * is added into zeros [pre, n, post] at the indices (ScatterElements with add, so
 * repeated indices sum). Constant indices that pick a contiguous ascending run (the
 * class token x[:, 0], a slice written as Gather) need only a Pad.
 */
const gather: GradRule = (c) => {
  if (!c.needs[0]) return [undefined, undefined];
  const x = c.shape(c.node.inputs[0]!);
  const axis = normAxis(attrInt(c.node, 'axis', 0), x.length, where(c));
  const n = x[axis]!;
  const pre = x.slice(0, axis).reduce((a, b) => a * b, 1);
  const post = x.slice(axis + 1).reduce((a, b) => a * b, 1);
  const idx = wrappedIndices(c, n);
  const k = idx.values?.length ?? numel(c.shape(c.node.inputs[1]!));
  const dy = emit1(c, 'Reshape', [c.dOutputs[0]!, intsConstant(c, [pre, k, post], 'shape')]);
  let dx: string;
  if (idx.values && idx.values.every((v, i) => v === idx.values![0]! + i)) {
    const first = idx.values[0] ?? 0;
    dx = emit1(c, 'Pad', [dy, intsConstant(c, [0, first, 0, 0, n - first - k, 0], 'pads')], { mode: { kind: 'string', value: 'constant' } });
  } else {
    const spread = emit1(c, 'Expand', [emit1(c, 'Reshape', [idx.name(), intsConstant(c, [1, k, 1], 'shape')]), intsConstant(c, [pre, k, post], 'shape')]);
    dx = emit1(c, 'ScatterElements', [zerosLike(c, [pre, n, post], c.dtype(c.node.inputs[0]!)), spread, dy], {
      axis: int(1),
      reduction: { kind: 'string', value: 'add' },
    });
  }
  return [emit1(c, 'Reshape', [dx, intsConstant(c, x, 'shape')]), undefined];
};

/** GatherElements: dY added into zeros at the same indices (ScatterElements with add). */
const gatherElements: GradRule = (c) => {
  if (!c.needs[0]) return [undefined, undefined];
  const x = c.shape(c.node.inputs[0]!);
  const axis = normAxis(attrInt(c.node, 'axis', 0), x.length, where(c));
  const idx = wrappedIndices(c, x[axis]!).name();
  const zeros = zerosLike(c, x, c.dtype(c.node.inputs[0]!));
  return [emit1(c, 'ScatterElements', [zeros, idx, c.dOutputs[0]!], { axis: int(axis), reduction: { kind: 'string', value: 'add' } }), undefined];
};

/** Tile: dY of shape [r0 d0, r1 d1, ...] seen as [r0, d0, r1, d1, ...], summed over the repeat axes. */
const tile: GradRule = (c) => {
  const x = c.shape(c.node.inputs[0]!);
  const reps = constantInput(c, 1, 'repeats');
  if (reps.every((r) => r === 1)) return [c.dOutputs[0], undefined];
  const split = emit1(c, 'Reshape', [
    c.dOutputs[0]!,
    intsConstant(
      c,
      x.flatMap((d, i) => [reps[i]!, d]),
      'shape',
    ),
  ]);
  const summed = emit1(
    c,
    'ReduceSum',
    [
      split,
      intsConstant(
        c,
        x.map((_, i) => 2 * i),
        'axes',
      ),
    ],
    { keepdims: int(0) },
  );
  return [summed, undefined];
};

export const RULES: Record<string, GradRule> = {
  Reshape: reshapeBack,
  Flatten: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Identity: identity,
  Dropout: identity,
  Transpose: transpose,
  Concat: concat,
  Split: split,
  Slice: slice,
  Pad: pad,
  Expand: expand,
  Gather: gather,
  GatherElements: gatherElements,
  Tile: tile,
};
