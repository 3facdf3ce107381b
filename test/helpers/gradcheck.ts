/**
 * Finite-difference gradient checking. The analytic gradients come from the training
 * graph run in ONNX Runtime (float32); the numeric ones from central differences of
 * the same graph's loss evaluated by the float64 reference interpreter (only the
 * forward part and the loss are evaluated: the loss does not depend on the backward
 * nodes). BatchNorm mode and Dropout masks are therefore the same on both sides.
 */
import assert from 'node:assert/strict';
import type { Attribute, Model, Tensor } from '../../src/onnx/types.js';
import type { Loss, TrainingGraph } from '../../src/autodiff/types.js';
import { buildTrainingGraph } from '../../src/autodiff/training-graph.js';
import { float32, int64, numel } from '../../src/onnx/tensor.js';
import { Rng } from '../../src/util/random.js';
import { buildModel, node, runOrt, vi } from './graphs.js';
import { runReference, toRef, type RefTensor } from './reference/index.js';

export interface GradCheckOptions {
  /** the forward model (inference form) */
  model: Model;
  /** initializers to train (their gradients are checked) */
  trainable: readonly string[];
  /** graph inputs or intermediate tensors whose gradients are checked too */
  inputGradients?: readonly string[];
  /** default 'mse' (its gradient reaches every logit) */
  loss?: Loss;
  /** default 'train' */
  batchNorm?: 'train' | 'eval';
  /** Dropout active with seeded masks; default false */
  dropout?: boolean;
  /** default: the input's batch size when fixed, else 2 */
  batchSize?: number;
  /** the input batch; default seeded standard normal */
  input?: Float32Array;
  /** the tensors to compare (parameters or inputGradients); default all of them */
  check?: readonly string[];
  /** coordinates checked per tensor: all of them when the tensor is no larger, else a seeded sample; default 24 */
  coordinates?: number;
  seed?: number;
  /**
   * pass when |analytic - numeric| <= rtol*|numeric| + atol*max|analytic of that tensor| + floor;
   * defaults 1e-3, 1e-4, 1e-6 (the floor covers float32 round-off in gradients that are
   * exactly zero, e.g. a convolution bias followed by training-mode BatchNorm)
   */
  rtol?: number;
  atol?: number;
  floor?: number;
}

export interface Mismatch {
  tensor: string;
  index: number[];
  analytic: number;
  numeric: number;
}

export interface GradCheckReport {
  /** coordinates compared */
  checked: number;
  /** largest |analytic - numeric| / tolerance seen (< 1 means passed) */
  worst: number;
  /** per checked tensor: the largest |numeric gradient| among its checked coordinates */
  largest: Record<string, number>;
  trainingGraph: TrainingGraph;
}

/**
 * Compares analytic and numeric gradients; rejects with an AssertionError naming each
 * mismatching tensor and coordinate.
 *
 * @example await checkGradients({ model, trainable: ['fc.weight'], inputGradients: ['input'], loss: 'cross-entropy' });
 */
export async function checkGradients(o: GradCheckOptions): Promise<GradCheckReport> {
  const rng = new Rng(o.seed ?? 7);
  const tg = buildTrainingGraph({
    model: o.model,
    trainable: o.trainable,
    loss: o.loss ?? 'mse',
    batchSize: o.batchSize ?? defaultBatch(o.model),
    batchNorm: o.batchNorm ?? 'train',
    dropout: o.dropout ?? false,
    inputGradients: o.inputGradients ?? [],
  });
  const feeds = makeFeeds(tg, o, rng);
  const analytic = await runOrt(tg.model, feeds);
  const refFeeds: Record<string, RefTensor> = {};
  for (const [k, t] of Object.entries(feeds)) refFeeds[k] = toRef(t.dims, t.data as Float32Array);
  const targets = [...Object.entries(tg.gradients), ...Object.entries(tg.inputGradients)].filter(([t]) => !o.check || o.check.includes(t));
  const mismatches: Mismatch[] = [];
  let checked = 0;
  let worst = 0;
  const largest: Record<string, number> = {};
  for (const [tensor, gradName] of targets) {
    largest[tensor] = 0;
    const grad = analytic[gradName]!.data as Float32Array;
    const base = refFeeds[tensor] ?? runReference(tg.model, refFeeds, [tensor])[tensor]!;
    const scale = grad.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    for (const i of sample(grad.length, o.coordinates ?? 24, rng)) {
      const numeric = centralDifference(tg, refFeeds, tensor, base, i);
      largest[tensor] = Math.max(largest[tensor]!, Math.abs(numeric));
      const tolerance = (o.rtol ?? 1e-3) * Math.abs(numeric) + (o.atol ?? 1e-4) * scale + (o.floor ?? 1e-6);
      const ratio = Math.abs(grad[i]! - numeric) / tolerance;
      worst = Math.max(worst, ratio);
      checked++;
      if (ratio > 1) mismatches.push({ tensor, index: unravel(i, base.dims), analytic: grad[i]!, numeric });
    }
  }
  assert.ok(mismatches.length === 0, describe(mismatches, checked));
  return { checked, worst, largest, trainingGraph: tg };
}

function defaultBatch(model: Model): number {
  const input = model.graph.inputs.find((v) => !model.graph.initializers.has(v.name));
  const first = input?.shape?.[0];
  return typeof first === 'number' ? first : 2;
}

