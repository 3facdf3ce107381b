import type { DType, Tensor, TensorData } from './types.js';
import { UserError } from '../util/errors.js';

/** The typed array each dtype is stored in (half precision as its raw 16-bit words, bool as bytes). */
const ARRAY_OF: Record<DType, { new (n: number): TensorData; readonly BYTES_PER_ELEMENT: number }> = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int16: Int16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

export const BYTES_PER_ELEMENT = Object.fromEntries(Object.entries(ARRAY_OF).map(([d, a]) => [d, a.BYTES_PER_ELEMENT])) as Record<DType, number>;

export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

export function allocate(dtype: DType, n: number): TensorData {
  return new ARRAY_OF[dtype](n);
}

export function tensor(dtype: DType, dims: number[], data?: TensorData | ArrayLike<number>): Tensor {
  const n = numel(dims);
  let out: TensorData;
  if (data === undefined) out = allocate(dtype, n);
  else if (dtype === 'int64' && !(data instanceof BigInt64Array)) {
    out = BigInt64Array.from(Array.from(data as ArrayLike<number>, (v) => BigInt(Math.trunc(v))));
  } else if (ArrayBuffer.isView(data) && data.constructor === ARRAY_OF[dtype]) {
    out = data as TensorData;
  } else {
    out = allocate(dtype, n);
    (out as Float32Array).set(data as ArrayLike<number>);
  }
  if (out.length !== n) throw new UserError(`tensor of shape [${dims.join(',')}] needs ${n} values, got ${out.length}`);
  return { dtype, dims: [...dims], data: out };
}

export const float32 = (dims: number[], data?: ArrayLike<number>): Tensor => tensor('float32', dims, data);
export const int64 = (dims: number[], data?: ArrayLike<number>): Tensor => tensor('int64', dims, data);
export const scalarInt64 = (v: number): Tensor => tensor('int64', [], [v]);

/** Values as JS numbers (int64 converted; float16 decoded). For shape arithmetic and small tensors. */
export function toNumbers(t: Tensor): number[] {
  if (t.dtype === 'float16') return Array.from(t.data as Uint16Array, halfToFloat);
  if (t.dtype === 'bfloat16') return Array.from(t.data as Uint16Array, bfloat16ToFloat);
  if (t.data instanceof BigInt64Array) return Array.from(t.data, (v) => Number(v));
  return Array.from(t.data as ArrayLike<number>);
}

/** Values as float32, decoding half precision; used to read weights of any float dtype. */
export function toFloat32(t: Tensor): Float32Array {
  if (t.data instanceof Float32Array) return t.data;
  return Float32Array.from(toNumbers(t));
}

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bfloat16ToFloat(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

/** float -> IEEE half, round to nearest even. */
export function floatToHalf(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = sign | (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return half;
}

export function cloneTensor(t: Tensor): Tensor {
  return { dtype: t.dtype, dims: [...t.dims], data: t.data.slice() as TensorData };
}

export function formatDims(dims: readonly (number | string | null)[] | undefined): string {
  if (!dims) return '?';
  return `[${dims.map((d) => (d === null ? '?' : String(d))).join('x')}]`;
}
