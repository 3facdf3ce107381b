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
import { keepNeeded, removeUnused } from '../onnx/prune.js';
import { type StitchKind, type StitchSpec, coreFrom, coreTo, edgeFor, fmt, padFor } from './plan.js';

/** Input and output tensor names of every stitch model. */
export const STITCH_IN = 'x';
export const STITCH_OUT = 'y';
export const MAP_WEIGHT = 'stitch.map.weight';
export const MAP_BIAS = 'stitch.map.bias';
/** the second map of a stitch into tokens with a class token: the class token from the sender's pool or class token */
export const CLASS_WEIGHT = 'stitch.class.weight';
export const CLASS_BIAS = 'stitch.class.bias';

/** Values of a stitch's initializers by name (weights, BatchNorm parameters and statistics). */
export type StitchWeights = Map<string, Float32Array>;

export type StitchInit =
  /** PyTorch's Conv/Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), seeded */
  | { kind: 'random'; seed: number }
  /** the identity map (needs as many sender as receiver channels); bias 0 */
  | { kind: 'identity' }
  /** explicit values (e.g. a least-squares solution); missing ones get the random init */
  | { kind: 'weights'; weights: StitchWeights; seed?: number };

/** One learned linear map of a stitch: the main map, and the class-token map where there is one. */
export interface StitchMap {
  id: 'map' | 'class';
  weight: string;
  bias: string;
  /** the weight's shape: conv [out, in, k, k] or linear [out, in] */
  shape: number[];
}

/** Shape of the main map's weight: conv [Cb, Ca, k, k] or linear [out, in]. */
export function mapWeightShape(s: StitchSpec): number[] {
  const [a, b] = [coreFrom(s), coreTo(s)];
  switch (s.kind) {
    case 'conv1x1':
    case 'upsample':
      return [b[0]!, a[0]!, 1, 1];
    case 'downsample':
      return [b[0]!, a[0]!, s.ratio, s.ratio];
    case 'pool-linear':
      return [b[0]!, s.from.length === 2 ? s.from[1]! : s.from[0]!];
    case 'flatten-linear':
      return [b[0]!, numel(s.from)];
    case 'linear':
      return [b[0]!, s.from[0]!];
    case 'token-linear':
      return [s.to[1]!, s.from[1]!];
    case 'class-linear':
      return [b[0]!, s.from[1]!];
  }
}

/** The learned maps of a stitch. */
export function stitchMaps(s: StitchSpec): StitchMap[] {
  const maps: StitchMap[] = [{ id: 'map', weight: MAP_WEIGHT, bias: MAP_BIAS, shape: mapWeightShape(s) }];
  if (s.patchify?.extra) maps.push({ id: 'class', weight: CLASS_WEIGHT, bias: CLASS_BIAS, shape: [s.to[1]!, classInputs(s)] });
  return maps;
}

/** Inputs of the class-token map: the sender's class token, or its channels / hidden size pooled. */
function classInputs(s: StitchSpec): number {
  return s.from.length === 2 ? s.from[1]! : s.from[0]!;
}

/** Inputs per output of the main map (the fan-in, and the column count K of its least-squares problem). */
export const mapFanIn = (s: StitchSpec): number => numel(mapWeightShape(s).slice(1));

/** The stitch's parameter names (what training updates), in graph order. */
export function stitchParameters(s: StitchSpec): string[] {
  const bn = (p: string): string[] => [`${p}.weight`, `${p}.bias`];
  return [...(s.bnBefore ? bn('stitch.bn_before') : []), ...stitchMaps(s).flatMap((m) => [m.weight, m.bias]), ...(s.bnAfter ? bn('stitch.bn_after') : [])];
}

