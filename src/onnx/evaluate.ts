/**
 * A tiny interpreter for small constant tensors: enough operators to compute the shape
 * arithmetic that exporters leave in graphs (PyTorch's Shape/Gather/Concat chains) and
 * cheap constant expressions. Values go through JS numbers, so it only runs on tensors
 * up to MAX_FOLD_ELEMENTS; anything larger is left for ONNX Runtime.
 */
import type { DType, Node, Tensor } from './types.js';
import { allocate, floatToHalf, numel, toNumbers } from './tensor.js';
import { attrInt, attrInts, attrTensor } from './graph.js';
import { floorMod, normAxis, sliceRange } from './dims.js';
import { dtypeFromCode } from './proto.js';

/** Largest tensor (in elements) that constant folding computes or reads in TypeScript. */
export const MAX_FOLD_ELEMENTS = 4096;

const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

/** Builds a tensor from JS numbers, with the dtype's own rounding (int64 sentinels saturate instead of wrapping). */
export function fromNumbers(dtype: DType, dims: number[], values: readonly number[]): Tensor {
  const data = allocate(dtype, values.length);
  if (data instanceof BigInt64Array) {
    values.forEach((v, i) => {
      const b = Number.isFinite(v) ? BigInt(Math.trunc(v)) : v > 0 ? INT64_MAX : INT64_MIN;
      data[i] = b > INT64_MAX ? INT64_MAX : b < INT64_MIN ? INT64_MIN : b;
    });
  } else if (dtype === 'float16') {
    values.forEach((v, i) => (data[i] = floatToHalf(v)));
  } else if (dtype === 'bool') {
    values.forEach((v, i) => (data[i] = v ? 1 : 0));
  } else if (dtype.startsWith('int') || dtype === 'uint8') {
    values.forEach((v, i) => (data[i] = Math.trunc(v)));
  } else if (dtype === 'bfloat16') {
    return { dtype, dims, data: Uint16Array.from(values, (v) => new Uint32Array(Float32Array.of(v).buffer)[0]! >>> 16) };
  } else {
    (data as Float64Array).set(values);
  }
  return { dtype, dims: [...dims], data };
}

const isInt = (d: DType): boolean => d.startsWith('int') || d === 'uint8';

function strides(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length);
  let k = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    s[i] = k;
    k *= dims[i]!;
  }
  return s;
}

/** out[i] = in[map(multi-index of i)] for every element of an output of shape `dims`. */
function remap(dims: readonly number[], source: readonly number[], map: (idx: number[]) => number): number[] {
  const n = numel(dims);
  const out = new Array<number>(n);
  const idx = new Array<number>(dims.length).fill(0);
  for (let i = 0; i < n; i++) {
    out[i] = source[map(idx)]!;
    for (let a = dims.length - 1; a >= 0; a--) {
      if (++idx[a]! < dims[a]!) break;
      idx[a] = 0;
    }
  }
  return out;
}

/** Strides of `dims` seen from an output of rank `rank`, 0 on broadcast axes. */
function broadcastStrides(dims: readonly number[], rank: number): number[] {
  const own = strides(dims);
  return Array.from({ length: rank }, (_, i) => {
    const k = i - (rank - dims.length);
    return k < 0 || dims[k] === 1 ? 0 : own[k]!;
  });
}

function broadcastValues(t: Tensor, outDims: readonly number[]): number[] {
  const s = broadcastStrides(t.dims, outDims.length);
  return remap(outDims, toNumbers(t), (idx) => idx.reduce((acc, v, i) => acc + v * s[i]!, 0));
}

type Elementwise = (xs: number[], intMath: boolean, node: Node) => number;

