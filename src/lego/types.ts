/**
 * Domain types of Model LEGO disassembly (docs/lego-method.md §1-§4): thresholds,
 * options, per-layer masks and the component a disassembly produces.
 */
import type { Model } from '../onnx/types.js';
import type { SessionOptions } from '../runtime/session.js';
import type { FlattenMode } from './masks.js';
import type { RecalibratedLayer, RecalibrationMode } from './recalibrate.js';
import type { SampleRanking } from './samples.js';
import type { ClassAccuracy } from './score.js';

/** Mask thresholds (docs/lego-method.md §3): alpha on normalised contributions, beta on normalised sums. */
export interface Thresholds {
  alphaConv: number;
  betaConv: number;
  alphaLinear: number;
  betaLinear: number;
}

export const DEFAULT_THRESHOLDS: Readonly<Thresholds> = { alphaConv: 0.3, betaConv: 0.2, alphaLinear: 0.4, betaLinear: 0.3 };

/** The reference's default number of representative samples per class. */
export const DEFAULT_SAMPLES_PER_CLASS = 10;

/**
 * Training images of the task's classes that recalibrate a component (recalibrate.ts, or
 * its BatchNorm statistics with recalibration 'batchnorm'); 0 recalibrates nothing.
 */
export const DEFAULT_RECALIBRATION_SAMPLES = 2048;

/**
 * How the classifier's mask crosses a Flatten of a spatial map by default. Measured on
 * the PyTorch VGG-style exports, the fine-tuned vgg_small fixture and LeNet-5 (README,
 * README "Model LEGO on the models users bring"): pruning there starved whole classes, keeping (the official
 * behaviour) did not and cost little size.
 */
export const DEFAULT_FLATTEN: FlattenMode = 'keep';

/** Held-out training images per class that check a component (never the test split). */
export const DEFAULT_VALIDATION_PER_CLASS = 200;

/**
 * A class whose k-way accuracy on the held-out images falls more than this below the
 * base model's k-way accuracy on the same images (or below half of it) has collapsed; its
 * masks are relaxed. 0.2: the collapses this exists for leave a class near 0%, while
 * confusable classes (shirt, pullover, coat) trade 10 points between them, and relaxing
 * those only grew the component (LeNet-5 {3-9}: 16.6k -> 43.2k parameters for +1 point,
 * README "Model LEGO on the models users bring").
 */
export const DEFAULT_CLASS_DROP = 0.2;

/**
 * The default accuracy guard: when the component at the reference thresholds (after the
 * class check) is more than this below the base's k-way accuracy on the held-out images,
 * every threshold is lowered together (the --max-drop search, downwards only) to the
 * smallest component within it. 0.02 on held-out training images keeps components within
 * 3 points of base k-way on the test split where the reference thresholds alone lost 13
 * (a narrow ResNet-50, task {3-9}; README "Model LEGO on the models users bring").
 */
export const DEFAULT_ACCURACY_GUARD = 0.02;

export interface UnbalancedCounts {
  /** each class gets a random count in [lo, hi] (inclusive), drawn from `seed` */
  lo: number;
  hi: number;
  seed: number;
}

export interface DisassembleOptions extends Partial<Thresholds> {
  /** original class ids (model output indices / dataset label ids) */
  task: number[];
  samplesPerClass?: number;
  unbalanced?: UnbalancedCounts;
  batchSize?: number;
  mean?: number[];
  std?: number[];
  session?: SessionOptions;
  /** how the pruned component is recalibrated (default 'affine', see recalibrate.ts) */
  recalibration?: RecalibrationMode;
  /**
   * training images of the task's classes (held-out images excluded) that recalibrate the
   * component (default DEFAULT_RECALIBRATION_SAMPLES); 0 recalibrates nothing, so that the
   * component is exactly the masked parent
   */
  recalibrationSamples?: number;
  /** how the classifier's mask crosses a Flatten (default DEFAULT_FLATTEN) */
  flatten?: FlattenMode;
  /** how representative samples are ranked (default 'float32', the official behaviour) */
  ranking?: SampleRanking;
  /** held-out training images per class for the class check and --max-drop (default DEFAULT_VALIDATION_PER_CLASS; 0: no check) */
  validationPerClass?: number;
  /** per-class k-way accuracy drop (vs the base, held-out images) that counts as a collapse (default DEFAULT_CLASS_DROP) */
  classDrop?: number;
  /**
   * accuracy-targeted disassembly: the smallest component (thresholds scaled together)
   * whose k-way accuracy on the held-out images is at most this far below the base's
   */
  maxDrop?: number;
  /**
   * with the reference thresholds (no maxDrop): the largest held-out k-way accuracy drop vs
   * the base accepted before all thresholds are lowered together (default
   * DEFAULT_ACCURACY_GUARD; 1 turns the guard off)
   */
  guard?: number;
  /** seeds the held-out images and the recalibration images (default 0) */
  seed?: number;
  /** the parent's file name, for messages */
  file?: string;
  /** sha256 of the parent model file, for provenance (default: hash of the model's encoding) */
  parentHash?: string;
  /** label for progress lines (default 'disassemble'); '' for none */
  label?: string;
}

