/**
 * Stitches as ONNX graphs: the fixed part (optional BatchNorm, pooling, upsampling) and
 * the learned linear map, plus the same fixed part with the map replaced by a
 * patch-extracting operator, which turns a sender activation into the rows of the
 * least-squares problem that the map solves (lsq.ts).
 */
import type { Graph, Model, Node, Tensor } from '../onnx/types.js';
import { createModel, emptyGraph, float, int, ints, str } from '../onnx/graph.js';
import { float32, int64, numel } from '../onnx/tensor.js';
import { initValues, defaultUniformBound } from '../nn/init.js';
import { UserError } from '../util/errors.js';
import { type StitchSpec, fmt, padFor } from './plan.js';

/** Input and output tensor names of every stitch model. */
export const STITCH_IN = 'x';
export const STITCH_OUT = 'y';
export const MAP_WEIGHT = 'stitch.map.weight';
export const MAP_BIAS = 'stitch.map.bias';

/** Values of a stitch's initializers by name (weights, BatchNorm parameters and statistics). */
export type StitchWeights = Map<string, Float32Array>;

export type StitchInit =
  /** PyTorch's Conv/Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), seeded */
  | { kind: 'random'; seed: number }
  /** the identity map (needs as many sender as receiver channels); bias 0 */
  | { kind: 'identity' }
  /** explicit values (e.g. a least-squares solution); missing ones get the random init */
  | { kind: 'weights'; weights: StitchWeights; seed?: number };

/** Shape of the learned map's weight: conv [Cb, Ca, k, k] or linear [Cb, F]. */
export function mapWeightShape(s: StitchSpec): number[] {
  const cb = s.to[0]!;
  switch (s.kind) {
    case 'conv1x1': case 'upsample': return [cb, s.from[0]!, 1, 1];
    case 'downsample': return [cb, s.from[0]!, s.ratio, s.ratio];
    case 'pool-linear': return [cb, s.from[0]!];
    case 'flatten-linear': case 'linear': return [cb, numel(s.from)];
  }
}

/** Inputs per output of the learned map (the fan-in, and the column count K of the least-squares problem). */
export const mapFanIn = (s: StitchSpec): number => numel(mapWeightShape(s).slice(1));

/** The stitch's parameter names (what training updates), in graph order. */
export function stitchParameters(s: StitchSpec): string[] {
  const bn = (p: string): string[] => [`${p}.weight`, `${p}.bias`];
  return [...(s.bnBefore ? bn('stitch.bn_before') : []), MAP_WEIGHT, MAP_BIAS, ...(s.bnAfter ? bn('stitch.bn_after') : [])];
}

/** Initial values of every initializer of the stitch. */
export function initialWeights(s: StitchSpec, init: StitchInit): StitchWeights {
  const w: StitchWeights = new Map();
  const seed = init.kind === 'random' ? init.seed : init.kind === 'weights' ? init.seed ?? 0 : 0;
  const shape = mapWeightShape(s);
  const bound = defaultUniformBound(mapFanIn(s));
  w.set(MAP_WEIGHT, initValues({ kind: 'uniform', bound }, shape, seed, MAP_WEIGHT));
  w.set(MAP_BIAS, initValues({ kind: 'uniform', bound }, [shape[0]!], seed, MAP_BIAS));
  for (const [on, p, c] of [[s.bnBefore, 'stitch.bn_before', s.from[0]!], [s.bnAfter, 'stitch.bn_after', s.to[0]!]] as const) {
    if (!on) continue;
    w.set(`${p}.weight`, new Float32Array(c).fill(1));
    w.set(`${p}.bias`, new Float32Array(c));
    w.set(`${p}.running_mean`, new Float32Array(c));
    w.set(`${p}.running_var`, new Float32Array(c).fill(1));
  }
  if (init.kind === 'identity') {
    const [cb, fan] = [shape[0]!, mapFanIn(s)];
    if (s.kind === 'downsample' || s.kind === 'upsample' || cb !== fan || (s.kind !== 'conv1x1' && s.kind !== 'linear' && s.kind !== 'pool-linear')) {
      throw new UserError(`an identity stitch needs the same shape on both sides; ${fmt(s.from)} -> ${fmt(s.to)} takes a ${s.kind} stitch`);
    }
    const weight = new Float32Array(cb * fan);
    for (let i = 0; i < cb; i++) weight[i * fan + i] = 1;
    w.set(MAP_WEIGHT, weight);
    w.set(MAP_BIAS, new Float32Array(cb));
  }
  if (init.kind === 'weights') {
    for (const [k, v] of init.weights) {
      const have = w.get(k);
      if (!have) throw new UserError(`stitch weights: "${k}" is not a tensor of a ${s.kind} stitch (tensors: ${[...w.keys()].join(', ')})`);
      if (have.length !== v.length) throw new UserError(`stitch weights: "${k}" has ${v.length} values, a ${s.kind} stitch ${fmt(s.from)} -> ${fmt(s.to)} needs ${have.length}`);
      w.set(k, Float32Array.from(v));
    }
  }
  return w;
}

