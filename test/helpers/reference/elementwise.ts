/**
 * Reference (float64) elementwise operators, reductions and softmax, plus the small
 * tensor helpers the other reference modules share. Written for obviousness, not speed.
 */
import type { Node } from '../../../src/onnx/types.js';
import { attrFloat, attrInt, attrInts, attrString } from '../../../src/onnx/graph.js';
import { castTarget } from '../../../src/onnx/evaluate.js';
import { registerRefOp, type RefTensor } from './registry.js';

// ---- helpers ----

export const size = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

export function refTensor(dims: readonly number[], data?: ArrayLike<number>): RefTensor {
  const out = new Float64Array(size(dims));
  if (data) out.set(data);
  return { dims: [...dims], data: out };
}

/** Row-major strides. */
export function strides(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length);
  let k = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    s[i] = k;
    k *= dims[i]!;
  }
  return s;
}

/** Multi-index of flat index `flat` in `dims`. */
export function unravel(flat: number, dims: readonly number[]): number[] {
  const idx = new Array<number>(dims.length);
  for (let i = dims.length - 1; i >= 0; i--) {
    idx[i] = flat % dims[i]!;
    flat = Math.floor(flat / dims[i]!);
  }
  return idx;
}

export const normalizeAxis = (axis: number, rank: number): number => (axis < 0 ? axis + rank : axis);