/** Input, target, parameters, running statistics and Dropout masks, all seeded. */
function makeFeeds(tg: TrainingGraph, o: GradCheckOptions, rng: Rng): Record<string, Tensor> {
  const g = tg.model.graph;
  const info = (name: string): number[] => g.inputs.find((v) => v.name === name)!.shape as number[];
  const inputShape = info(tg.feeds.input);
  const feeds: Record<string, Tensor> = {};
  feeds[tg.feeds.input] = float32(inputShape, o.input ?? normal(rng, numel(inputShape)));
  const targetInfo = g.inputs.find((v) => v.name === tg.feeds.target)!;
  const targetShape = targetInfo.shape as number[];
  if (targetInfo.dtype === 'int64') {
    const classes = (g.outputs.find((v) => v.name === tg.logits)!.shape as number[])[1]!;
    feeds[tg.feeds.target] = int64(
      targetShape,
      Array.from({ length: numel(targetShape) }, () => rng.int(classes)),
    );
  } else {
    feeds[tg.feeds.target] = float32(targetShape, normal(rng, numel(targetShape)));
  }
  for (const p of tg.parameters) feeds[p] = o.model.graph.initializers.get(p)!;
  for (const s of tg.state) feeds[s.input] = o.model.graph.initializers.get(s.name)!;
  for (const m of tg.masks) {
    const keep = 1 / (1 - m.ratio);
    feeds[m.input] = float32(
      m.shape,
      Array.from({ length: numel(m.shape) }, () => (rng.next() < m.ratio ? 0 : keep)),
    );
  }
  return feeds;
}

const normal = (rng: Rng, n: number): Float32Array => Float32Array.from({ length: n }, () => rng.normal());

/** Every index when there are at most `count`, else `count` distinct seeded ones. */
function sample(n: number, count: number, rng: Rng): number[] {
  if (n <= count) return Array.from({ length: n }, (_, i) => i);
  const picked = new Set<number>();
  while (picked.size < count) picked.add(rng.int(n));
  return [...picked].sort((a, b) => a - b);
}

/**
 * (L(x + h e_i) - L(x - h e_i)) / 2h in float64. h is small (1e-6 relative) because
 * float64 leaves room for it, and a small step rarely crosses a ReLU or max-pool kink.
 */
function centralDifference(tg: TrainingGraph, feeds: Record<string, RefTensor>, tensor: string, base: RefTensor, i: number): number {
  const h = 1e-6 * Math.max(1, Math.abs(base.data[i]!));
  const at = (delta: number): number => {
    const data = base.data.slice();
    data[i]! += delta;
    return runReference(tg.model, { ...feeds, [tensor]: { dims: base.dims, data } }, [tg.loss])[tg.loss]!.data[0]!;
  };
  return (at(h) - at(-h)) / (2 * h);
}

function unravel(flat: number, dims: readonly number[]): number[] {
  const idx = new Array<number>(dims.length);
  for (let k = dims.length - 1; k >= 0; k--) {
    idx[k] = flat % dims[k]!;
    flat = Math.floor(flat / dims[k]!);
  }
  return idx;
}

function describe(m: Mismatch[], checked: number): string {
  const lines = m.slice(0, 6).map((x) => `  ${x.tensor}[${x.index.join(',')}]: analytic ${x.analytic.toPrecision(6)}, numeric ${x.numeric.toPrecision(6)}`);
  return `${m.length} of ${checked} gradient coordinates differ from finite differences:\n${lines.join('\n')}${m.length > 6 ? '\n  ...' : ''}`;
}

// ---- one operator as a model ----

/** An input of a one-operator model: a trainable parameter of this shape, a constant, or omitted. */
export type OpInput = { shape: number[] } | { constant: Tensor } | null;

export interface OpModelSpec {
  op: string;
  /** the first input is the data input "x" (its shape includes the batch); then the others */
  inputs: [number[], ...OpInput[]];
  attributes?: Record<string, Attribute>;
  /** number of outputs the node has (only the first is the model's output); default 1 */
  outputs?: number;
  seed?: number;
}

/**
 * A model computing one node, its first output being the model's output (the mse loss
 * reads it). Parameters are named p1, p2... (random normal, trainable), constants c1, c2...
 *
 * @example const { model, trainable } = opModel({ op: 'Gemm', inputs: [[3, 4], { shape: [5, 4] }], attributes: { transB: int(1) } });
 */
export function opModel(spec: OpModelSpec): { model: Model; trainable: string[] } {
  const rng = new Rng(spec.seed ?? 11);
  const [xShape, ...rest] = spec.inputs;
  const initializers: Record<string, Tensor> = {};
  const trainable: string[] = [];
  const names = rest.map((input, k) => {
    if (input === null) return '';
    if ('shape' in input) {
      const name = `p${k + 1}`;
      initializers[name] = float32(input.shape, normal(rng, numel(input.shape)));
      trainable.push(name);
      return name;
    }
    initializers[`c${k + 1}`] = input.constant;
    return `c${k + 1}`;
  });
  const outputs = Array.from({ length: spec.outputs ?? 1 }, (_, i) => (i === 0 ? 'y' : `y${i}`));
  const model = buildModel({
    inputs: [vi('x', xShape)],
    outputs: ['y'],
    initializers,
    nodes: [node(spec.op, ['x', ...names], outputs, spec.attributes ?? {}, spec.op.toLowerCase())],
  });
  return { model, trainable };
}

/**
 * Checks the gradients of every parameter and of the data input of a one-operator
 * model, and that each of them is non-zero somewhere (a check of zeros against zeros
 * proves nothing).
 */
export async function checkOp(spec: OpModelSpec, options: Partial<GradCheckOptions> = {}): Promise<GradCheckReport> {
  const { model, trainable } = opModel(spec);
  const report = await checkGradients({ model, trainable, inputGradients: ['x'], ...options });
  for (const [tensor, largest] of Object.entries(report.largest)) {
    assert.ok(largest > 1e-6, `${spec.op}: every checked gradient of ${tensor} is zero; the check would not notice a broken rule`);
  }
  return report;
}
