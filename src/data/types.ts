/** The data layer's domain types, shared by loaders, the runtime and the applications. */

/** Channel-first image shape [C, H, W]. */
export type ImageShape = readonly [number, number, number];

/**
 * A labelled image dataset with random access. Implementations read lazily from disk or
 * hold the compact encoded form (uint8 pixels); float batches are made on demand.
 */
export interface Dataset {
  /** e.g. "fashion-mnist" */
  readonly name: string;
  /** "train" | "test" | ... */
  readonly split: string;
  /** Human-readable statement of which files were used (printed and put in JSON results). */
  readonly source: string;
  readonly shape: ImageShape;
  /** number of classes of the dataset (labels are in [0, classes)) */
  readonly classes: number;
  readonly classNames?: readonly string[];
  /**
   * For models that carry no label metadata: output i stands for class outputLabels[i]
   * (-1: none of this dataset's). Set by a view's `labels` (the `--labels` flag).
   */
  readonly outputLabels?: readonly number[];
  readonly size: number;
  label(i: number): number;
  /**
   * Writes images `indices` as float32 CHW in [0, 1] into `out`, one after another
   * (out.length >= indices.length * C*H*W).
   */
  read(indices: readonly number[], out: Float32Array): Promise<void>;
}

/** Per-channel input normalisation: x' = (x - mean[c]) / std[c]. */
export interface Normalization {
  mean: number[];
  std: number[];
}

export interface Augmentation {
  /** random crop with this much zero padding on each side (0 = off) */
  cropPadding?: number;
  /** random horizontal flip with probability 0.5 */
  flip?: boolean;
}

export interface Batch {
  /** normalised float32 NCHW */
  x: Float32Array;
  /** dataset labels */
  labels: Int32Array;
  /** dataset indices of the batch's images */
  indices: Int32Array;
  /** number of images in the batch (the last batch may be smaller) */
  size: number;
}

export interface BatchOptions {
  batchSize: number;
  shuffle?: boolean;
  seed?: number;
  /** drop the last incomplete batch (training) */
  dropLast?: boolean;
  normalization?: Normalization;
  augmentation?: Augmentation;
  /** only these dataset indices (e.g. a class subset, or a validation split) */
  indices?: readonly number[];
}