export function broadcastDims(shapes: readonly (readonly number[])[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  return Array.from({ length: rank }, (_, i) => {
    let d = 1;
    for (const s of shapes) {
      const v = s[i - (rank - s.length)] ?? 1;
      if (v !== 1) {
        if (d !== 1 && d !== v) throw new Error(`cannot broadcast [${shapes.map((x) => x.join(',')).join('] and [')}]`);
        d = v;
      }
    }
    return d;
  });
}

/** Flat index into `t` for the output multi-index `idx` under numpy broadcasting. */
export function broadcastIndex(t: RefTensor, idx: readonly number[]): number {
  const offset = idx.length - t.dims.length;
  let flat = 0;
  for (let i = 0; i < t.dims.length; i++) flat = flat * t.dims[i]! + (t.dims[i] === 1 ? 0 : idx[i + offset]!);
  return flat;
}

/**
 * Strides of `t` seen from an output of shape `dims` under broadcasting: 0 along the
 * axes it is broadcast over.
 */
export function broadcastStrides(t: RefTensor, dims: readonly number[]): number[] {
  const own = strides(t.dims);
  const offset = dims.length - t.dims.length;
  return dims.map((_, i) => (i < offset || t.dims[i - offset] === 1 ? 0 : own[i - offset]!));
}

/** out[i] = f(values of every input at i), inputs broadcast against each other. */
export function mapBroadcast(inputs: readonly RefTensor[], f: (v: number[]) => number): RefTensor {
  const dims = broadcastDims(inputs.map((t) => t.dims));
  const out = refTensor(dims);
  const steps = inputs.map((t) => broadcastStrides(t, dims));
  // walk the output in order, keeping each input's flat position (an odometer over the axes)
  const idx = dims.map(() => 0);
  const at = inputs.map(() => 0);
  const v = inputs.map(() => 0);
  for (let o = 0; o < out.data.length; o++) {
    for (let k = 0; k < inputs.length; k++) v[k] = inputs[k]!.data[at[k]!]!;
    out.data[o] = f(v);
    for (let a = dims.length - 1; a >= 0; a--) {
      idx[a]!++;
      for (let k = 0; k < inputs.length; k++) at[k]! += steps[k]![a]!;
      if (idx[a]! < dims[a]!) break;
      for (let k = 0; k < inputs.length; k++) at[k]! -= steps[k]![a]! * dims[a]!;
      idx[a] = 0;
    }
  }
  return out;
}

/** mapBroadcast for two inputs, without the per-element array (finite differences run it a lot). */
export function mapBinary(a: RefTensor, b: RefTensor, f: (x: number, y: number) => number): RefTensor {
  const dims = broadcastDims([a.dims, b.dims]);
  const out = refTensor(dims);
  const sa = broadcastStrides(a, dims);
  const sb = broadcastStrides(b, dims);
  const idx = dims.map(() => 0);
  let i = 0;
  let j = 0;
  for (let o = 0; o < out.data.length; o++) {
    out.data[o] = f(a.data[i]!, b.data[j]!);
    for (let k = dims.length - 1; k >= 0; k--) {
      idx[k]!++;
      i += sa[k]!;
      j += sb[k]!;
      if (idx[k]! < dims[k]!) break;
      i -= sa[k]! * dims[k]!;
      j -= sb[k]! * dims[k]!;
      idx[k] = 0;
    }
  }
  return out;
}

const unary =
  (f: (x: number, node: Node) => number) =>
  (node: Node, [x]: (RefTensor | undefined)[]): RefTensor[] => [{ dims: [...x!.dims], data: x!.data.map((v) => f(v, node)) }];

const binary =
  (f: (a: number, b: number) => number) =>
  (_: Node, [a, b]: (RefTensor | undefined)[]): RefTensor[] => [mapBinary(a!, b!, f)];

const variadic =
  (f: (v: number[]) => number) =>
  (_: Node, inputs: (RefTensor | undefined)[]): RefTensor[] => [
    mapBroadcast(
      inputs.filter((t): t is RefTensor => !!t),
      f,
    ),
  ];

/** Axes of a Reduce* node: input 1 (ReduceSum, opset 18 forms) or attribute; all axes when empty. */
export function reduceAxes(node: Node, x: RefTensor, axesInput: RefTensor | undefined): number[] {
  const raw = axesInput ? Array.from(axesInput.data) : (attrInts(node, 'axes') ?? []);
  if (raw.length === 0) return attrInt(node, 'noop_with_empty_axes', 0) ? [] : x.dims.map((_, i) => i);
  return raw.map((a) => normalizeAxis(a, x.dims.length));
}

/** Folds `f` over the reduced axes, starting from `init`, then `finish` (e.g. divide by the count). */
function reduction(init: number, f: (acc: number, v: number) => number, finish: (acc: number, count: number) => number = (a) => a) {
  return (node: Node, [x, axesInput]: (RefTensor | undefined)[]): RefTensor[] => {
    const axes = reduceAxes(node, x!, axesInput);
    const keep = attrInt(node, 'keepdims', 1) === 1;
    const keptDims = x!.dims.map((d, i) => (axes.includes(i) ? 1 : d));
    const acc = refTensor(keptDims);
    acc.data.fill(init);
    const count = axes.reduce((n, a) => n * x!.dims[a]!, 1);
    // every input element, with the flat index of the kept-dims cell it folds into
    const into = broadcastStrides(acc, x!.dims);
    const idx = x!.dims.map(() => 0);
    let flat = 0;
    for (let i = 0; i < x!.data.length; i++) {
      acc.data[flat] = f(acc.data[flat]!, x!.data[i]!);
      for (let a = idx.length - 1; a >= 0; a--) {
        idx[a]!++;
        flat += into[a]!;
        if (idx[a]! < x!.dims[a]!) break;
        flat -= into[a]! * x!.dims[a]!;
        idx[a] = 0;
      }
    }
    const data = acc.data.map((v) => finish(v, count));
    return [{ dims: keep ? keptDims : x!.dims.filter((_, i) => !axes.includes(i)), data }];
  };
}

/** Softmax along one axis (opset 13+), optionally returning its log. */
const softmax =
  (log: boolean) =>
  (node: Node, [x]: (RefTensor | undefined)[]): RefTensor[] => {
    const t = x!;
    const axis = normalizeAxis(attrInt(node, 'axis', -1), t.dims.length);
    const n = t.dims[axis]!;
    const stride = strides(t.dims)[axis]!;
    const out = refTensor(t.dims);
    for (let i = 0; i < t.data.length; i++) {
      if (Math.floor(i / stride) % n !== 0) continue;
      const at = (k: number): number => i + k * stride;
      let max = -Infinity;
      for (let k = 0; k < n; k++) max = Math.max(max, t.data[at(k)]!);
      let sum = 0;
      for (let k = 0; k < n; k++) sum += Math.exp(t.data[at(k)]! - max);
      for (let k = 0; k < n; k++) {
        const z = t.data[at(k)]! - max;
        out.data[at(k)] = log ? z - Math.log(sum) : Math.exp(z) / sum;
      }
    }
    return [out];
  };

function cast(node: Node, [x]: (RefTensor | undefined)[]): RefTensor[] {
  const to = castTarget(node);
  const f = to === 'bool' ? (v: number) => (v !== 0 ? 1 : 0) : to.startsWith('int') || to.startsWith('uint') ? Math.trunc : (v: number) => v;
  return [{ dims: [...x!.dims], data: x!.data.map(f) }];
}

function clip(_: Node, [x, lo, hi]: (RefTensor | undefined)[]): RefTensor[] {
  const min = lo ? lo.data[0]! : -Infinity;
  const max = hi ? hi.data[0]! : Infinity;
  return [{ dims: [...x!.dims], data: x!.data.map((v) => Math.min(Math.max(v, min), max)) }];
}

/** Inference-mode Dropout: the identity (and an all-true mask when asked for). */
function dropout(node: Node, [x]: (RefTensor | undefined)[]): RefTensor[] {
  const y = { dims: [...x!.dims], data: x!.data.slice() };
  return node.outputs.length > 1 ? [y, { dims: [...x!.dims], data: new Float64Array(x!.data.length).fill(1) }] : [y];
}

/**
 * erf to float64 precision: erf(x) = 2/sqrt(pi) e^{-x^2} sum_n 2^n x^{2n+1} / (1*3*...*(2n+1)),
 * a series of positive terms (no cancellation); |erf(x)| rounds to 1 beyond 6.
 */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a >= 6) return Math.sign(x);
  let term = a;
  let sum = a;
  for (let n = 1; n < 500 && term > sum * 1e-17; n++) {
    term *= (2 * a * a) / (2 * n + 1);
    sum += term;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-a * a) * sum;
}

