/**
 * Parameter scaling (Model LEGO, docs/lego-method.md §5). Components cut from different models
 * produce logits of different magnitudes, so an assembled model would favour the
 * component that shouts loudest. Each output j gets r_j = 1 / mean(max logit) over the
 * correctly classified samples of its class (from a split that is not the test split),
 * and row j of the last linear layer (weights and bias) is multiplied by r_j.
 *
 * @example
 *   const train = await openDataset('fashion-mnist', 'train');
 *   const s = await computeScales(component, train, { maxPerClass: 500 });
 *   const scaled = applyScales(component, s.factors);
 */
import type { Model, Node, Tensor } from '../onnx/types.js';
import type { Dataset } from '../data/types.js';
import { cloneModel, producers, attrInt } from '../onnx/graph.js';
import { float32, toFloat32 } from '../onnx/tensor.js';
import { subsetIndices } from '../data/classes.js';
import { inferBatches } from '../runtime/infer.js';
import { mapOutputs } from '../runtime/labels.js';
import { resolveNormalization } from '../runtime/normalization.js';
import type { SessionOptions } from '../runtime/session.js';
import { argmaxRow } from '../runtime/argmax.js';
import { Rng, hashSeed } from '../util/random.js';
import { UserError } from '../util/errors.js';

export interface ScaleOptions {
  /** at most this many images per class (seeded choice); default: all of the split */
  maxPerClass?: number;
  seed?: number;
  batchSize?: number;
  mean?: number[];
  std?: number[];
  session?: SessionOptions;
  /** model file name, for messages */
  file?: string;
  /** progress label; omit for none */
  label?: string;
}

/** An output left unscaled (r = 1), and why. */
export interface Unscaled {
  output: number;
  class: number;
  reason: 'no correctly classified sample' | 'mean max logit is not positive' | 'no images of this class in the data';
}

export interface ScaleResult {
  /** how the factors were found (default 'mean-max', the paper's r_j) */
  method?: ScaleMethod;
  /** r_j per output of the model ('fit': the fitted scale) */
  factors: number[];
  /** 'fit': the fitted shift added to each output's logit */
  shifts?: number[];
  /** correctly classified samples per output the mean was taken over */
  correct: number[];
  /** mean max logit per output (null when it had no correct sample) */
  meanMaxLogit: (number | null)[];
  unscaled: Unscaled[];
  /** which files were used */
  data: string;
}

/** Measures r_j for every output of `model` on `ds` (which must not be a test split). */
export async function computeScales(model: Model, ds: Dataset, opts: ScaleOptions = {}): Promise<ScaleResult> {
  const file = opts.file ?? 'model';
  if (ds.split === 'test') throw new UserError(`${file}: parameter scaling must not look at the test split (${ds.source}); use the train split`);
  const map = mapOutputs(model, ds, file);
  const k = map.classOf.length;
  const classes = [...new Set(Array.from(map.classOf).filter((c) => c >= 0))].sort((a, b) => a - b);
  const indices = pickIndices(ds, classes, opts.maxPerClass, opts.seed ?? 0);
  const norm = resolveNormalization(model, ds.shape[0], { ...(opts.mean ? { mean: opts.mean } : {}), ...(opts.std ? { std: opts.std } : {}) });
  const sums = new Float64Array(k);
  const counts = new Float64Array(k);
  const seen = new Set<number>();
  const outName = model.graph.outputs[0]!.name;
  if (indices.length > 0) {
    for await (const { batch, outputs } of inferBatches(model, ds, {
      ...opts.session,
      normalization: norm.normalization,
      indices,
      file,
      ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
      ...(opts.label ? { label: opts.label } : {}),
    })) {
      const logits = outputs[outName]!.data as Float32Array;
      for (let b = 0; b < batch.size; b++) {
        const y = batch.labels[b]!;
        seen.add(y);
        const j = argmaxRow(logits, b, k);
        if (map.classOf[j] !== y) continue;
        sums[j] += logits[b * k + j]!;
        counts[j]! += 1;
      }
    }
  }
  const factors: number[] = [];
  const meanMaxLogit: (number | null)[] = [];
  const unscaled: Unscaled[] = [];
  for (let j = 0; j < k; j++) {
    const c = map.classOf[j]!;
    if (c < 0) {
      factors.push(1);
      meanMaxLogit.push(null);
      continue;
    }
    if (counts[j] === 0) {
      factors.push(1);
      meanMaxLogit.push(null);
      unscaled.push({ output: j, class: c, reason: seen.has(c) ? 'no correctly classified sample' : 'no images of this class in the data' });
      continue;
    }
    const mean = sums[j]! / counts[j]!;
    meanMaxLogit.push(mean);
    // A negative mean would flip the sign of the class's logit; leave such a class alone.
    if (!(mean > 0)) {
      factors.push(1);
      unscaled.push({ output: j, class: c, reason: 'mean max logit is not positive' });
      continue;
    }
    factors.push(1 / mean);
  }
  return { factors, correct: Array.from(counts), meanMaxLogit, unscaled, data: ds.source };
}

