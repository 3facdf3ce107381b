import { readFileSync } from 'node:fs';
import { fixture } from './paths.js';
import { float32 } from '../../src/onnx/tensor.js';
import type { Tensor } from '../../src/onnx/types.js';

/** A fixed input batch and the logits PyTorch computed for it (fixtures/torch/<name>.io.json). */
export interface IoFixture {
  input: Float32Array;
  inputShape: number[];
  logits: Float32Array;
  logitsShape: number[];
}

interface IoFile {
  input_shape: number[];
  input: string;
  logits: string;
  logits_shape: number[];
}

/** Decodes base64 of little-endian float32 bytes, checking the count against the shape. */
function decodeFloat32(b64: string, shape: number[], what: string): Float32Array {
  const bytes = Buffer.from(b64, 'base64');
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.length !== count * 4) {
    throw new Error(`${what}: ${bytes.length} bytes, expected ${count * 4} for shape [${shape.join(',')}]`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/** Reads fixtures/<dir>/<name>.io.json, written by tools/torch/make_fixtures.py (torch) or make_tv_fixtures.py (torchvision). */
export function readIoFixture(name: string, dir: 'torch' | 'torchvision' = 'torch'): IoFixture {
  const path = fixture(dir, `${name}.io.json`);
  const raw = JSON.parse(readFileSync(path, 'utf8')) as IoFile;
  return {
    input: decodeFloat32(raw.input, raw.input_shape, `${path} input`),
    inputShape: raw.input_shape,
    logits: decodeFloat32(raw.logits, raw.logits_shape, `${path} logits`),
    logitsShape: raw.logits_shape,
  };
}

/** A torchvision fixture's input batch, as a tensor to feed, and PyTorch's logits for it (fixtures/torchvision/tv_<name>.io.json). */
export function tvIo(name: string): { input: Tensor; logits: Float32Array } {
  const io = readIoFixture(`tv_${name}`, 'torchvision');
  return { input: float32(io.inputShape, io.input), logits: io.logits };
}