/** Dims of each initializer of the stitch. */
export function weightDims(s: StitchSpec): Map<string, number[]> {
  const dims = new Map<string, number[]>([[MAP_WEIGHT, mapWeightShape(s)], [MAP_BIAS, [s.to[0]!]]]);
  for (const [on, p, c] of [[s.bnBefore, 'stitch.bn_before', s.from[0]!], [s.bnAfter, 'stitch.bn_after', s.to[0]!]] as const) {
    if (!on) continue;
    for (const k of ['weight', 'bias', 'running_mean', 'running_var']) dims.set(`${p}.${k}`, [c]);
  }
  return dims;
}

/**
 * The stitch as a standalone model: input `x` [N, ...from], output `y` [N, ...to].
 * With `weightsAsInputs` the stitch's initializers become graph inputs instead, so one
 * ONNX Runtime session serves every cell with the same shapes (weights are fed per run).
 *
 * @example const m = buildStitch(planStitch([32, 28, 28], [64, 14, 14]), { kind: 'random', seed: 0 });
 */
export function buildStitch(s: StitchSpec, init: StitchInit, opts: { weightsAsInputs?: boolean } = {}): Model {
  const g = emptyGraph('stitch');
  g.inputs.push({ name: STITCH_IN, dtype: 'float32', shape: ['N', ...s.from] });
  const weights = initialWeights(s, init);
  const dims = weightDims(s);
  for (const [k, v] of weights) {
    if (opts.weightsAsInputs) g.inputs.push({ name: k, dtype: 'float32', shape: dims.get(k)! });
    else g.initializers.set(k, float32(dims.get(k)!, v));
  }
  let x = s.bnBefore ? batchNorm(g, STITCH_IN, 'stitch.bn_before') : STITCH_IN;
  x = prepare(g, s, x);
  const out = s.bnAfter ? 'stitch.map' : STITCH_OUT;
  if (s.kind === 'pool-linear' || s.kind === 'flatten-linear' || s.kind === 'linear') {
    g.nodes.push(node('Gemm', 'stitch.map', [x, MAP_WEIGHT, MAP_BIAS], out, { transB: int(1) }));
  } else {
    const k = s.kind === 'downsample' ? s.ratio : 1;
    g.nodes.push(node('Conv', 'stitch.map', [x, MAP_WEIGHT, MAP_BIAS], out, convAttrs(s, k)));
  }
  if (s.bnAfter) batchNorm(g, out, 'stitch.bn_after', STITCH_OUT);
  g.outputs.push({ name: STITCH_OUT, dtype: 'float32', shape: ['N', ...s.to] });
  return createModel(g);
}

/**
 * The rows of the least-squares problem: a model from `x` [N, ...from] to `rows`
 * [N * S, K], where row (n, pixel) holds exactly the K inputs that the learned map
 * multiplies for that output pixel (space-to-depth patches for strided stitches, the
 * upsampled pixel, the pooled vector). BatchNorm-before is applied with the values given.
 */