/** Dataset indices of `classes`, at most `maxPerClass` per class (seeded choice), ascending. */
export function pickIndices(ds: Dataset, classes: readonly number[], maxPerClass: number | undefined, seed: number): number[] {
  const all = subsetIndices(ds, classes);
  if (maxPerClass === undefined) return all;
  if (!Number.isInteger(maxPerClass) || maxPerClass < 1) throw new UserError(`samples per class must be a positive integer, got ${maxPerClass}`);
  const byClass = new Map<number, number[]>();
  for (const i of all) {
    const l = ds.label(i);
    let list = byClass.get(l);
    if (!list) byClass.set(l, (list = []));
    list.push(i);
  }
  const out: number[] = [];
  for (const [c, list] of byClass) {
    if (list.length > maxPerClass) new Rng(hashSeed(seed, `scale:${c}`)).shuffle(list);
    out.push(...list.slice(0, maxPerClass));
  }
  return out.sort((a, b) => a - b);
}

/** Where the logits' last linear layer keeps its per-output weights. */
export interface LastLayer {
  node: Node;
  weight: string;
  /** true when output j is row j of the weight ([out, in]); false for a column ([in, out]) */
  rows: boolean;
  bias?: string;
}

/**
 * Operators between the last layer and the logits that commute with a positive factor
 * per output channel: f(r x) = r f(x) for r > 0 (reshapes, and per-channel positively
 * homogeneous operators such as the Relu and pooling after SqueezeNet's final conv).
 */
const PASS_THROUGH = new Set(['Identity', 'Dropout', 'Flatten', 'Reshape', 'Squeeze', 'Relu', 'GlobalAveragePool', 'AveragePool', 'MaxPool', 'GlobalMaxPool']);

/**
 * The Gemm (or MatMul + Add, or Conv) that produces the model's logits, looking back
 * through PASS_THROUGH operators. Throws naming the operator found instead.
 */
export function findLastLinear(model: Model, file = 'model'): LastLayer {
  const g = model.graph;
  const prod = producers(g);
  const out = g.outputs[0];
  if (!out) throw new UserError(`${file} has no graph output`);
  let n = prod.get(out.name);
  while (n && PASS_THROUGH.has(n.opType)) n = prod.get(n.inputs[0]!);
  const fail = (what: string): never => {
    throw new UserError(`${file}: cannot scale the logits: ${what}; parameter scaling needs a final Gemm or MatMul(+Add) layer with constant weights`);
  };
  if (!n) return fail(`output ${out.name} is not computed by a node`);
  if (n.opType === 'Gemm') {
    if (attrInt(n, 'transA', 0) !== 0) fail(`the last Gemm (${n.name}) has transA=1`);
    const w = n.inputs[1]!;
    if (!g.initializers.has(w)) fail(`the weight ${w} of the last Gemm (${n.name}) is not an initializer`);
    const bias = n.inputs[2];
    if (bias && !g.initializers.has(bias)) fail(`the bias ${bias} of the last Gemm (${n.name}) is not an initializer`);
    return { node: n, weight: w, rows: attrInt(n, 'transB', 0) === 1, ...(bias ? { bias } : {}) };
  }
  if (n.opType === 'Add') {
    const [a, b] = n.inputs as [string, string];
    const biasName = g.initializers.has(b) ? b : g.initializers.has(a) ? a : undefined;
    const mm = prod.get(biasName === b ? a : b);
    if (!biasName || !mm || mm.opType !== 'MatMul' || !g.initializers.has(mm.inputs[1]!))
      return fail(`the logits come from an Add (${n.name}) that is not MatMul + constant bias`);
    return { node: mm, weight: mm.inputs[1]!, rows: false, bias: biasName };
  }
  if (n.opType === 'MatMul') {
    if (!g.initializers.has(n.inputs[1]!)) fail(`the weight of the last MatMul (${n.name}) is not an initializer`);
    return { node: n, weight: n.inputs[1]!, rows: false };
  }
  if (n.opType === 'Conv') {
    const [w, bias] = [n.inputs[1]!, n.inputs[2]];
    if (!g.initializers.has(w) || (bias && !g.initializers.has(bias))) fail(`the weights of the last Conv (${n.name}) are not initializers`);
    return { node: n, weight: w, rows: true, ...(bias ? { bias } : {}) };
  }
  return fail(`the logits are computed by ${n.opType} node ${n.name}`);
}

