/**
 * Shape rules for operators that select, join or resize tensor data: Concat, Split,
 * Slice, Gather, Pad, Resize, reductions, scatters, OneHot, Tile, DepthToSpace.
 */
import type { Dim } from './types.js';
import { type NodeContext, type OpRule, type OutInfo, one } from './op-context.js';
import { fmt, isNum, productDim, sliceRange, sumDim, unifyDim } from './dims.js';

type Infer = (c: NodeContext) => OutInfo[];

const concat: Infer = (c) => {
  const shapes = c.node.inputs.map((_, i) => c.shape(i));
  const known = shapes.filter((s): s is Dim[] => !!s);
  if (known.length === 0) return one(c.dtype(0));
  const rank = known[0]!.length;
  const axis = c.axis(c.int('axis', 0), rank);
  if (known.some((s) => s.length !== rank)) c.fail(`inputs have different ranks: ${known.map(fmt).join(', ')}`);
  const out = known[0]!.map((_, i) => {
    if (i === axis) return shapes.length === known.length ? sumDim(known.map((s) => s[i]!)) : null;
    return known.reduce<Dim>((d, s) => unifyDim(d, s[i]!, () => c.fail(`inputs disagree on dim ${i}: ${known.map(fmt).join(', ')}`)), null);
  });
  return one(c.dtype(0), out);
};

/** Concat of rank-0/1 shape values: [N] ++ [-1] -> [N, -1]. */
function concatValues(c: NodeContext): Dim[] | undefined {
  const out: Dim[] = [];
  for (let i = 0; i < c.node.inputs.length; i++) {
    const v = c.values(i);
    if (!v || (c.shape(i)?.length ?? 2) > 1) return undefined;
    out.push(...v);
  }
  return out;
}

const split: Infer = (c) => {
  const x = c.shape(0);
  const n = c.node.outputs.length;
  if (!x) return Array.from({ length: n }, () => one(c.dtype(0))[0]!);
  const axis = c.axis(c.int('axis', 0), x.length);
  const size = x[axis]!;
  let parts: Dim[] | undefined = c.inputOrAttr(1, 'split');
  if (parts && parts.length !== n) c.fail(`split has ${parts.length} sizes for ${n} outputs`);
  if (parts && isNum(size) && (parts as number[]).reduce((a, b) => a + b, 0) !== size) {
    c.fail(`split sizes [${parts.join(',')}] do not add up to dim ${axis} of ${fmt(x)}`);
  }
  if (!parts && c.has(1)) parts = new Array<Dim>(n).fill(null);
  if (!parts) {
    const chunk = isNum(size) ? Math.ceil(size / n) : null;
    parts = Array.from({ length: n }, (_, i) => (chunk === null || !isNum(size) ? null : Math.max(0, Math.min(chunk, size - i * chunk))));
  }
  return parts.map(
    (p) =>
      one(
        c.dtype(0),
        x.map((d, i) => (i === axis ? p : d)),
      )[0]!,
  );
};

interface SliceParams {
  starts: number[];
  ends: number[];
  axes: number[];
  steps: number[];
}

function sliceParams(c: NodeContext, rank: number): SliceParams | undefined {
  const starts = c.inputOrAttr(1, 'starts');
  const ends = c.inputOrAttr(2, 'ends');
  if (!starts || !ends) return undefined;
  const axes = c.has(3) || c.ints('axes') ? c.inputOrAttr(3, 'axes') : starts.map((_, i) => i);
  const steps = c.has(4) ? c.numbers(4) : starts.map(() => 1);
  if (!axes || !steps) return undefined;
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length) {
    c.fail('starts, ends, axes and steps must have the same length');
  }
  if (steps.some((s) => s === 0)) c.fail('steps must not be 0');
  return { starts, ends, axes: axes.map((a) => c.axis(a, rank)), steps };
}

/** A sliced dim: computed when the size is known; a symbolic size survives only a full [0:end] slice. */
function slicedDim(d: Dim, start: number, end: number, step: number): Dim {
  if (isNum(d)) return sliceRange(d, start, end, step).count;
  return start === 0 && step === 1 && end >= 2 ** 31 - 1 ? d : null;
}

const slice: Infer = (c) => {
  const x = c.shape(0);
  if (!x) return one(c.dtype(0));
  const p = sliceParams(c, x.length);
  if (!p)
    return one(
      c.dtype(0),
      x.map(() => null),
    );
  const out = [...x];
  p.axes.forEach((a, k) => (out[a] = slicedDim(x[a]!, p.starts[k]!, p.ends[k]!, p.steps[k]!)));
  return one(c.dtype(0), out);
};