/** Initial values of every initializer of the stitch. */
export function initialWeights(s: StitchSpec, init: StitchInit): StitchWeights {
  const w: StitchWeights = new Map();
  const seed = init.kind === 'random' ? init.seed : init.kind === 'weights' ? (init.seed ?? 0) : 0;
  for (const m of stitchMaps(s)) {
    const bound = defaultUniformBound(numel(m.shape.slice(1)));
    w.set(m.weight, initValues({ kind: 'uniform', bound }, m.shape, seed, m.weight));
    w.set(m.bias, initValues({ kind: 'uniform', bound }, [m.shape[0]!], seed, m.bias));
  }
  for (const [on, p, c] of [
    [s.bnBefore, 'stitch.bn_before', coreFrom(s)[0]!],
    [s.bnAfter, 'stitch.bn_after', coreTo(s)[0]!],
  ] as const) {
    if (!on) continue;
    w.set(`${p}.weight`, new Float32Array(c).fill(1));
    w.set(`${p}.bias`, new Float32Array(c));
    w.set(`${p}.running_mean`, new Float32Array(c));
    w.set(`${p}.running_var`, new Float32Array(c).fill(1));
  }
  if (init.kind === 'identity') {
    const shape = mapWeightShape(s);
    const [cb, fan] = [shape[0]!, mapFanIn(s)];
    if (
      s.kind === 'downsample' ||
      s.kind === 'upsample' ||
      cb !== fan ||
      s.patchify ||
      s.unpatchify ||
      !['conv1x1', 'linear', 'pool-linear', 'token-linear'].includes(s.kind)
    ) {
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
      if (have.length !== v.length)
        throw new UserError(`stitch weights: "${k}" has ${v.length} values, a ${s.kind} stitch ${fmt(s.from)} -> ${fmt(s.to)} needs ${have.length}`);
      w.set(k, Float32Array.from(v));
    }
  }
  return w;
}