/**
 * A copy of `model` whose output j is multiplied by factors[j] (last layer's row j and
 * bias j). The input model is not modified.
 */
export function applyScales(model: Model, factors: readonly number[], file = 'model'): Model {
  const last = findLastLinear(model, file);
  const out = cloneModel(model);
  const g = out.graph;
  const w = g.initializers.get(last.weight)!;
  if (w.dims.length !== 2 && !(last.rows && w.dims.length > 2)) {
    throw new UserError(`${file}: last layer weight ${last.weight} has shape [${w.dims.join(',')}], expected a matrix`);
  }
  // [out, in, ...kernel] (rows) or [in, out] (columns)
  const r = w.dims[0]!;
  const c = w.dims.slice(1).reduce((a, b) => a * b, 1);
  const k = last.rows ? r : c;
  if (k !== factors.length) throw new UserError(`${file}: ${factors.length} scale factors for a last layer with ${k} outputs`);
  const wd = Float32Array.from(toFloat32(w));
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) wd[i * c + j]! *= factors[last.rows ? i : j]!;
  g.initializers.set(last.weight, float32([...w.dims], wd));
  if (last.bias) {
    const b = g.initializers.get(last.bias)!;
    g.initializers.set(last.bias, scaledBias(b, factors, file, last.bias));
  }
  return out;
}

function scaledBias(b: Tensor, factors: readonly number[], file: string, name: string): Tensor {
  const k = factors.length;
  const v = toFloat32(b);
  // A broadcast (scalar) bias becomes one value per output so that each can be scaled.
  if (v.length === 1)
    return float32(
      [k],
      factors.map((f) => v[0]! * f),
    );
  if (v.length !== k) throw new UserError(`${file}: bias ${name} has ${v.length} values, expected ${k}`);
  return float32(
    [...b.dims],
    Array.from(v, (x, j) => x * factors[j]!),
  );
}

/** How the components' logits are put on one scale before assembly (one row per method). */
export const SCALE_METHODS = ['fit', 'mean-max'] as const;
export type ScaleMethod = (typeof SCALE_METHODS)[number];

export interface AffineFit {
  /** per output of the assembled model: its logit becomes scale[j] * z_j + shift[j] */
  scale: number[];
  shift: number[];
  /** accuracy on the calibration images before (plain concatenated logits) and after the fit */
  before: number;
  after: number;
  images: number;
}

/**
 * Fits one scale (> 0) and one shift per output of the assembled model so that the softmax
 * over all outputs classifies `logits` (rows: images, columns: outputs) as `targets`
 * (output index per image): mean cross-entropy, minimised by full-batch Adam on
 * (log scale, shift) from the plain logits (scale 1, shift 0). Deterministic: no sampling.
 *
 * Why not the paper's r_j = 1 / mean max logit: measured on a PyTorch VGG
 * (docs: README "Model LEGO on the models users bring"), it cost 3.6 points even on the
 * base model's own sliced logits (90.66% -> 87.07%); components tell their classes apart
 * well, what assembly needs is their logits on one scale, which is what this fits.
 * Written by hand: 2K parameters and a softmax, no library needed.
 */