export function buildPatchModel(s: StitchSpec, weights?: StitchWeights): Model {
  const g = emptyGraph('stitch_patches');
  g.inputs.push({ name: STITCH_IN, dtype: 'float32', shape: ['N', ...s.from] });
  let x = STITCH_IN;
  if (s.bnBefore) {
    const w = weights ?? initialWeights(s, { kind: 'random', seed: 0 });
    for (const k of ['weight', 'bias', 'running_mean', 'running_var']) g.initializers.set(`stitch.bn_before.${k}`, float32([s.from[0]!], w.get(`stitch.bn_before.${k}`)!));
    x = batchNorm(g, x, 'stitch.bn_before');
  }
  x = prepare(g, s, x);
  const k = mapFanIn(s);
  if (s.kind === 'downsample') {
    // one-hot kernels copy each (channel, ky, kx) of a patch to its own output channel,
    // in the order of the conv weight's [Ca, r, r] flattening
    const [ca] = s.from as [number];
    const r = s.ratio;
    const eye = new Float32Array(k * ca * r * r);
    for (let c = 0; c < ca; c++) for (let i = 0; i < r * r; i++) eye[(c * r * r + i) * ca * r * r + c * r * r + i] = 1;
    g.initializers.set('patch.eye', float32([k, ca, r, r], eye));
    g.nodes.push(node('Conv', 'patches', [x, 'patch.eye'], 'patches', convAttrs(s, r)));
    x = 'patches';
  }
  rowsOf(g, x, k, 'rows');
  g.outputs.push({ name: 'rows', dtype: 'float32', shape: [null, k] });
  return createModel(g);
}

/** Appends nodes turning x [N, K, ...spatial] (or [N, K]) into rows [N * S, K]. */
export function rowsOf(g: Graph, x: string, k: number, out: string): void {
  const c = (name: string, t: Tensor): string => { g.initializers.set(name, t); return name; };
  g.nodes.push(node('Reshape', `${out}.nks`, [x, c(`${out}.nks.shape`, int64([3], [0, k, -1]))], `${out}.nks`, {}));
  g.nodes.push(node('Transpose', `${out}.nsk`, [`${out}.nks`], `${out}.nsk`, { perm: ints([0, 2, 1]) }));
  g.nodes.push(node('Reshape', out, [`${out}.nsk`, c(`${out}.shape`, int64([2], [-1, k]))], out, {}));
}

/** The fixed operators before the learned map: upsampling, pooling, flattening. */
function prepare(g: Graph, s: StitchSpec, x: string): string {
  switch (s.kind) {
    case 'upsample': {
      const [, ha, wa] = s.from as [number, number, number];
      const [, hb, wb] = s.to as [number, number, number];
      g.initializers.set('stitch.up.scales', float32([4], [1, 1, s.ratio, s.ratio]));
      g.nodes.push(node('Resize', 'stitch.up', [x, '', 'stitch.up.scales'], 'stitch.up', {
        mode: str('nearest'), coordinate_transformation_mode: str('asymmetric'), nearest_mode: str('floor'),
      }));
      if (ha * s.ratio === hb && wa * s.ratio === wb) return 'stitch.up';
      g.initializers.set('stitch.crop.starts', int64([2], [0, 0]));
      g.initializers.set('stitch.crop.ends', int64([2], [hb, wb]));
      g.initializers.set('stitch.crop.axes', int64([2], [2, 3]));
      g.nodes.push(node('Slice', 'stitch.crop', ['stitch.up', 'stitch.crop.starts', 'stitch.crop.ends', 'stitch.crop.axes'], 'stitch.crop', {}));
      return 'stitch.crop';
    }
    case 'pool-linear':
      g.nodes.push(node('GlobalAveragePool', 'stitch.pool', [x], 'stitch.pool', {}));
      g.nodes.push(node('Flatten', 'stitch.flatten', ['stitch.pool'], 'stitch.flatten', { axis: int(1) }));
      return 'stitch.flatten';
    case 'flatten-linear':
      g.nodes.push(node('Flatten', 'stitch.flatten', [x], 'stitch.flatten', { axis: int(1) }));
      return 'stitch.flatten';
    default:
      return x;
  }
}

function convAttrs(s: StitchSpec, k: number): Node['attributes'] {
  const pads = s.kind === 'downsample'
    ? [0, 0, padFor(s.from[1]!, s.to[1]!, k), padFor(s.from[2]!, s.to[2]!, k)]
    : [0, 0, 0, 0];
  return { kernel_shape: ints([k, k]), strides: ints([k, k]), pads: ints(pads), dilations: ints([1, 1]), group: int(1) };
}

function batchNorm(g: Graph, x: string, p: string, out = p): string {
  g.nodes.push(node('BatchNormalization', p, [x, `${p}.weight`, `${p}.bias`, `${p}.running_mean`, `${p}.running_var`], out, { epsilon: float(1e-5), momentum: float(0.9) }));
  return out;
}

function node(opType: string, name: string, inputs: string[], output: string, attributes: Node['attributes']): Node {
  return { name, opType, inputs, outputs: [output], attributes };
}
