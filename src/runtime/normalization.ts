import type { Model } from '../onnx/types.js';
import { getInputSpec } from '../onnx/metadata.js';
import type { Normalization } from '../data/types.js';
import { broadcastNormalization } from '../data/augment.js';

export interface ResolvedNormalization {
  normalization: Normalization;
  /** where it came from, to print: "model metadata", "--mean/--std", "none" */
  from: string;
}

/**
 * The input normalisation to feed a model: explicit --mean/--std win, then the model's
 * metadata, else none (and the caller says so). Lists of length 1 are broadcast to all
 * channels; other lengths must equal the channel count.
 */
export function resolveNormalization(model: Model, channels: number, explicit?: { mean?: number[]; std?: number[] }): ResolvedNormalization {
  if (explicit?.mean || explicit?.std) {
    const norm = { mean: explicit.mean ?? [0], std: explicit.std ?? [1] };
    return { normalization: broadcastNormalization(norm, channels, { mean: '--mean', std: '--std' }), from: '--mean/--std' };
  }
  const spec = getInputSpec(model);
  if (spec?.mean && spec.std) {
    const norm = broadcastNormalization({ mean: spec.mean, std: spec.std }, channels, { mean: 'model metadata mean', std: 'model metadata std' });
    return { normalization: norm, from: 'model metadata' };
  }
  return { normalization: { mean: new Array(channels).fill(0), std: new Array(channels).fill(1) }, from: 'none (the model carries no normalisation; pass --mean/--std if it expects one)' };
}