function gelu(v: number, node: Node): number {
  if (attrString(node, 'approximate', 'none') === 'tanh') return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
  return 0.5 * v * (1 + erf(v / Math.SQRT2));
}

const hardSigmoid = (v: number, node: Node): number => Math.min(1, Math.max(0, attrFloat(node, 'alpha', 0.2) * v + attrFloat(node, 'beta', 0.5)));

/** y = x (x > 0), slope x otherwise; the slope broadcasts against x. */
const prelu = (_: Node, [x, slope]: (RefTensor | undefined)[]): RefTensor[] => [mapBinary(x!, slope!, (v, s) => (v > 0 ? v : s * v))];

/** ArgMax / ArgMin along one axis (first occurrence, or last with select_last_index). */
const argExtremum =
  (better: (a: number, b: number) => boolean) =>
  (node: Node, [x]: (RefTensor | undefined)[]): RefTensor[] => {
    const t = x!;
    const axis = normalizeAxis(attrInt(node, 'axis', 0), t.dims.length);
    const last = attrInt(node, 'select_last_index', 0) === 1;
    const n = t.dims[axis]!;
    const stride = strides(t.dims)[axis]!;
    const keptDims = t.dims.map((d, i) => (i === axis ? 1 : d));
    const out = refTensor(keptDims);
    for (let o = 0; o < out.data.length; o++) {
      const inner = o % stride;
      const base = (o - inner) * n + inner;
      let best = 0;
      for (let k = 1; k < n; k++) {
        const v = t.data[base + k * stride]!;
        const w = t.data[base + best * stride]!;
        if (better(v, w) || (last && v === w)) best = k;
      }
      out.data[o] = best;
    }
    return [{ dims: attrInt(node, 'keepdims', 1) ? keptDims : t.dims.filter((_, i) => i !== axis), data: out.data }];
  };

const b = (v: boolean): number => (v ? 1 : 0);

