import { readFileSync } from 'node:fs';
import { fixture } from './paths.js';

/** A tensor of a gradient fixture, decoded to float64. */
export interface GradTensor {
  shape: number[];
  data: Float64Array;
}

export type GradMode = 'train' | 'eval';

/** What PyTorch computed for one mode, in float64. */
export interface GradModeResult {
  loss: number;
  /** [batch, classes], row-major */
  logits: Float64Array;
  /** loss gradient per trainable parameter, keyed by ONNX initializer name */
  grads: Map<string, GradTensor>;
  inputGrad: GradTensor;
  /** running mean/variance after the step, keyed by ONNX initializer name; empty for 'eval' */
  running: Map<string, GradTensor>;
  /** the same step in float32: a measure of how precise the float64 reference needs to be matched */
  float32: { loss: number; logits: Float32Array; maxGradRelErr: number };
}

/** A PyTorch gradient reference (fixtures/torch/<name>.grad.json). */
export interface GradFixture {
  /** path of the ONNX model the gradients belong to */
  modelFile: string;
  input: Float32Array;
  inputShape: number[];
  labels: number[];
  modes: Record<GradMode, GradModeResult>;
}

interface TensorFile {
  shape: number[];
  data: string;
}

interface ModeFile {
  loss: number;
  logits: string;
  grads: Record<string, TensorFile>;
  input_grad: TensorFile;
  running: Record<string, TensorFile>;
  float32: { loss: number; logits: string; max_grad_rel_err: number };
}

interface GradFile {
  model: string;
  input_shape: number[];
  input: string;
  labels: number[];
  logits_shape: number[];
  modes: Record<GradMode, ModeFile>;
}

/** The bytes of base64 little-endian floats, checking the count against the shape. */
function floatBytes(b64: string, shape: number[], width: 4 | 8, what: string): { view: DataView; count: number } {
  const bytes = Buffer.from(b64, 'base64');
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.length !== count * width) {
    throw new Error(`${what}: ${bytes.length} bytes, expected ${count * width} for shape [${shape.join(',')}]`);
  }
  return { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), count };
}

function decode64(b64: string, shape: number[], what: string): Float64Array {
  const { view, count } = floatBytes(b64, shape, 8, what);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = view.getFloat64(i * 8, true);
  return out;
}

function decode32(b64: string, shape: number[], what: string): Float32Array {
  const { view, count } = floatBytes(b64, shape, 4, what);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

function decodeTensor(t: TensorFile, what: string): GradTensor {
  return { shape: t.shape, data: decode64(t.data, t.shape, what) };
}

function decodeTensors(tensors: Record<string, TensorFile>, what: string): Map<string, GradTensor> {
  return new Map(Object.entries(tensors).map(([name, t]) => [name, decodeTensor(t, `${what} ${name}`)]));
}

function decodeMode(m: ModeFile, logitsShape: number[], what: string): GradModeResult {
  return {
    loss: m.loss,
    logits: decode64(m.logits, logitsShape, `${what} logits`),
    grads: decodeTensors(m.grads, `${what} grads`),
    inputGrad: decodeTensor(m.input_grad, `${what} input_grad`),
    running: decodeTensors(m.running, `${what} running`),
    float32: {
      loss: m.float32.loss,
      logits: decode32(m.float32.logits, logitsShape, `${what} float32 logits`),
      maxGradRelErr: m.float32.max_grad_rel_err,
    },
  };
}

/** Reads fixtures/torch/<name>.grad.json, written by tools/torch/make_grad_fixtures.py. */
export function readGradFixture(name: string): GradFixture {
  const path = fixture('torch', `${name}.grad.json`);
  const raw = JSON.parse(readFileSync(path, 'utf8')) as GradFile;
  return {
    modelFile: fixture('torch', raw.model),
    input: decode32(raw.input, raw.input_shape, `${path} input`),
    inputShape: raw.input_shape,
    labels: raw.labels,
    modes: {
      train: decodeMode(raw.modes.train, raw.logits_shape, `${path} train`),
      eval: decodeMode(raw.modes.eval, raw.logits_shape, `${path} eval`),
    },
  };
}
