/**
 * The reference algorithm (MoTHer, Horwitz et al. 2025) exactly as specified, as options
 * for recoverLineage/buildForest: RMS distance over the selected layers, kurtosis with a
 * parent expected HIGHER, lambda 0.3, Ward on mean |dW| over all 2-D layers. For LoRA
 * zoos use `{ ...REFERENCE_OPTIONS, mode: 'lowrank' }`; flip with `direction: 'parent-lower'`.
 *
 * @example
 *   const forest = await recoverLineage(['zoo/'], { ...REFERENCE_OPTIONS, clusters: 3 });
 */
import type { LineageOptions } from './recover.js';

export const REFERENCE_OPTIONS = {
  mode: 'ft',
  signal: 'kurtosis',
  direction: 'parent-higher',
  lambda: 0.3,
  clusterDistance: 'reference',
  placement: 'arborescence',
} as const satisfies LineageOptions;