const ELEMENTWISE: Record<string, Elementwise> = {
  Add: ([a, b]) => a! + b!,
  Sub: ([a, b]) => a! - b!,
  Mul: ([a, b]) => a! * b!,
  Div: ([a, b], int) => (int ? Math.trunc(a! / b!) : a! / b!),
  // ONNX Mod: fmod=0 (integers) takes the divisor's sign, like Python's %; fmod=1 the dividend's, like C's fmod.
  Mod: ([a, b], _, node) => (attrInt(node, 'fmod', 0) === 1 ? a! % b! : floorMod(a!, b!)),
  Pow: ([a, b]) => a! ** b!,
  Max: (xs) => Math.max(...xs),
  Min: (xs) => Math.min(...xs),
  Sum: (xs) => xs.reduce((p, q) => p + q, 0),
  Equal: ([a, b]) => Number(a === b),
  Greater: ([a, b]) => Number(a! > b!),
  Less: ([a, b]) => Number(a! < b!),
  GreaterOrEqual: ([a, b]) => Number(a! >= b!),
  LessOrEqual: ([a, b]) => Number(a! <= b!),
  And: ([a, b]) => Number(!!a && !!b),
  Or: ([a, b]) => Number(!!a || !!b),
  Not: ([a]) => Number(!a),
  Where: ([c, a, b]) => (c ? a! : b!),
  Neg: ([a]) => -a!,
  Abs: ([a]) => Math.abs(a!),
  Sqrt: ([a]) => Math.sqrt(a!),
  Floor: ([a]) => Math.floor(a!),
  Ceil: ([a]) => Math.ceil(a!),
  Relu: ([a]) => Math.max(a!, 0),
  Reciprocal: ([a]) => 1 / a!,
};

function elementwise(node: Node, inputs: Tensor[], out: Tensor['dims'], dtype: DType): Tensor {
  const op = node.opType;
  const f = ELEMENTWISE[op]!;
  const cols = inputs.map((t) => broadcastValues(t, out));
  const intMath = isInt(inputs[inputs.length - 1]!.dtype);
  const values = Array.from({ length: numel(out) }, (_, i) =>
    f(
      cols.map((c) => c[i]!),
      intMath,
      node,
    ),
  );
  return fromNumbers(dtype, out, values);
}

