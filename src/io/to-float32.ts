/**
 * Conversions of raw tensor storage to float32, fast enough for reading whole
 * checkpoints layer by layer (lineage recovery reads every layer of many models).
 */
import type { Tensor } from '../onnx/types.js';
import { halfToFloat } from '../onnx/tensor.js';

let halfTable: Float32Array | undefined;

/** IEEE half -> float32 through a 65,536-entry table (256 KiB, built on first use). */
export function halfToFloat32(words: Uint16Array): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  const table = halfTable;
  const out = new Float32Array(words.length);
  for (let i = 0; i < words.length; i++) out[i] = table[words[i]!]!;
  return out;
}

/** bfloat16 is the top half of a float32: shift the bits into place, no arithmetic. */
export function bfloat16ToFloat32(words: Uint16Array): Float32Array {
  const out = new Float32Array(words.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < words.length; i++) bits[i] = words[i]! << 16;
  return out;
}

/** Any tensor's values as a Float32Array (float32 data is returned as is, not copied). */
export function tensorToFloat32(t: Tensor): Float32Array {
  switch (t.dtype) {
    case 'float32':
      return t.data as Float32Array;
    case 'float16':
      return halfToFloat32(t.data as Uint16Array);
    case 'bfloat16':
      return bfloat16ToFloat32(t.data as Uint16Array);
    case 'int64':
      return Float32Array.from(t.data as BigInt64Array, (v) => Number(v));
    default:
      return Float32Array.from(t.data as ArrayLike<number>);
  }
}