/** Dims of each initializer of the stitch. */
export function weightDims(s: StitchSpec): Map<string, number[]> {
  const dims = new Map<string, number[]>();
  for (const m of stitchMaps(s)) {
    dims.set(m.weight, m.shape);
    dims.set(m.bias, [m.shape[0]!]);
  }
  for (const [on, p, c] of [
    [s.bnBefore, 'stitch.bn_before', coreFrom(s)[0]!],
    [s.bnAfter, 'stitch.bn_after', coreTo(s)[0]!],
  ] as const) {
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
  // An upsampling stitch maps first and upsamples after: nearest upsampling only repeats
  // pixels, so the 1x1 map commutes with it, and on the small image it costs r^2 times less
  // (the worst stitching cell, a 4x4 sender into a 28x28 receiver, spent a quarter of its
  // step upsampling 256 channels and mapping the 784 repeated pixels).
  const mapFirst = s.kind === 'upsample';
  const { core, image } = senderSide(g, s, STITCH_IN, !mapFirst);
  const mapped = s.bnAfter || s.patchify ? 'stitch.map' : STITCH_OUT;
  if (s.kind === 'token-linear') {
    g.nodes.push(node('Gemm', 'stitch.map.rows', [core, MAP_WEIGHT, MAP_BIAS], 'stitch.map.rows', { transB: int(1) }));
    reshape(g, 'stitch.map.rows', [-1, s.to[0]!, s.to[1]!], mapped);
  } else if (isLinear(s.kind)) {
    g.nodes.push(node('Gemm', 'stitch.map', [core, MAP_WEIGHT, MAP_BIAS], mapped, { transB: int(1) }));
  } else {
    const k = s.kind === 'downsample' ? s.ratio : 1;
    g.nodes.push(node('Conv', 'stitch.map', [core, MAP_WEIGHT, MAP_BIAS], mapFirst ? 'stitch.map.small' : mapped, convAttrs(s, k)));
    if (mapFirst) upsample(g, s, 'stitch.map.small', mapped);
  }
  if (s.bnAfter) batchNorm(g, mapped, 'stitch.bn_after', STITCH_OUT);
  if (s.patchify) {
    // [N, D, h, w] -> [N, h*w, D]: patch (i, j) becomes token i*w + j
    reshape(g, mapped, [0, s.to[1]!, -1], 'stitch.patchify.flat');
    const tokens = s.patchify.extra ? 'stitch.patchify' : STITCH_OUT;
    g.nodes.push(node('Transpose', 'stitch.patchify', ['stitch.patchify.flat'], tokens, { perm: ints([0, 2, 1]) }));
    if (s.patchify.extra) {
      const from = classSource(g, s, image);
      g.nodes.push(node('Gemm', 'stitch.class', [from, CLASS_WEIGHT, CLASS_BIAS], 'stitch.class', { transB: int(1) }));
      reshape(g, 'stitch.class', [-1, 1, s.to[1]!], 'stitch.class.token');
      g.nodes.push(node('Concat', 'stitch.tokens', ['stitch.class.token', tokens], STITCH_OUT, { axis: int(1) }));
    }
  }
  g.outputs.push({ name: STITCH_OUT, dtype: 'float32', shape: ['N', ...s.to] });
  return createModel(g);
}

/**
 * A pool-linear stitch without BatchNorm before it averages the sender's activation over its
 * positions (pixels, or tokens) before its one learned map, and that front has no
 * parameters: a cell takes it once per image (buildPooling) and trains, solves and evaluates
 * the stitch as this linear map of the pooled vector (stitch/cell.ts). The same function
 * with the same weights (the map's weight [out, features] and bias are the pool-linear
 * stitch's); each step reads `features` numbers per image instead of the whole activation.
 */
export function pooledSpec(s: StitchSpec): StitchSpec | undefined {
  if (s.kind !== 'pool-linear' || s.bnBefore || s.from.length < 2) return undefined;
  const { unpatchify: _, ...rest } = s;
  return { ...rest, kind: 'linear', from: [s.from.length === 3 ? s.from[0]! : s.from[1]!] };
}

/**
 * The parameter-free front of a pool-linear stitch alone (pooledSpec): x [N, ...from] ->
 * [N, features], by the stitch graph's own operators. Its sizes are symbolic unless a token
 * grid is read as an image (the reshape needs them), so one session serves every sender of a
 * rank: poolingKey says which fronts are the same graph.
 */
export function buildPooling(s: StitchSpec): Model {
  if (!pooledSpec(s)) throw new Error(`buildPooling: a ${s.kind} stitch${s.bnBefore ? ' with BatchNorm before it' : ''} has no parameter-free pooling front`);
  const g = emptyGraph('stitch-pooling');
  const sizes = s.unpatchify ? s.from : s.from.map((_, i) => `d${i + 1}`);
  g.inputs.push({ name: STITCH_IN, dtype: 'float32', shape: ['N', ...sizes] });
  const { core } = senderSide(g, s, STITCH_IN);
  g.outputs.push({ name: core, dtype: 'float32', shape: ['N', s.unpatchify ? s.from[1]! : 'features'] });
  return createModel(g);
}

/** Pool-linear stitches whose fronts (buildPooling) are the same graph have the same key. */
export function poolingKey(s: StitchSpec): string {
  return s.unpatchify ? `${s.from.join('x')}|${s.unpatchify.extra}|${s.unpatchify.grid.join('x')}` : `rank ${s.from.length}`;
}

const isLinear = (k: StitchKind): boolean => k === 'pool-linear' || k === 'flatten-linear' || k === 'linear' || k === 'class-linear';

/**
 * The sender's side of a stitch: unpatchify a token sender, BatchNorm-before, then what
 * the main map reads (`core`: upsampled, pooled, flattened...). `image` is the sender as
 * the class-token map reads it (after BatchNorm-before).
 */
function senderSide(g: Graph, s: StitchSpec, x: string, withUpsampling = true): { core: string; image: string } {
  let image = x;
  if (s.unpatchify) image = unpatchify(g, s, x);
  if (s.bnBefore) image = batchNorm(g, image, 'stitch.bn_before');
  const core = s.kind === 'upsample' && !withUpsampling ? image : prepare(g, s, image);
  return { core, image: s.unpatchify ? x : image };
}

/** Tokens [N, T, D] -> the image [N, D, h, w] of the patch tokens (class tokens dropped). */
function unpatchify(g: Graph, s: StitchSpec, x: string): string {
  const { extra, grid } = s.unpatchify!;
  const d = s.from[1]!;
  let t = x;
  if (extra) t = sliceTokens(g, x, extra, s.from[0]!, 'stitch.unpatchify.patches');
  g.nodes.push(node('Transpose', 'stitch.unpatchify.t', [t], 'stitch.unpatchify.t', { perm: ints([0, 2, 1]) }));
  reshape(g, 'stitch.unpatchify.t', [0, d, grid[0], grid[1]], 'stitch.unpatchify');
  return 'stitch.unpatchify';
}

/** What the class-token map reads, [N, F]: the sender's class token, or its global mean. */
function classSource(g: Graph, s: StitchSpec, image: string): string {
  if (s.from.length === 3) return globalPool(g, image, 'stitch.class.pool');
  if (s.patchify!.classFrom === 'class') return classToken(g, image, s.from, 'stitch.class.in');
  return tokenMean(g, image, 'stitch.class.in');
}

/** Tokens [start, end) of x [N, T, D] along the token axis. */
function sliceTokens(g: Graph, x: string, start: number, end: number, out: string): string {
  const c = (name: string, v: number[]): string => {
    g.initializers.set(name, int64([1], v));
    return name;
  };
  g.nodes.push(node('Slice', out, [x, c(`${out}.starts`, [start]), c(`${out}.ends`, [end]), c(`${out}.axes`, [1])], out, {}));
  return out;
}

/** The first (class) token of x [N, T, D] as [N, D]. */
function classToken(g: Graph, x: string, shape: readonly number[], out: string): string {
  sliceTokens(g, x, 0, 1, `${out}.slice`);
  return reshape(g, `${out}.slice`, [-1, shape[1]!], out);
}

function tokenMean(g: Graph, x: string, out: string): string {
  g.nodes.push(node('ReduceMean', out, [x], out, { axes: ints([1]), keepdims: int(0) }));
  return out;
}

/**
 * [N, C, H, W] -> [N, C]: ReduceMean over the pixels, not GlobalAveragePool + Flatten, as
 * ONNX Runtime's GlobalAveragePool is the slower kernel at every size measured (batch 256,
 * 2 threads: 32x28x28 0.96-1.24 ms against 0.26-0.29, 128x7x7 0.28-0.29 against 0.11-0.12,
 * 256x4x4 1.30-1.34 against 0.94-1.04).
 */
function globalPool(g: Graph, x: string, out: string): string {
  g.nodes.push(node('ReduceMean', out, [x], out, { axes: ints([2, 3]), keepdims: int(0) }));
  return out;
}

function reshape(g: Graph, x: string, shape: number[], out: string): string {
  g.initializers.set(`${out}.shape`, int64([shape.length], shape));
  g.nodes.push(node('Reshape', out, [x, `${out}.shape`], out, {}));
  return out;
}

/**
 * The rows of one map's least-squares problem: a model from `x` [N, ...from] to `rows`
 * [N * S, K], where row (n, position) holds exactly the K inputs that the map multiplies
 * for that output position (space-to-depth patches for strided stitches, the upsampled
 * pixel, the pooled vector, a token). BatchNorm-before is applied with the values given.
 */
export function buildPatchModel(s: StitchSpec, weights?: StitchWeights, map: StitchMap['id'] = 'map'): Model {
  const g = emptyGraph('stitch_patches');
  g.inputs.push({ name: STITCH_IN, dtype: 'float32', shape: ['N', ...s.from] });
  if (s.bnBefore) {
    const w = weights ?? initialWeights(s, { kind: 'random', seed: 0 });
    for (const k of ['weight', 'bias', 'running_mean', 'running_var']) {
      g.initializers.set(`stitch.bn_before.${k}`, float32([coreFrom(s)[0]!], w.get(`stitch.bn_before.${k}`)!));
    }
  }
  const { core, image } = senderSide(g, s, STITCH_IN);
  const spec = stitchMaps(s).find((m) => m.id === map)!;
  const k = numel(spec.shape.slice(1));
  let x = map === 'class' ? classSource(g, s, image) : core;
  if (map === 'map' && s.kind === 'downsample') x = spaceToDepth(g, s, x);
  rowsOf(g, x, k, 'rows');
  g.outputs.push({ name: 'rows', dtype: 'float32', shape: [null, k] });
  keepNeeded(g);
  removeUnused(g);
  return createModel(g);
}

/**
 * Appends nodes turning the receiver's activation `y` [N, ...to] into the target rows of
 * one map, [N * S, M], in the order of that map's input rows.
 */
export function targetRows(g: Graph, s: StitchSpec, y: string, map: StitchMap['id'], out: string): void {
  if (map === 'class') {
    classToken(g, y, s.to, out);
    return;
  }
  const m = mapWeightShape(s)[0]!;
  if (s.patchify) {
    const patches = s.patchify.extra ? sliceTokens(g, y, s.patchify.extra, s.to[0]!, `${out}.patches`) : y;
    reshape(g, patches, [-1, m], out);
  } else if (s.kind === 'token-linear') {
    reshape(g, y, [-1, m], out);
  } else {
    rowsOf(g, y, m, out);
  }
}

/** Rows per image of a map's least-squares problem (output positions). */
export function rowsPerImage(s: StitchSpec, map: StitchMap['id']): number {
  if (map === 'class') return 1;
  if (s.patchify) return s.patchify.grid[0] * s.patchify.grid[1];
  if (s.kind === 'token-linear') return s.to[0]!;
  return s.to.length === 3 ? s.to[1]! * s.to[2]! : 1;
}

/**
 * The r x r patches that a strided stitch's conv (kernel = stride = r) reads, as channels:
 * x [N, Ca, H, W] -> [N, Ca*r*r, h, w] in the order of the conv weight's [Ca, r, r]
 * flattening. Zero-padded at the bottom/right for ceil sizes and cropped for floor sizes,
 * as convAttrs pads. Pure data movement (Reshape/Transpose): a one-hot conv would do the
 * same with a K x K kernel (268 MB at K = 8192) and K^2 flops per row.
 */
function spaceToDepth(g: Graph, s: StitchSpec, x: string): string {
  const [ca, hIn, wIn] = coreFrom(s) as [number, number, number];
  const [, h, w] = coreTo(s) as [number, number, number];
  const r = s.ratio;
  const [padH, padW] = [padFor(hIn, h, r), padFor(wIn, w, r)];
  let t = x;
  if (padH || padW) {
    g.initializers.set('patch.pads', int64([8], [0, 0, 0, 0, 0, 0, padH, padW]));
    g.nodes.push(node('Pad', 'patch.pad', [t, 'patch.pads'], 'patch.pad', {}));
    t = 'patch.pad';
  }
  if (hIn + padH > h * r || wIn + padW > w * r) {
    g.initializers.set('patch.crop.starts', int64([2], [0, 0]));
    g.initializers.set('patch.crop.ends', int64([2], [h * r, w * r]));
    g.initializers.set('patch.crop.axes', int64([2], [2, 3]));
    g.nodes.push(node('Slice', 'patch.crop', [t, 'patch.crop.starts', 'patch.crop.ends', 'patch.crop.axes'], 'patch.crop', {}));
    t = 'patch.crop';
  }
  reshape(g, t, [0, ca, h, r, w, r], 'patch.split');
  g.nodes.push(node('Transpose', 'patch.t', ['patch.split'], 'patch.t', { perm: ints([0, 1, 3, 5, 2, 4]) }));
  return reshape(g, 'patch.t', [0, ca * r * r, h, w], 'patches');
}

/** Appends nodes turning x [N, K, ...spatial] (or [N, K]) into rows [N * S, K]. */
export function rowsOf(g: Graph, x: string, k: number, out: string): void {
  const c = (name: string, t: Tensor): string => {
    g.initializers.set(name, t);
    return name;
  };
  g.nodes.push(node('Reshape', `${out}.nks`, [x, c(`${out}.nks.shape`, int64([3], [0, k, -1]))], `${out}.nks`, {}));
  g.nodes.push(node('Transpose', `${out}.nsk`, [`${out}.nks`], `${out}.nsk`, { perm: ints([0, 2, 1]) }));
  g.nodes.push(node('Reshape', out, [`${out}.nsk`, c(`${out}.shape`, int64([2], [-1, k]))], out, {}));
}

/** The fixed operators before the main map: upsampling, pooling, flattening, the class token, token rows. */
function prepare(g: Graph, s: StitchSpec, x: string): string {
  const tokens = s.from.length === 2 && !s.unpatchify;
  switch (s.kind) {
    case 'upsample':
      return upsample(g, s, x);
    case 'pool-linear':
      return tokens ? tokenMean(g, x, 'stitch.pool') : globalPool(g, x, 'stitch.flatten');
    case 'flatten-linear':
      g.nodes.push(node('Flatten', 'stitch.flatten', [x], 'stitch.flatten', { axis: int(1) }));
      return 'stitch.flatten';
    case 'class-linear':
      return classToken(g, x, s.from, 'stitch.class.in');
    case 'token-linear':
      return reshape(g, x, [-1, s.from[1]!], 'stitch.token.rows');
    default:
      return x;
  }
}

/**
 * Nearest upsampling by the stitch's ratio r onto the receiver's size: receiver pixel i
 * reads pixel min(floor(i / r), h - 1). Where r * h falls short of the receiver, the last
 * row/column is first repeated (a Gather on the small image: edge replication commutes with
 * the 1x1 map, as upsampling does, so mapping first stays exact; zeros would not, they
 * would leave the bias alone there); where it overshoots, the result is cropped.
 * `out` names the result.
 */
function upsample(g: Graph, s: StitchSpec, x: string, out?: string): string {
  const small = coreFrom(s).slice(1);
  const large = coreTo(s).slice(1);
  const r = s.ratio;
  let t = x;
  small.forEach((h, d) => {
    const extra = edgeFor(h, large[d]!, r);
    if (!extra) return;
    const name = `stitch.edge${d}`;
    g.initializers.set(`${name}.index`, int64([h + extra], [...Array.from({ length: h }, (_, i) => i), ...new Array<number>(extra).fill(h - 1)]));
    g.nodes.push(node('Gather', name, [t, `${name}.index`], name, { axis: int(2 + d) }));
    t = name;
  });
  const grown = small.map((h, d) => (h + edgeFor(h, large[d]!, r)) * r);
  const crop = grown.some((v, d) => v !== large[d]);
  const up = crop ? 'stitch.up' : (out ?? 'stitch.up');
  g.initializers.set('stitch.up.scales', float32([4], [1, 1, r, r]));
  g.nodes.push(
    node('Resize', 'stitch.up', [t, '', 'stitch.up.scales'], up, {
      mode: str('nearest'),
      coordinate_transformation_mode: str('asymmetric'),
      nearest_mode: str('floor'),
    }),
  );
  if (!crop) return up;
  g.initializers.set('stitch.crop.starts', int64([2], [0, 0]));
  g.initializers.set('stitch.crop.ends', int64([2], large));
  g.initializers.set('stitch.crop.axes', int64([2], [2, 3]));
  g.nodes.push(node('Slice', 'stitch.crop', [up, 'stitch.crop.starts', 'stitch.crop.ends', 'stitch.crop.axes'], out ?? 'stitch.crop', {}));
  return out ?? 'stitch.crop';
}

function convAttrs(s: StitchSpec, k: number): Node['attributes'] {
  const [a, b] = [coreFrom(s), coreTo(s)];
  const pads = s.kind === 'downsample' ? [0, 0, padFor(a[1]!, b[1]!, k), padFor(a[2]!, b[2]!, k)] : [0, 0, 0, 0];
  return { kernel_shape: ints([k, k]), strides: ints([k, k]), pads: ints(pads), dilations: ints([1, 1]), group: int(1) };
}

function batchNorm(g: Graph, x: string, p: string, out = p): string {
  g.nodes.push(
    node('BatchNormalization', p, [x, `${p}.weight`, `${p}.bias`, `${p}.running_mean`, `${p}.running_var`], out, {
      epsilon: float(1e-5),
      momentum: float(0.9),
    }),
  );
  return out;
}

function node(opType: string, name: string, inputs: string[], output: string, attributes: Node['attributes']): Node {
  return { name, opType, inputs, outputs: [output], attributes };
}
