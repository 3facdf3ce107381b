/**
 * The random networks of the controls: the same architecture as a trained network,
 * freshly initialised from a seed. Zoo models are recreated from their architecture
 * metadata (the zoo's own seeded init); any other model keeps its graph and gets new
 * weights drawn like the zoo's (Kaiming normal for kernels and matrices, zero biases,
 * BatchNorm scale 1 / shift 0 / running statistics 0 and 1).
 */
import type { Model } from '../onnx/types.js';
import { cloneModel } from '../onnx/graph.js';
import { float32, numel } from '../onnx/tensor.js';
import { getArch, getInputSpec, getLabels, setInputSpec, setLabels, setProvenance } from '../onnx/metadata.js';
import { createZooModel, ZOO } from '../nn/zoo.js';
import { initValues } from '../nn/init.js';
import { tensorNames } from '../onnx/graph.js';
import type { Dataset } from '../data/types.js';
import type { SessionOptions } from '../runtime/session.js';
import { reestimateBatchNorm } from '../autodiff/batchnorm-stats.js';
import { hashSeed } from '../util/random.js';

/**
 * BatchNorm statistics of a random control network: 'data' re-estimates them on
 * training images (the default: a fresh network's 0/1 statistics leave its activations
 * unnormalised and it answers one class whatever it sees; the reference's random
 * networks normalised with batch statistics, since it left them in training mode);
 * 'init' keeps the initial 0/1.
 */
export const RANDOM_BATCHNORM = ['data', 'init'] as const;
export type RandomBatchNorm = typeof RANDOM_BATCHNORM[number];

/**
 * The seed of the random sender or receiver network: one derivation for stitching and
 * CKA grids, so both commands compare the same random networks.
 */
export function controlSeed(seed: number, side: 'sender' | 'receiver'): number {
  return hashSeed(seed, `random-${side}`);
}

export interface RandomControlOptions {
  batchNorm?: RandomBatchNorm;
  /** training images that re-estimate BatchNorm statistics (default 2048) */
  samples?: number;
  /** the input normalisation the network is fed with */
  normalization?: { mean: number[]; std: number[] };
  session?: SessionOptions;
}

/**
 * randomCounterpart, then (by default) BatchNorm statistics re-estimated on `train`.
 *
 * @example const b0 = await randomControl(b, controlSeed(seed, 'receiver'), train);
 */
export async function randomControl(model: Model, seed: number, train: Dataset, opts: RandomControlOptions = {}): Promise<Model> {
  const fresh = randomCounterpart(model, seed);
  if ((opts.batchNorm ?? 'data') === 'init' || !fresh.graph.nodes.some((n) => n.opType === 'BatchNormalization')) return fresh;
  const r = await reestimateBatchNorm(fresh, train, {
    ...opts.session, samples: opts.samples ?? 2048, seed: hashSeed(seed, 'batchnorm'),
    ...(opts.normalization ? { mean: opts.normalization.mean, std: opts.normalization.std } : {}),
  });
  return r.model;
}

export type PairKind = 'trained' | 'random-sender' | 'random-receiver' | 'random-both';
export const PAIR_KINDS: readonly PairKind[] = ['trained', 'random-sender', 'random-receiver', 'random-both'];

/** A row/column title for each kind (sender -> receiver). */
export const PAIR_TITLES: Record<PairKind, string> = {
  'trained': 'trained -> trained',
  'random-sender': 'random -> trained',
  'random-receiver': 'trained -> random',
  'random-both': 'random -> random',
};

/**
 * A freshly initialised network of the same architecture, keeping the original's
 * labels and input normalisation (so it is fed and scored the same way).
 *
 * @example const a0 = randomCounterpart(a, controlSeed(seed, 'sender'));
 */
export function randomCounterpart(model: Model, seed: number): Model {
  const fresh = fromZoo(model, seed) ?? reinitialise(model, seed);
  const labels = getLabels(model);
  if (labels) setLabels(fresh, labels);
  const spec = getInputSpec(model);
  if (spec) setInputSpec(fresh, spec);
  setProvenance(fresh, { operation: 'created', parents: [], seed, control: 'random counterpart' });
  return fresh;
}

function fromZoo(model: Model, seed: number): Model | undefined {
  const arch = getArch(model);
  if (!arch || !Object.hasOwn(ZOO, arch.name)) return undefined;
  const opts: Record<string, unknown> = { seed };
  for (const k of ['blocks', 'hidden', 'width', 'input', 'classes'] as const) if (arch[k] !== undefined) opts[k] = arch[k];
  let fresh: Model;
  try {
    fresh = createZooModel(arch.name, opts);
  } catch {
    return undefined;
  }
  // the zoo must rebuild the very same graph (same tensors, same shapes of weights)
  const names = tensorNames(model.graph);
  const same = [...fresh.graph.initializers].every(([k, t]) => model.graph.initializers.get(k)?.data.length === t.data.length)
    && fresh.graph.initializers.size === model.graph.initializers.size
    && [...tensorNames(fresh.graph)].every((n) => names.has(n));
  return same ? fresh : undefined;
}

const LAYERS = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);

function reinitialise(model: Model, seed: number): Model {
  const m = cloneModel(model);
  const bnRole = new Map<string, number>();
  const learned = new Set<string>();
  for (const n of m.graph.nodes) {
    if (n.opType === 'BatchNormalization') n.inputs.forEach((t, i) => { if (i > 0) bnRole.set(t, i); });
    if (LAYERS.has(n.opType)) n.inputs.slice(1).forEach((t) => learned.add(t));
  }
  for (const [name, t] of m.graph.initializers) {
    // shape constants, scales and the like are structure, not weights
    if (t.dtype !== 'float32' || !(learned.has(name) || bnRole.has(name))) continue;
    const role = bnRole.get(name);
    let values: Float32Array;
    if (role !== undefined) values = new Float32Array(numel(t.dims)).fill(role === 1 || role === 4 ? 1 : 0);
    else if (t.dims.length >= 2) values = initValues({ kind: 'kaimingNormal', fanIn: numel(t.dims.slice(1)) }, t.dims, seed, name);
    else values = new Float32Array(numel(t.dims));
    m.graph.initializers.set(name, float32(t.dims, values));
  }
  return m;
}
