/**
 * Robustness copies of a zoo (the paper's pruning and quantisation checks): every model
 * transformed after fine-tuning, written as a separate zoo folder with the same truth.
 *
 * - fp16: every floating-point tensor stored as F16 (round to nearest even).
 * - int8: every weight matrix/kernel (rank >= 2) quantised symmetric per tensor,
 *   scale = max|w| / 127, q = round(w / scale) in [-127, 127], and stored dequantised
 *   (q * scale) as F32 so any safetensors reader takes it; biases stay F32 as in common
 *   int8 schemes. At most 255 distinct values per tensor, error <= scale / 2.
 * - pruned: L1 unstructured pruning of every weight matrix/kernel: the floor(f * n)
 *   entries of smallest |w| set to zero (ties by position), the rest unchanged.
 *
 * @example
 *   makeZooVariant('runs/zoo/ft-s2', 'runs/zoo/ft-s2-int8', 'int8');
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Tensor } from '../../onnx/types.js';
import { floatToHalf } from '../../onnx/tensor.js';
import { openSafetensors, writeSafetensors } from '../../io/safetensors.js';
import { tensorToFloat32 } from '../../io/to-float32.js';
import { writeJsonAtomic } from '../../util/atomic.js';
import { UserError } from '../../util/errors.js';
import { info } from '../../util/progress.js';
import { checkPruneFraction, type VariantKind } from './options.js';

export interface VariantOptions {
  /** pruned: fraction of each weight tensor zeroed (default 0.2) */
  fraction?: number;
}

export interface VariantResult {
  dir: string;
  kind: VariantKind;
  models: number;
}

export function makeZooVariant(from: string, to: string, kind: VariantKind, opts: VariantOptions = {}): VariantResult {
  const fraction = checkPruneFraction(opts.fraction ?? 0.2);
  const truthFile = join(from, 'truth.json');
  if (!existsSync(truthFile)) throw new UserError(`${from} has no truth.json: not a finished lineage zoo`);
  const files = readdirSync(from)
    .filter((f) => f.endsWith('.safetensors'))
    .sort();
  if (!files.length) throw new UserError(`${from} holds no .safetensors models`);
  for (const file of files) {
    const src = openSafetensors(join(from, file));
    try {
      const tensors: [string, Tensor][] = src.tensors.map((t) => [t.name, transform(src.readTensor(t.name), kind, fraction)]);
      const meta: Record<string, string> = {
        ...src.metadata,
        'modelsmith.variant': JSON.stringify({ kind, ...(kind === 'pruned' ? { fraction } : {}), from: basename(from) }),
      };
      writeSafetensors(join(to, file), tensors, meta);
    } finally {
      src.close();
    }
  }
  writeJsonAtomic(join(to, 'truth.json'), JSON.parse(readFileSync(truthFile, 'utf8')));
  const zooFile = join(from, 'zoo.json');
  if (existsSync(zooFile)) {
    const zoo = JSON.parse(readFileSync(zooFile, 'utf8')) as Record<string, unknown>;
    writeJsonAtomic(join(to, 'zoo.json'), { ...zoo, variant: { kind, ...(kind === 'pruned' ? { fraction } : {}), from } });
  }
  info(`${kind} copy of ${from}: ${files.length} models in ${to}`);
  return { dir: to, kind, models: files.length };
}

function transform(t: Tensor, kind: VariantKind, fraction: number): Tensor {
  const isFloat = t.dtype === 'float32' || t.dtype === 'float64' || t.dtype === 'float16' || t.dtype === 'bfloat16';
  if (!isFloat) return t;
  const v = tensorToFloat32(t);
  if (kind === 'fp16') return { dtype: 'float16', dims: [...t.dims], data: toHalf(v) };
  if (t.dims.length < 2) return t;
  return { dtype: 'float32', dims: [...t.dims], data: kind === 'int8' ? quantizeInt8(v).values : pruneL1(v, fraction) };
}

function toHalf(v: Float32Array): Uint16Array {
  const out = new Uint16Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = floatToHalf(v[i]!);
  return out;
}

/** Symmetric per-tensor int8 quantisation, returned dequantised, with its scale. */
export function quantizeInt8(v: Float32Array): { values: Float32Array; scale: number } {
  let max = 0;
  for (let i = 0; i < v.length; i++) max = Math.max(max, Math.abs(v[i]!));
  const scale = max / 127;
  if (scale === 0) return { values: Float32Array.from(v), scale };
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = Math.max(-127, Math.min(127, Math.round(v[i]! / scale))) * scale;
  return { values: out, scale };
}

/** L1 unstructured pruning: zero the floor(fraction * n) smallest-magnitude entries. */
export function pruneL1(v: Float32Array, fraction: number): Float32Array {
  const k = Math.floor(fraction * v.length);
  const order = Uint32Array.from({ length: v.length }, (_, i) => i);
  order.sort((a, b) => Math.abs(v[a]!) - Math.abs(v[b]!) || a - b);
  const out = Float32Array.from(v);
  for (let i = 0; i < k; i++) out[order[i]!] = 0;
  return out;
}
