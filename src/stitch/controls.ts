/**
 * The random networks of the controls: the same architecture as a trained network,
 * freshly initialised from a seed. Zoo models are recreated from their architecture
 * metadata (the zoo's own seeded init); any other model keeps its graph and gets new
 * weights drawn like the zoo's (Kaiming normal for kernels and matrices, zero biases,
 * BatchNorm scale 1 / shift 0 / running statistics 0 and 1; LayerNorm 1 / 0; learned
 * embeddings such as a ViT's class token and position embedding N(0, 0.02^2), as
 * torchvision initialises them).
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
export type RandomBatchNorm = (typeof RANDOM_BATCHNORM)[number];

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
    ...opts.session,
    samples: opts.samples ?? 2048,
    seed: hashSeed(seed, 'batchnorm'),
    ...(opts.normalization ? { mean: opts.normalization.mean, std: opts.normalization.std } : {}),
  });
  return r.model;
}

export type PairKind = 'trained' | 'random-sender' | 'random-receiver' | 'random-both';
export const PAIR_KINDS: readonly PairKind[] = ['trained', 'random-sender', 'random-receiver', 'random-both'];

/** A row/column title for each kind (sender -> receiver). */
export const PAIR_TITLES: Record<PairKind, string> = {
  trained: 'trained -> trained',
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
  const same =
    [...fresh.graph.initializers].every(([k, t]) => model.graph.initializers.get(k)?.data.length === t.data.length) &&
    fresh.graph.initializers.size === model.graph.initializers.size &&
    [...tensorNames(fresh.graph)].every((n) => names.has(n));
  return same ? fresh : undefined;
}

/** What an initializer is to its network, and how a random counterpart draws it. */
type Role = 'matrix' | 'matrix-in-rows' | 'bias' | 'one' | 'zero' | 'embedding';

/**
 * The role of each input of the operators that hold parameters: weights get Kaiming
 * normal (fan-in from the right axis: MatMul's weight is [in, out]), biases and shifts 0,
 * scales 1; LayerNormalization scale 1 and bias 0.
 */
const PARAM_ROLES: Record<string, (Role | undefined)[]> = {
  Conv: [undefined, 'matrix', 'bias'],
  ConvTranspose: [undefined, 'matrix', 'bias'],
  Gemm: [undefined, 'matrix', 'bias'],
  MatMul: [undefined, 'matrix-in-rows'],
  BatchNormalization: [undefined, 'one', 'zero', 'zero', 'one'],
  LayerNormalization: [undefined, 'one', 'zero'],
  InstanceNormalization: [undefined, 'one', 'zero'],
};

function reinitialise(model: Model, seed: number): Model {
  const m = cloneModel(model);
  const role = new Map<string, Role>();
  const data = new Set(m.graph.nodes.flatMap((n) => n.outputs));
  for (const inp of m.graph.inputs) data.add(inp.name);
  for (const n of m.graph.nodes) {
    const roles = PARAM_ROLES[n.opType];
    if (roles)
      n.inputs.forEach((t, i) => {
        if (t && roles[i] && !role.has(t)) role.set(t, roles[i]!);
      });
    // a MatMul with its weight first (W x)
    if (n.opType === 'MatMul' && n.inputs[0] && m.graph.initializers.has(n.inputs[0]) && !role.has(n.inputs[0])) role.set(n.inputs[0], 'matrix');
  }
  for (const n of m.graph.nodes) {
    // what a layer adds or prepends without a weight op: biases (vectors) and learned
    // embeddings (a ViT's position embedding, a class token expanded to the batch)
    if (n.opType !== 'Add' && n.opType !== 'Expand') continue;
    const touchesData = n.inputs.some((t) => data.has(t));
    for (const t of n.inputs) {
      const init = m.graph.initializers.get(t);
      if (!init || init.dtype !== 'float32' || role.has(t) || numel(init.dims) < 2) continue;
      if (n.opType === 'Add' && touchesData) role.set(t, init.dims.filter((d) => d > 1).length <= 1 ? 'bias' : 'embedding');
      if (n.opType === 'Expand') role.set(t, 'embedding');
    }
  }
  // the layout of a weight decides its fan-in: a Gemm without transB holds it as [in, out], like MatMul's
  const inRows = new Set(m.graph.nodes.filter((n) => n.opType === 'Gemm' && (n.attributes['transB']?.value ?? 0) === 0).map((n) => n.inputs[1]));
  for (const [name, t] of m.graph.initializers) {
    const r = role.get(name);
    // shape constants, GELU's constants, layer scales and the like are structure, not drawn weights
    if (t.dtype !== 'float32' || !r) continue;
    let values: Float32Array;
    if (r === 'one' || r === 'zero' || r === 'bias') values = new Float32Array(numel(t.dims)).fill(r === 'one' ? 1 : 0);
    else if (r === 'embedding') values = initValues({ kind: 'kaimingNormal', fanIn: 1, gain: 0.02 }, t.dims, seed, name);
    else if (t.dims.length < 2) values = new Float32Array(numel(t.dims));
    else {
      const rowsIn = r === 'matrix-in-rows' || inRows.has(name);
      const fanIn = rowsIn ? t.dims[t.dims.length - 2]! : numel(t.dims.slice(1));
      values = initValues({ kind: 'kaimingNormal', fanIn }, t.dims, seed, name);
    }
    m.graph.initializers.set(name, float32(t.dims, values));
  }
  return m;
}