export function fitAffine(logits: Float32Array, rows: number, k: number, targets: Int32Array, iterations = 1000, lr = 0.05): AffineFit {
  const u = new Float64Array(k),
    b = new Float64Array(k);
  const m1 = new Float64Array(2 * k),
    m2 = new Float64Array(2 * k);
  const gu = new Float64Array(k),
    gb = new Float64Array(k);
  const p = new Float64Array(k);
  // the scales exp(u), once per pass rather than per image and output
  const scales = (): Float64Array => Float64Array.from(u, Math.exp);
  const accuracy = (): number => {
    const a = scales();
    let ok = 0;
    for (let n = 0; n < rows; n++) {
      let best = 0,
        bv = -Infinity;
      for (let j = 0; j < k; j++) {
        const v = a[j]! * logits[n * k + j]! + b[j]!;
        if (v > bv) {
          bv = v;
          best = j;
        }
      }
      if (best === targets[n]) ok++;
    }
    return rows ? ok / rows : 0;
  };
  const before = accuracy();
  for (let it = 1; it <= iterations; it++) {
    gu.fill(0);
    gb.fill(0);
    const a = scales();
    for (let n = 0; n < rows; n++) {
      let max = -Infinity;
      for (let j = 0; j < k; j++) {
        p[j] = a[j]! * logits[n * k + j]! + b[j]!;
        if (p[j]! > max) max = p[j]!;
      }
      let sum = 0;
      for (let j = 0; j < k; j++) {
        p[j] = Math.exp(p[j]! - max);
        sum += p[j]!;
      }
      for (let j = 0; j < k; j++) {
        const d = p[j]! / sum - (j === targets[n] ? 1 : 0);
        gu[j]! += d * a[j]! * logits[n * k + j]!;
        gb[j]! += d;
      }
    }
    // Adam (beta1 0.9, beta2 0.999): logit magnitudes differ by model, plain steps would not
    for (let j = 0; j < 2 * k; j++) {
      const g = (j < k ? gu[j]! : gb[j - k]!) / Math.max(1, rows);
      m1[j] = 0.9 * m1[j]! + 0.1 * g;
      m2[j] = 0.999 * m2[j]! + 0.001 * g * g;
      const step = (lr * (m1[j]! / (1 - 0.9 ** it))) / (Math.sqrt(m2[j]! / (1 - 0.999 ** it)) + 1e-8);
      if (j < k) u[j]! -= step;
      else b[j - k]! -= step;
    }
  }
  return { scale: Array.from(u, Math.exp), shift: Array.from(b), before, after: accuracy(), images: rows };
}

/**
 * A copy of `model` whose output j is factors[j] * z_j + shifts[j]: the last layer's row j
 * scaled, and the shift added to its bias (a bias is created where the layer has none).
 */
export function applyAffine(model: Model, factors: readonly number[], shifts: readonly number[], file = 'model'): Model {
  const out = applyScales(model, factors, file);
  if (shifts.every((s) => s === 0)) return out;
  const last = findLastLinear(out, file);
  const g = out.graph;
  if (last.bias) {
    const b = toFloat32(g.initializers.get(last.bias)!);
    g.initializers.set(
      last.bias,
      float32(
        [shifts.length],
        Array.from(shifts, (s, j) => (b.length === 1 ? b[0]! : b[j]!) + s),
      ),
    );
    return out;
  }
  const name = `${last.node.name || 'logits'}.lego_shift`;
  g.initializers.set(name, float32([shifts.length], [...shifts]));
  if (last.node.opType === 'Gemm' || last.node.opType === 'Conv') {
    // both take the bias as their optional third input
    last.node.inputs[2] = name;
  } else {
    // a MatMul without bias: z = MatMul(x, W) + shift, the MatMul + Add pattern findLastLinear reads
    const z = last.node.outputs[0]!;
    const pre = `${z}.lego_unshifted`;
    last.node.outputs[0] = pre;
    g.nodes.splice(g.nodes.indexOf(last.node) + 1, 0, {
      name: `${last.node.name || 'logits'}_lego_shift`,
      opType: 'Add',
      inputs: [pre, name],
      outputs: [z],
      attributes: {},
    });
  }
  return out;
}