/** Which channels (or features) a mask keeps: ascending indices. */
export type ChannelList = number[];

/** The masks of one layer (a Conv, Gemm or MatMul node) over its input and output channels. */
export interface LayerMask {
  /** node name */
  node: string;
  op: string;
  /** input and output tensor names */
  input: string;
  output: string;
  inChannels: number;
  outChannels: number;
  /** per task class (dataset class id): kept input and output channels after propagation */
  perClass: Record<string, { in: ChannelList; out: ChannelList }>;
  /** what the component keeps: union over the task's classes, residual groups and Concat parts resolved */
  task: { in: ChannelList; out: ChannelList };
}

/** Masks of a disassembly, as written to --masks JSON. */
export interface Masks {
  task: number[];
  thresholds: Thresholds;
  /** representative samples used per class */
  samples: Record<string, number>;
  /** how the classifier's mask crossed a Flatten ('prune' or 'keep', see masks.ts) */
  flatten: 'prune' | 'keep';
  /** classes whose masks were relaxed: their own thresholds */
  classThresholds?: Record<string, Thresholds>;
  layers: LayerMask[];
}

/** A disassembled component: a standalone smaller model for `task`. */
export interface Component {
  model: Model;
  /** original class ids, in the order of the component's outputs */
  task: number[];
  masks: Masks;
  warnings: string[];
  /** dataset indices of the representative samples per class, most confident first */
  samples: Record<string, number[]>;
  /** what recalibration actually did */
  recalibration: RecalibrationReport;
  /** the held-out check (absent when it was switched off or the task has one class) */
  validation?: ValidationReport;
  /** accuracy-targeted search (--max-drop) */
  search?: SearchReport;
  /** the input normalisation written into the component's metadata, or null when unknown */
  normalization: { mean: number[]; std: number[]; from: string } | null;
}

export interface RecalibrationReport {
  mode: RecalibrationMode;
  /** images used (0 when nothing was done) */
  samples: number;
  /** affine: the corrected layers */
  layers: RecalibratedLayer[];
  /** batchnorm: BatchNormalization nodes re-estimated */
  batchNormLayers: number;
  /** why nothing was done, when nothing was */
  skipped?: string;
}

export interface RelaxedClass {
  class: number;
  /** k-way accuracy on the held-out images before and after relaxing; the base's */
  before: number;
  after: number;
  base: number;
  /** the class's thresholds in the end */
  thresholds: Thresholds;
  /** relaxation rounds until the component returned (every round relaxes each collapsed class one step) */
  rounds: number;
}

export interface ValidationReport {
  /** held-out training images (task classes, not representative samples, not used for recalibration) */
  samples: number;
  base: ClassAccuracy;
  component: ClassAccuracy;
  classDrop: number;
  relaxed: RelaxedClass[];
  /** classes still below base - classDrop after relaxing as far as it goes */
  collapsed: number[];
}

export interface SearchCandidate {
  /** factor applied to every reference threshold (capped at 0.99); -1: the last resort, every channel a kept output reads */
  scale: number;
  thresholds: Thresholds;
  parameters: number;
  accuracy: number;
  /** within the drop and no collapsed class */
  accepted: boolean;
}

export interface SearchReport {
  /** 'max-drop': the smallest component within maxDrop; 'guard': the reference thresholds lost more than maxDrop, lowered until within it */
  kind: 'max-drop' | 'guard';
  maxDrop: number;
  baseAccuracy: number;
  candidates: SearchCandidate[];
  /** index into candidates of the component returned */
  chosen: number;
}
