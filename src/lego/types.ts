/**
 * Domain types of Model LEGO disassembly (spec lego.md sections 1-4): thresholds,
 * options, per-layer masks and the component a disassembly produces.
 */
import type { Model } from '../onnx/types.js';
import type { SessionOptions } from '../runtime/session.js';

/** Mask thresholds (spec section 3): alpha on normalised contributions, beta on normalised sums. */
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
 * Training images of the task's classes used to re-estimate a component's BatchNorm
 * running statistics (src/autodiff/batchnorm-stats.ts); 0 keeps the parent's.
 */
export const DEFAULT_BATCHNORM_SAMPLES = 2048;

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
  /**
   * re-estimate the component's BatchNorm running statistics on this many training
   * images of the task's classes (default DEFAULT_BATCHNORM_SAMPLES); 0 keeps the
   * parent's statistics, so that the component is exactly the masked parent
   */
  batchNormSamples?: number;
  /** seeds which images re-estimate BatchNorm statistics (default 0) */
  seed?: number;
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
}