function sliceValues(c: NodeContext): Dim[] | undefined {
  const v = c.values(0);
  if (!v || c.shape(0)?.length !== 1) return undefined;
  const p = sliceParams(c, 1);
  if (!p || p.axes.length !== 1) return undefined;
  const { start, count } = sliceRange(v.length, p.starts[0]!, p.ends[0]!, p.steps[0]!);
  return Array.from({ length: count }, (_, i) => v[start + i * p.steps[0]!]!);
}

const gather: Infer = (c) => {
  const x = c.shape(0);
  const idx = c.shape(1);
  if (!x || !idx) return one(c.dtype(0));
  const axis = c.axis(c.int('axis', 0), x.length);
  const size = x[axis];
  const indices = c.numbers(1);
  if (indices && isNum(size)) {
    const bad = indices.find((i) => i < -size || i >= size);
    if (bad !== undefined) c.fail(`index ${bad} is out of range for dim ${axis} of ${fmt(x)}`);
  }
  return one(c.dtype(0), [...x.slice(0, axis), ...idx, ...x.slice(axis + 1)]);
};

function gatherValues(c: NodeContext): Dim[] | undefined {
  const v = c.values(0);
  const idx = c.numbers(1);
  if (!v || !idx || c.shape(0)?.length !== 1) return undefined;
  return idx.map((i) => v[i < 0 ? i + v.length : i] ?? null);
}

const pad: Infer = (c) => {
  const x = c.shape(0);
  const pads = c.inputOrAttr(1, 'pads');
  if (!x) return one(c.dtype(0));
  if (!pads)
    return one(
      c.dtype(0),
      x.map(() => null),
    );
  const axes = c.has(3) ? c.numbers(3) : x.map((_, i) => i);
  if (!axes)
    return one(
      c.dtype(0),
      x.map(() => null),
    );
  if (pads.length !== 2 * axes.length) c.fail(`pads has ${pads.length} values, expected ${2 * axes.length} for ${fmt(x)}`);
  const out = [...x];
  axes.forEach((a0, k) => {
    const a = c.axis(a0, x.length);
    const extra = pads[k]! + pads[k + axes.length]!;
    const d = x[a]!;
    out[a] = isNum(d) ? d + extra : extra === 0 ? d : null;
  });
  return one(c.dtype(0), out);
};

/** Resize/Upsample: sizes win over scales; output = floor(input * scale). */
function resizeLike(c: NodeContext, scalesAt: number, sizesAt: number): OutInfo[] {
  const x = c.shape(0);
  if (!x) return one(c.dtype(0));
  const axes = c.ints('axes')?.map((a) => c.axis(a, x.length)) ?? x.map((_, i) => i);
  const sizes = sizesAt >= 0 ? c.values(sizesAt) : undefined;
  const attr = c.node.attributes['scales'];
  const scales = c.has(scalesAt) ? c.numbers(scalesAt) : attr?.kind === 'floats' ? attr.value : undefined;
  const out = [...x];
  if (sizes && sizes.length > 0) {
    if (sizes.length !== axes.length) c.fail(`sizes ${fmt(sizes)} does not match the rank of ${fmt(x)}`);
    axes.forEach((a, k) => (out[a] = sizes[k]!));
  } else if (scales && scales.length > 0) {
    if (scales.length !== axes.length) c.fail(`scales [${scales.join(',')}] does not match the rank of ${fmt(x)}`);
    axes.forEach((a, k) => {
      const d = x[a]!;
      out[a] = isNum(d) ? Math.floor(d * scales[k]!) : scales[k] === 1 ? d : null;
    });
  } else {
    return one(
      c.dtype(0),
      x.map(() => null),
    );
  }
  return one(c.dtype(0), out);
}

const resize: Infer = (c) => (c.opset < 11 ? resizeLike(c, 1, -1) : resizeLike(c, 2, 3));

/** Reductions: axes from the second input (opset 13/18) or the attribute; keepdims keeps them as 1. */
const reduce: Infer = (c) => {
  const x = c.shape(0);
  if (!x) return one(c.dtype(0));
  const axes = c.inputOrAttr(1, 'axes');
  if (c.has(1) && !axes) return one(c.dtype(0));
  const keep = c.int('keepdims', 1) === 1;
  if ((!axes || axes.length === 0) && c.int('noop_with_empty_axes', 0) === 1) return one(c.dtype(0), x);
  const set = new Set((axes && axes.length > 0 ? axes : x.map((_, i) => i)).map((a) => c.axis(a, x.length)));
  return one(c.dtype(0), keep ? x.map((d, i) => (set.has(i) ? 1 : d)) : x.filter((_, i) => !set.has(i)));
};

/**
 * The value of a reduction over a whole 1-D integer shape tensor: torch exports
 * x.numel() as ReduceProd(Shape(x)), so [N, 3, 4] reduces to N*12.
 */
