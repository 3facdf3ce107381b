/**
 * Arithmetic on dimensions that may be symbolic ('N') or unknown (null). Shape inference
 * and folding share it so that both agree on what a symbolic batch turns into.
 */
import type { Dim } from './types.js';
import { UserError } from '../util/errors.js';

export const isNum = (d: Dim | undefined): d is number => typeof d === 'number';

/** Normalises a possibly negative axis against a rank; `where` names the node for errors. */
export function normAxis(axis: number, rank: number, where: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new UserError(`${where}: axis ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return a;
}

/**
 * A product of dims kept as coefficient times a multiset of symbols, so that
 * N*3*4 / 12 = N can be resolved (Reshape with -1 over a symbolic batch).
 */
export interface Monomial {
  coef: number;
  syms: string[];
}

/**
 * A symbolic dim as a monomial. Compound dims are written as their factors joined by
 * '*', symbols sorted and a coefficient other than 1 last ("N*49": Swin's windows of a
 * batch of N images), so equal products are equal strings.
 */
function symbolic(d: string): Monomial {
  const m: Monomial = { coef: 1, syms: [] };
  for (const f of d.split('*')) {
    if (/^\d+$/.test(f)) m.coef *= Number(f);
    else m.syms.push(f);
  }
  return m;
}

/** The product of dims; undefined when any dim is unknown. */
export function monomial(dims: readonly Dim[]): Monomial | undefined {
  const m: Monomial = { coef: 1, syms: [] };
  for (const d of dims) {
    if (d === null) return undefined;
    if (typeof d === 'number') m.coef *= d;
    else {
      const s = symbolic(d);
      m.coef *= s.coef;
      m.syms.push(...s.syms);
    }
  }
  m.syms.sort();
  return m;
}

/** a / b when it is exact; undefined otherwise. */
export function divide(a: Monomial, b: Monomial): Monomial | undefined {
  if (b.coef === 0 || a.coef % b.coef !== 0) return undefined;
  const syms = [...a.syms];
  for (const s of b.syms) {
    const i = syms.indexOf(s);
    if (i < 0) return undefined;
    syms.splice(i, 1);
  }
  return { coef: a.coef / b.coef, syms };
}

/**
 * A monomial as a single dim: a number, a symbol, or a compound symbol ("N*49"); null
 * when it is not a size (a negative or fractional coefficient, or too large to be exact).
 */
export function monomialDim(m: Monomial | undefined): Dim {
  if (!m || !Number.isSafeInteger(m.coef) || m.coef < 0) return null;
  if (m.syms.length === 0 || m.coef === 0) return m.coef;
  const syms = [...m.syms].sort().join('*');
  return m.coef === 1 ? syms : `${syms}*${m.coef}`;
}

/** Product of dims as one dim (e.g. Flatten): [N,1,1] -> N, [2,3] -> 6, [N,3] -> N*3. */
export const productDim = (dims: readonly Dim[]): Dim => monomialDim(monomial(dims));

/**
 * Integer arithmetic on dims as shape tensors carry them (Shape -> Gather -> Mul/Div ->
 * Concat): exact on numbers, and on symbols where the result is still a product of the
 * same symbols (N*4 / 4 = N, N*8 - N*4 = N*4, N*49 mod 7 = 0, since symbols are whole
 * numbers); null where it is not (N / 2). `intDiv` and `mod` follow ONNX Div/Mod on
 * integers (truncation; mod takes the divisor's sign).
 */
export const DIM_ARITHMETIC = {
  add: (a: Dim, b: Dim): Dim =>
    combine(
      a,
      b,
      (x, y) => x + y,
      (x, y) => sumOf(x, y, 1),
    ),
  sub: (a: Dim, b: Dim): Dim =>
    combine(
      a,
      b,
      (x, y) => x - y,
      (x, y) => sumOf(x, y, -1),
    ),
  mul: (a: Dim, b: Dim): Dim =>
    combine(
      a,
      b,
      (x, y) => x * y,
      (x, y) => ({ coef: x.coef * y.coef, syms: [...x.syms, ...y.syms] }),
    ),
  intDiv: (a: Dim, b: Dim): Dim => combine(a, b, (x, y) => (y === 0 ? Number.NaN : Math.trunc(x / y)), divide),
  mod: (a: Dim, b: Dim): Dim =>
    combine(
      a,
      b,
      (x, y) => (y === 0 ? Number.NaN : floorMod(x, y)),
      (x, y) => (y.syms.length === 0 && y.coef !== 0 && x.coef % y.coef === 0 ? { coef: 0, syms: [] } : undefined),
    ),
};

/** ONNX Mod with fmod=0 (integers): the remainder takes the divisor's sign, like Python's %. */
export function floorMod(a: number, b: number): number {
  return a - b * Math.floor(a / b);
}

function combine(a: Dim, b: Dim, num: (x: number, y: number) => number, sym: (x: Monomial, y: Monomial) => Monomial | undefined): Dim {
  if (a === null || b === null) return null;
  if (isNum(a) && isNum(b)) {
    const r = num(a, b);
    return Number.isNaN(r) ? null : r;
  }
  return monomialDim(sym(monomial([a])!, monomial([b])!));
}

/** x + sign * y when both are multiples of the same symbols (or y is 0). */
function sumOf(x: Monomial, y: Monomial, sign: number): Monomial | undefined {
  if (y.coef === 0) return x;
  if (x.coef === 0 && sign > 0) return y;
  // monomial() keeps the symbols sorted
  const same = x.syms.join('*') === y.syms.join('*');
  return same ? { coef: x.coef + sign * y.coef, syms: x.syms } : undefined;
}

/** Sum of dims (Concat axis): numbers add, and so do multiples of the same symbols. */
export function sumDim(dims: readonly Dim[]): Dim {
  return dims.reduce<Dim>((a, b) => DIM_ARITHMETIC.add(a, b), 0);
}

/** Two dims that must be equal: the more specific one, or an error when both are fixed and differ. */
export function unifyDim(a: Dim, b: Dim, onConflict: () => never): Dim {
  if (isNum(a) && isNum(b)) {
    if (a !== b) onConflict();
    return a;
  }
  if (isNum(a)) return a;
  if (isNum(b)) return b;
  return a ?? b;
}

/** numpy broadcasting of two dims */
function broadcastDim(a: Dim, b: Dim, fail: () => never): Dim {
  if (a === 1) return b;
  if (b === 1) return a;
  if (isNum(a) && isNum(b)) return a === b ? a : fail();
  if (isNum(a)) return a;
  if (isNum(b)) return b;
  return a === b ? a : null;
}

/** numpy (multidirectional) broadcasting of shapes, e.g. [N,3,1,5] with [4,1] -> [N,3,4,5]. */
export function broadcastShapes(shapes: readonly (readonly Dim[])[], where: string): Dim[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const k = i - (rank - s.length);
      if (k < 0) continue;
      d = broadcastDim(d, s[k]!, () => {
        throw new UserError(`${where}: shapes ${shapes.map(fmt).join(' and ')} cannot be broadcast together`);
      });
    }
    out.push(d);
  }
  return out;
}

export const fmt = (s: readonly Dim[] | undefined): string => (s ? `[${s.map((d) => (d === null ? '?' : String(d))).join(',')}]` : '[?]');

/** Geometry of one spatial axis of a convolution or pooling window. */
export interface Window {
  kernel: number;
  stride: number;
  dilation: number;
  padBegin: number;
  padEnd: number;
}

/** Output size of a sliding window over `size` (floor or ceil mode, ONNX Runtime's rule for ceil). */
export function windowOutput(size: Dim, w: Window, ceil = false): Dim {
  if (!isNum(size)) return null;
  const span = size + w.padBegin + w.padEnd - w.dilation * (w.kernel - 1) - 1;
  let out = (ceil ? Math.ceil(span / w.stride) : Math.floor(span / w.stride)) + 1;
  // As in PyTorch and ONNX Runtime: a last window that starts inside the end padding is dropped.
  if (ceil && (out - 1) * w.stride >= size + w.padBegin) out--;
  return out;
}

/**
 * Padding chosen by auto_pad SAME_UPPER/SAME_LOWER: output = ceil(size / stride), with
 * the odd extra pad at the end (UPPER) or the beginning (LOWER).
 */
export function samePads(size: number, kernel: number, stride: number, dilation: number, upper: boolean): [number, number] {
  const out = Math.ceil(size / stride);
  const total = Math.max(0, (out - 1) * stride + dilation * (kernel - 1) + 1 - size);
  const small = Math.floor(total / 2);
  return upper ? [small, total - small] : [total - small, small];
}

/** The auto_pad values ONNX defines. */
const AUTO_PADS = new Set(['NOTSET', 'SAME_UPPER', 'SAME_LOWER', 'VALID']);

/** Why an auto_pad value is not valid, or undefined when it is. */
export function autoPadProblem(autoPad: string): string | undefined {
  return AUTO_PADS.has(autoPad) ? undefined : `auto_pad "${autoPad}" is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID`;
}

/**
 * Begin and end pads of one spatial axis with auto_pad resolved: the explicit pads
 * (NOTSET), none (VALID), or SAME_* (which depends on the input size: undefined while it
 * is unknown). auto_pad must have passed autoPadProblem.
 */
export function axisPads(
  autoPad: string,
  size: Dim,
  kernel: number,
  stride: number,
  dilation: number,
  explicit: readonly [number, number],
): [number, number] | undefined {
  if (autoPad === 'VALID') return [0, 0];
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') return isNum(size) ? samePads(size, kernel, stride, dilation, autoPad === 'SAME_UPPER') : undefined;
  return [explicit[0], explicit[1]];
}

/** ONNX's clamping rules for one sliced axis: where the slice starts and how many elements it takes. */
export function sliceRange(size: number, start: number, end: number, step: number): { start: number; count: number } {
  if (step === 0) throw new UserError('Slice step must not be 0');
  let s = start < 0 ? start + size : start;
  let e = end < 0 ? end + size : end;
  if (step > 0) {
    s = Math.min(Math.max(s, 0), size);
    e = Math.min(Math.max(e, 0), size);
  } else {
    s = Math.min(Math.max(s, 0), size - 1);
    e = Math.min(Math.max(e, -1), size - 1);
  }
  return { start: s, count: Math.max(0, Math.ceil((e - s) / step)) };
}
