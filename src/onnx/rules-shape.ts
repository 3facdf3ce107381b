/**
 * Shape rules for the operators that compute or rearrange shapes: Shape, Constant,
 * Reshape, Flatten, (Un)Squeeze, Transpose, Expand, ConstantOfShape, Range, Cast. Most
 * also propagate the (possibly symbolic) values of shape tensors, which is what lets
 * inference and folding see through PyTorch's Shape -> Gather -> Concat -> Reshape.
 */
import type { Dim, Node, Tensor } from './types.js';
import { type NodeContext, type OpRule, one } from './op-context.js';
import { broadcastShapes, divide, fmt, isNum, monomial, monomialDim, productDim } from './dims.js';
import { attrTensor } from './graph.js';
import { castTarget } from './evaluate.js';
import { numel } from './tensor.js';
import { UserError } from '../util/errors.js';

/** The value of a Constant node, from whichever value attribute it carries. */
export function constantNodeValue(node: Node): Tensor {
  const t = attrTensor(node, 'value');
  if (t) return t;
  const a = node.attributes;
  const v = a['value_int'] ?? a['value_ints'] ?? a['value_float'] ?? a['value_floats'];
  if (v?.kind === 'int') return { dtype: 'int64', dims: [], data: BigInt64Array.of(BigInt(v.value)) };
  if (v?.kind === 'ints') return { dtype: 'int64', dims: [v.value.length], data: BigInt64Array.from(v.value.map(BigInt)) };
  if (v?.kind === 'float') return { dtype: 'float32', dims: [], data: Float32Array.of(v.value) };
  if (v?.kind === 'floats') return { dtype: 'float32', dims: [v.value.length], data: Float32Array.from(v.value) };
  const has = Object.keys(a).join(', ') || 'none';
  throw new UserError(`node "${node.name}" (Constant): needs a value, value_int(s) or value_float(s) attribute (found: ${has})`);
}

/** Values pass through unchanged (ops that only relabel dims). */
const passValues = (c: NodeContext): Dim[] | undefined => c.values(0);

function shapeRule(c: NodeContext): ReturnType<OpRule['infer']> {
  const x = c.shape(0);
  if (!x) return one('int64', [null]);
  const r = x.length;
  const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
  const dims = x.slice(clamp(c.int('start', 0)), clamp(c.int('end', r)));
  return one('int64', [dims.length], dims);
}

function reshape(c: NodeContext): ReturnType<OpRule['infer']> {
  const x = c.shape(0);
  const target = c.values(1);
  if (!target) {
    const len = c.shape(1)?.[0];
    return one(c.dtype(0), isNum(len) ? new Array<Dim>(len).fill(null) : undefined);
  }
  const allowZero = c.int('allowzero', 0) === 1;
  if (target.filter((v) => v === -1).length > 1) c.fail(`shape ${fmt(target)} has more than one -1`);
  const out = target.map((v, i): Dim => {
    if (v === 0 && !allowZero) return x ? (x[i] ?? c.fail(`shape ${fmt(target)} copies dim ${i} (0), input ${fmt(x)} has no such dim`)) : null;
    if (isNum(v) && v < -1) c.fail(`shape ${fmt(target)} has the invalid entry ${v}`);
    return v;
  });
  const free = out.indexOf(-1);
  const total = x ? monomial(x) : undefined;
  if (free >= 0) {
    const rest = monomial(out.filter((_, i) => i !== free));
    out[free] = total && rest ? monomialDim(divide(total, rest)) : null;
  } else if (x && x.every(isNum) && out.every(isNum) && numel(x) !== numel(out)) {
    c.fail(`cannot reshape ${fmt(x)} (${numel(x)} elements) into ${fmt(out)} (${numel(out)} elements)`);
  }
  return one(c.dtype(0), out);
}

function flatten(c: NodeContext): ReturnType<OpRule['infer']> {
  const x = c.shape(0);
  if (!x) return one(c.dtype(0), [null, null]);
  let axis = c.int('axis', 1);
  if (axis < 0) axis += x.length;
  if (axis < 0 || axis > x.length) c.fail(`axis ${c.int('axis', 1)} is out of range for an input of rank ${x.length}`);
  return one(c.dtype(0), [productDim(x.slice(0, axis)), productDim(x.slice(axis))]);
}