registerRefOp(
  'Identity',
  unary((v) => v),
);
registerRefOp(
  'Neg',
  unary((v) => -v),
);
registerRefOp(
  'Relu',
  unary((v) => Math.max(v, 0)),
);
registerRefOp(
  'LeakyRelu',
  unary((v, n) => (v > 0 ? v : v * attrFloat(n, 'alpha', 0.01))),
);
registerRefOp(
  'Sigmoid',
  unary((v) => 1 / (1 + Math.exp(-v))),
);
registerRefOp('Tanh', unary(Math.tanh));
registerRefOp('Sqrt', unary(Math.sqrt));
registerRefOp('Exp', unary(Math.exp));
registerRefOp('Log', unary(Math.log));
registerRefOp('Abs', unary(Math.abs));
registerRefOp('Sign', unary(Math.sign));
registerRefOp(
  'Reciprocal',
  unary((v) => 1 / v),
);
registerRefOp('Erf', unary(erf));
registerRefOp('Gelu', unary(gelu));
registerRefOp('HardSigmoid', unary(hardSigmoid));
registerRefOp(
  'HardSwish',
  unary((v) => v * Math.min(1, Math.max(0, v / 6 + 0.5))),
);
registerRefOp(
  'Softplus',
  unary((v) => (v > 30 ? v : Math.log1p(Math.exp(v)))),
);
registerRefOp(
  'Elu',
  unary((v, n) => (v > 0 ? v : attrFloat(n, 'alpha', 1) * Math.expm1(v))),
);
registerRefOp('PRelu', prelu);
registerRefOp('Floor', unary(Math.floor));
registerRefOp('Ceil', unary(Math.ceil));
registerRefOp(
  'Not',
  unary((v) => b(v === 0)),
);
registerRefOp('Cast', cast);
registerRefOp('Clip', clip);
registerRefOp('Dropout', dropout);
registerRefOp(
  'Add',
  binary((x, y) => x + y),
);
registerRefOp(
  'Sub',
  binary((x, y) => x - y),
);
registerRefOp(
  'Mul',
  binary((x, y) => x * y),
);
registerRefOp(
  'Div',
  binary((x, y) => x / y),
);
registerRefOp(
  'Pow',
  binary((x, y) => x ** y),
);
registerRefOp(
  'Greater',
  binary((x, y) => b(x > y)),
);
registerRefOp(
  'Less',
  binary((x, y) => b(x < y)),
);
registerRefOp(
  'GreaterOrEqual',
  binary((x, y) => b(x >= y)),
);
registerRefOp(
  'LessOrEqual',
  binary((x, y) => b(x <= y)),
);
registerRefOp(
  'Equal',
  binary((x, y) => b(x === y)),
);
registerRefOp(
  'And',
  binary((x, y) => b(x !== 0 && y !== 0)),
);
registerRefOp(
  'Or',
  binary((x, y) => b(x !== 0 || y !== 0)),
);
registerRefOp('Where', (_, [c, x, y]) => [mapBroadcast([c!, x!, y!], ([k, u, v]) => (k !== 0 ? u! : v!))]);
registerRefOp(
  'Sum',
  variadic((v) => v.reduce((s, x) => s + x, 0)),
);
registerRefOp(
  'Mean',
  variadic((v) => v.reduce((s, x) => s + x, 0) / v.length),
);
registerRefOp(
  'Max',
  variadic((v) => Math.max(...v)),
);
registerRefOp(
  'Min',
  variadic((v) => Math.min(...v)),
);
registerRefOp(
  'ReduceSum',
  reduction(0, (a, v) => a + v),
);
registerRefOp(
  'ReduceMean',
  reduction(
    0,
    (a, v) => a + v,
    (a, n) => a / n,
  ),
);
registerRefOp('ReduceMax', reduction(-Infinity, Math.max));
registerRefOp('ReduceMin', reduction(Infinity, Math.min));
registerRefOp(
  'ReduceSumSquare',
  reduction(0, (a, v) => a + v * v),
);
registerRefOp(
  'ReduceL2',
  reduction(
    0,
    (a, v) => a + v * v,
    (a) => Math.sqrt(a),
  ),
);
registerRefOp(
  'ArgMax',
  argExtremum((a, c) => a > c),
);
registerRefOp(
  'ArgMin',
  argExtremum((a, c) => a < c),
);
registerRefOp('Softmax', softmax(false));
registerRefOp('LogSoftmax', softmax(true));