/** Ops whose output holds the input's elements in the same order; only the dims change. */
const SAME_ORDER = new Set(['Identity', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze']);

/**
 * Evaluates `node` on constant inputs. `outDims`/`outDtypes` come from shape inference.
 * Returns undefined for an operator (or a form of one) it does not interpret.
 */
export function evaluate(node: Node, inputs: (Tensor | undefined)[], outDims: number[][], outDtypes: DType[]): Tensor[] | undefined {
  const op = node.opType;
  const x = inputs[0];
  const dims = outDims[0]!;
  const dtype = outDtypes[0]!;
  if (node.outputs.length !== 1) return undefined;
  if (ELEMENTWISE[op])
    return [
      elementwise(
        node,
        inputs.filter((t): t is Tensor => !!t),
        dims,
        dtype,
      ),
    ];
  if (SAME_ORDER.has(op)) return [{ dtype, dims: [...dims], data: x!.data }];
  switch (op) {
    case 'Cast':
      return [fromNumbers(dtype, dims, toNumbers(x!))];
    case 'Expand':
      return [fromNumbers(dtype, dims, broadcastValues(x!, dims))];
    case 'Concat':
      return [concat(node, inputs as Tensor[], dims, dtype)];
    case 'Gather':
      return [gather(node, x!, inputs[1]!, dims)];
    case 'Slice':
      return slice(node, inputs, dims);
    case 'Transpose':
      return [transpose(node, x!, dims)];
    case 'ConstantOfShape':
      return [constantOfShape(node, dims)];
    case 'Range':
      return [range(inputs as Tensor[], dims, dtype)];
    case 'ScatterND':
      return scatterND(node, inputs, dims);
    default:
      return undefined;
  }
}

function concat(node: Node, inputs: Tensor[], dims: number[], dtype: DType): Tensor {
  const axis = normAxis(attrInt(node, 'axis', 0), dims.length, `node "${node.name}"`);
  const outer = numel(dims.slice(0, axis));
  const values: number[] = [];
  const parts = inputs.map((t) => ({ v: toNumbers(t), block: numel(t.dims.slice(axis)) }));
  for (let o = 0; o < outer; o++) for (const p of parts) values.push(...p.v.slice(o * p.block, (o + 1) * p.block));
  return fromNumbers(dtype, dims, values);
}

function gather(node: Node, data: Tensor, indices: Tensor, dims: number[]): Tensor {
  const axis = normAxis(attrInt(node, 'axis', 0), data.dims.length, `node "${node.name}"`);
  const size = data.dims[axis]!;
  const outer = numel(data.dims.slice(0, axis));
  const inner = numel(data.dims.slice(axis + 1));
  const src = toNumbers(data);
  const idx = toNumbers(indices).map((i) => (i < 0 ? i + size : i));
  const values: number[] = [];
  for (let o = 0; o < outer; o++) {
    for (const i of idx) values.push(...src.slice((o * size + i) * inner, (o * size + i + 1) * inner));
  }
  return fromNumbers(data.dtype, dims, values);
}

function slice(node: Node, inputs: (Tensor | undefined)[], dims: number[]): Tensor[] | undefined {
  const x = inputs[0]!;
  const num = (i: number): number[] | undefined => (inputs[i] ? toNumbers(inputs[i]!) : undefined);
  const starts = num(1) ?? attrInts(node, 'starts');
  const ends = num(2) ?? attrInts(node, 'ends');
  if (!starts || !ends) return undefined;
  const rank = x.dims.length;
  const axes = (num(3) ?? attrInts(node, 'axes') ?? starts.map((_, i) => i)).map((a) => normAxis(a, rank, `node "${node.name}"`));
  const steps = num(4) ?? starts.map(() => 1);
  const first = new Array<number>(rank).fill(0);
  const step = new Array<number>(rank).fill(1);
  axes.forEach((a, k) => {
    first[a] = sliceRange(x.dims[a]!, starts[k]!, ends[k]!, steps[k]!).start;
    step[a] = steps[k]!;
  });
  const s = strides(x.dims);
  const values = remap(dims, toNumbers(x), (idx) => idx.reduce((acc, v, i) => acc + (first[i]! + v * step[i]!) * s[i]!, 0));
  return [fromNumbers(x.dtype, dims, values)];
}

/** ScatterND without reduction: a copy of the data with the slices the indices name replaced by the updates. */
function scatterND(node: Node, [data, indices, updates]: (Tensor | undefined)[], dims: number[]): Tensor[] | undefined {
  const reduction = node.attributes['reduction'];
  if (!data || !indices || !updates || (reduction?.kind === 'string' && reduction.value !== 'none')) return undefined;
  const k = indices.dims[indices.dims.length - 1]!;
  const slice = numel(data.dims.slice(k));
  const s = strides(data.dims.slice(0, k)).map((v) => v * slice);
  const values = toNumbers(data);
  const idx = toNumbers(indices);
  const upd = toNumbers(updates);
  for (let u = 0; u * k < idx.length; u++) {
    let at = 0;
    for (let j = 0; j < k; j++) {
      const size = data.dims[j]!;
      const i = idx[u * k + j]!;
      if (i < -size || i >= size) return undefined;
      at += (i < 0 ? i + size : i) * s[j]!;
    }
    for (let e = 0; e < slice; e++) values[at + e] = upd[u * slice + e]!;
  }
  return [fromNumbers(data.dtype, dims, values)];
}

function transpose(node: Node, x: Tensor, dims: number[]): Tensor {
  const rank = x.dims.length;
  const perm = attrInts(node, 'perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
  const s = strides(x.dims);
  const values = remap(dims, toNumbers(x), (idx) => idx.reduce((acc, v, i) => acc + v * s[perm[i]!]!, 0));
  return fromNumbers(x.dtype, dims, values);
}

function constantOfShape(node: Node, dims: number[]): Tensor {
  const value = attrTensor(node, 'value');
  const fill = value ? (toNumbers(value)[0] ?? 0) : 0;
  return fromNumbers(value?.dtype ?? 'float32', dims, new Array<number>(numel(dims)).fill(fill));
}

function range([start, , delta]: Tensor[], dims: number[], dtype: DType): Tensor {
  const s = toNumbers(start!)[0]!;
  const d = toNumbers(delta!)[0]!;
  return fromNumbers(
    dtype,
    dims,
    Array.from({ length: dims[0]! }, (_, i) => s + i * d),
  );
}

/** The dtype a Cast node produces. */
export function castTarget(node: Node): DType {
  return dtypeFromCode(attrInt(node, 'to', 0), `node "${node.name}" (Cast) attribute to`);
}