function unsqueeze(c: NodeContext): ReturnType<OpRule['infer']> {
  const x = c.shape(0);
  const axes = c.inputOrAttr(1, 'axes');
  if (!x || !axes) return one(c.dtype(0));
  const rank = x.length + axes.length;
  const at = new Set(axes.map((a) => c.axis(a, rank)));
  if (at.size !== axes.length) c.fail(`axes [${axes.join(',')}] repeat an axis`);
  const rest = [...x];
  return one(
    c.dtype(0),
    Array.from({ length: rank }, (_, i) => (at.has(i) ? 1 : rest.shift()!)),
  );
}

function squeeze(c: NodeContext): ReturnType<OpRule['infer']> {
  const x = c.shape(0);
  if (!x) return one(c.dtype(0));
  const given = c.inputOrAttr(1, 'axes');
  if (c.has(1) && !given) return one(c.dtype(0));
  if (!given) {
    if (x.some((d) => !isNum(d))) return one(c.dtype(0));
    return one(
      c.dtype(0),
      x.filter((d) => d !== 1),
    );
  }
  const axes = new Set(given.map((a) => c.axis(a, x.length)));
  for (const a of axes) if (isNum(x[a]) && x[a] !== 1) c.fail(`cannot squeeze axis ${a} of ${fmt(x)}: its size is not 1`);
  return one(
    c.dtype(0),
    x.filter((_, i) => !axes.has(i)),
  );
}

function transpose(c: NodeContext): ReturnType<OpRule['infer']> {
  const x = c.shape(0);
  if (!x) return one(c.dtype(0));
  const perm = c.ints('perm') ?? x.map((_, i) => x.length - 1 - i);
  const sorted = [...perm].sort((a, b) => a - b);
  if (perm.length !== x.length || sorted.some((p, i) => p !== i)) c.fail(`perm [${perm.join(',')}] is not a permutation of the ${x.length} axes of ${fmt(x)}`);
  return one(
    c.dtype(0),
    perm.map((p) => x[p]!),
  );
}

function constantOfShape(c: NodeContext): ReturnType<OpRule['infer']> {
  const dtype = attrTensor(c.node, 'value')?.dtype ?? 'float32';
  const shape = c.values(0);
  if (shape && shape.some((d) => isNum(d) && d < 0)) c.fail(`shape ${fmt(shape)} has a negative dim`);
  return one(dtype, shape ?? (isNum(c.shape(0)?.[0]) ? new Array<Dim>(c.shape(0)![0] as number).fill(null) : undefined));
}

function range(c: NodeContext): ReturnType<OpRule['infer']> {
  const [start, limit, delta] = [c.numbers(0)?.[0], c.numbers(1)?.[0], c.numbers(2)?.[0]];
  if (start === undefined || limit === undefined || delta === undefined) return one(c.dtype(0), [null]);
  if (delta === 0) c.fail('delta must not be 0');
  return one(c.dtype(0), [Math.max(Math.ceil((limit - start) / delta), 0)]);
}

export const SHAPE_RULES: Record<string, OpRule> = {
  Constant: {
    inputs: [0, 0],
    infer: (c) => {
      const t = constantNodeValue(c.node);
      return one(t.dtype, [...t.dims]);
    },
  },
  Shape: { inputs: [1, 1], infer: shapeRule, values: (c) => shapeRule(c)[0]!.values },
  Size: { inputs: [1, 1], infer: () => one('int64', []), values: (c) => (c.shape(0) ? [productDim(c.shape(0)!)] : undefined) },
  Reshape: { inputs: [2, 2], infer: reshape, values: passValues },
  Flatten: { inputs: [1, 1], infer: flatten, values: passValues },
  Unsqueeze: { inputs: [1, 2], infer: unsqueeze, values: passValues },
  Squeeze: { inputs: [1, 2], infer: squeeze, values: passValues },
  Transpose: { inputs: [1, 1], infer: transpose },
  Expand: {
    inputs: [2, 2],
    infer: (c) => {
      const x = c.shape(0);
      const s = c.values(1);
      return one(c.dtype(0), x && s ? broadcastShapes([x, s], c.where) : undefined);
    },
  },
  ConstantOfShape: { inputs: [1, 1], infer: constantOfShape },
  Range: { inputs: [3, 3], infer: range },
  Cast: {
    inputs: [1, 1],
    attrs: ['to'],
    infer: (c) => one(castTarget(c.node), c.shape(0)),
    values: (c) => (castTarget(c.node).startsWith('int') ? c.values(0)?.map((v) => (isNum(v) ? Math.trunc(v) : v)) : undefined),
  },
  CastLike: { inputs: [2, 2], infer: (c) => one(c.dtype(1), c.shape(0)) },
};