const reduceValues =
  (f: (values: Dim[]) => Dim) =>
  (c: NodeContext): Dim[] | undefined => {
    const v = c.values(0);
    if (!v || c.shape(0)?.length !== 1 || c.dtype(0).startsWith('float')) return undefined;
    const axes = c.inputOrAttr(1, 'axes');
    if (c.has(1) && !axes) return undefined;
    if (!axes || axes.length === 0) return c.int('noop_with_empty_axes', 0) === 1 ? v : [f(v)];
    return axes.length === 1 && (axes[0] === 0 || axes[0] === -1) ? [f(v)] : undefined;
  };

const REDUCE_VALUES: Record<string, (values: Dim[]) => Dim> = {
  ReduceProd: productDim,
  ReduceSum: sumDim,
  ReduceMax: (v) => (v.every(isNum) && v.length ? Math.max(...v) : null),
  ReduceMin: (v) => (v.every(isNum) && v.length ? Math.min(...v) : null),
};

const argReduce: Infer = (c) => {
  const x = c.shape(0);
  if (!x) return one('int64');
  const axis = c.axis(c.int('axis', 0), x.length);
  return one('int64', c.int('keepdims', 1) ? x.map((d, i) => (i === axis ? 1 : d)) : x.filter((_, i) => i !== axis));
};

const oneHot: Infer = (c) => {
  const idx = c.shape(0);
  if (!idx) return one(c.dtype(2));
  const depth = c.numbers(1)?.[0] ?? null;
  const axis = c.axis(c.int('axis', -1), idx.length + 1);
  const out: Dim[] = [...idx];
  out.splice(axis, 0, depth === null ? null : Math.trunc(depth));
  return one(c.dtype(2), out);
};

const tile: Infer = (c) => {
  const x = c.shape(0);
  const reps = c.numbers(1);
  if (!x) return one(c.dtype(0));
  if (!reps)
    return one(
      c.dtype(0),
      x.map(() => null),
    );
  if (reps.length !== x.length) c.fail(`repeats has ${reps.length} values for an input of rank ${x.length}`);
  return one(
    c.dtype(0),
    x.map((d, i) => (isNum(d) ? d * reps[i]! : reps[i] === 1 ? d : null)),
  );
};

/** DepthToSpace (up) and SpaceToDepth (down) with blocksize b. */
const spaceDepth =
  (up: boolean): Infer =>
  (c) => {
    const x = c.shape(0);
    const b = c.int('blocksize', 0);
    if (!x) return one(c.dtype(0));
    if (x.length !== 4) c.fail(`input should be 4-D [N,C,H,W], found ${fmt(x)}`);
    const [n, ch, h, w] = x as [Dim, Dim, Dim, Dim];
    const mul = (d: Dim, k: number): Dim => (isNum(d) ? d * k : null);
    const div = (d: Dim, k: number): Dim => (isNum(d) ? d / k : null);
    return one(c.dtype(0), up ? [n, div(ch, b * b), mul(h, b), mul(w, b)] : [n, mul(ch, b * b), div(h, b), div(w, b)]);
  };

const REDUCE_OPS = ['ReduceMean', 'ReduceSum', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceSumSquare', 'ReduceLogSumExp'];

export const TENSOR_RULES: Record<string, OpRule> = {
  Concat: { inputs: [1, 2 ** 31], attrs: ['axis'], infer: concat, values: concatValues },
  Split: { inputs: [1, 2], outputs: [1, 2 ** 31], infer: split },
  Slice: { inputs: [1, 5], infer: slice, values: sliceValues },
  Gather: { inputs: [2, 2], infer: gather, values: gatherValues },
  GatherElements: { inputs: [2, 2], infer: (c) => one(c.dtype(0), c.shape(1)) },
  Pad: { inputs: [1, 4], infer: pad },
  Resize: { inputs: [1, 4], infer: resize },
  Upsample: { inputs: [1, 2], infer: (c) => resizeLike(c, 1, -1) },
  ...Object.fromEntries(
    REDUCE_OPS.map((op) => [op, { inputs: [1, 2], infer: reduce, ...(REDUCE_VALUES[op] ? { values: reduceValues(REDUCE_VALUES[op]) } : {}) } satisfies OpRule]),
  ),
  ArgMax: { inputs: [1, 1], infer: argReduce },
  ArgMin: { inputs: [1, 1], infer: argReduce },
  ScatterElements: { inputs: [3, 3], infer: (c) => one(c.dtype(0), c.shape(0)) },
  ScatterND: { inputs: [3, 3], infer: (c) => one(c.dtype(0), c.shape(0)) },
  OneHot: { inputs: [3, 3], infer: oneHot },
  Tile: { inputs: [2, 2], infer: tile },
  DepthToSpace: { inputs: [1, 1], attrs: ['blocksize'], infer: spaceDepth(true) },
  SpaceToDepth: { inputs: [1, 1], attrs: ['blocksize'], infer: spaceDepth(false) },
};
