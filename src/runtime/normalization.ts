import type { Model } from '../onnx/types.js';
import { getInputSpec } from '../onnx/metadata.js';
import type { Normalization } from '../data/types.js';
import { broadcastNormalization } from '../data/augment.js';
import { defaultNormalization } from '../data/known.js';
import { warn } from '../util/progress.js';

export interface ResolvedNormalization {
  normalization: Normalization;
  /** where it came from, to print: "model metadata", "--mean/--std", "dataset statistics", "none" */
  from: 'model metadata' | '--mean/--std' | 'dataset statistics' | 'none';
}

export interface NormalizationFallback {
  /**
   * When neither the caller nor the model gives one: 'none' feeds raw [0, 1] pixels and
   * warns (evaluation, analysis); 'dataset' uses the dataset's standard statistics
   * (training from scratch, where the model will record what it was trained with).
   */
  fallback?: 'none' | 'dataset';
  /** the dataset's name, for 'dataset' */
  dataset?: string;
  /** names the model in the warning */
  file?: string;
}

/** Models already warned about (one warning per model per process). */
const warned = new Set<string>();

/**
 * The input normalisation to feed a model: explicit --mean/--std (or a --norm preset,
 * which the CLI turns into them) win, then the model's metadata, else the fallback.
 * Lists of length 1 are broadcast to all channels; other lengths must equal the channel
 * count.
 *
 * @example
 *   resolveNormalization(model, 3, {}, { fallback: 'dataset', dataset: 'cifar10' }).normalization;
 */
export function resolveNormalization(
  model: Model,
  channels: number,
  explicit?: { mean?: number[]; std?: number[] },
  opts: NormalizationFallback = {},
): ResolvedNormalization {
  if (explicit?.mean || explicit?.std) {
    const norm = { mean: explicit.mean ?? [0], std: explicit.std ?? [1] };
    return { normalization: broadcastNormalization(norm, channels, 'options'), from: '--mean/--std' };
  }
  const spec = getInputSpec(model);
  if (spec?.mean && spec.std) {
    const norm = broadcastNormalization({ mean: spec.mean, std: spec.std }, channels, { mean: 'model metadata mean', std: 'model metadata std' });
    return { normalization: norm, from: 'model metadata' };
  }
  if (opts.fallback === 'dataset' && opts.dataset !== undefined) {
    return { normalization: defaultNormalization(opts.dataset, channels), from: 'dataset statistics' };
  }
  const file = opts.file ?? 'a model';
  if (!warned.has(file)) {
    warned.add(file);
    warn(
      `${file} carries no input normalisation and none was given: feeding raw [0, 1] pixels; if it expects normalised inputs pass --mean/--std or --norm imagenet|dataset`,
    );
  }
  return { normalization: { mean: new Array(channels).fill(0), std: new Array(channels).fill(1) }, from: 'none' };
}
