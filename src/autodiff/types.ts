/**
 * The contract between the pieces of training: gradient rules (one per operator), the
 * graph differentiator that calls them, the training graph it produces, and the
 * training loop that runs it.
 */
import type { Attribute, Dim, DType, Model, Node, Tensor } from '../onnx/types.js';

/**
 * What a gradient rule sees of one forward node and how it writes backward nodes.
 * Shapes are static (the training graph is built for one batch size), so every
 * shape() is fully numeric for tensors on the differentiated path.
 */
export interface GradContext {
  readonly node: Node;
  /** gradient tensor name for each forward output; undefined when no gradient flows into it */
  readonly dOutputs: readonly (string | undefined)[];
  /** for each forward input: does anything upstream need its gradient? */
  readonly needs: readonly boolean[];
  shape(tensor: string): number[];
  dtype(tensor: string): DType;
  /** the value of a constant tensor (initializer / Constant / folded), if it is one */
  constant(tensor: string): Tensor | undefined;
  /**
   * Appends a node to the backward graph and returns its output names. `outputs` is a
   * count (names are generated from `hint`) or explicit names.
   */
  emit(opType: string, inputs: readonly string[], attributes?: Record<string, Attribute>, outputs?: number, hint?: string): string[];
  /** Adds a constant (initializer) and returns its name. */
  addConstant(value: Tensor, hint: string): string;
  /**
   * Asks that a forward tensor computed inside the forward pass be kept for the backward
   * pass (it already is: forward and backward live in one graph). Returns its name.
   * Rules may also emit extra forward-side nodes (e.g. MaxPool's Indices) through emit.
   */
  forward(tensor: string): string;
  /** Reduces `grad` (of shape `from`) to shape `to` by summing over broadcast axes. */
  unbroadcast(grad: string, from: readonly number[], to: readonly number[]): string;
}

/** The part of GradContext that writes nodes: enough to build gradient subgraphs (and benchmarks). */
export type Emitter = Pick<GradContext, 'emit' | 'addConstant'>;

/**
 * A gradient rule: given the node and the gradients of its outputs, emit nodes that
 * compute the gradient of each input that `needs` asks for; return their names
 * (undefined for inputs that get none).
 */
export type GradRule = (ctx: GradContext) => (string | undefined)[];

export type Loss = 'cross-entropy' | 'mse';

export interface TrainingGraphSpec {
  /** the forward model (inference form, as saved) */
  model: Model;
  /** initializer names to train; every other initializer stays a frozen constant */
  trainable: readonly string[];
  loss: Loss;
  batchSize: number;
  /**
   * 'train': BatchNormalization uses batch statistics and outputs updated running
   * statistics (momentum from the node). 'eval': it uses its running statistics as an
   * affine map (frozen networks, e.g. stitching).
   */
  batchNorm: 'train' | 'eval';
  /** Dropout active (training) or identity. Default: active when batchNorm is 'train'. */
  dropout?: boolean;
  /** named tensors (graph inputs or intermediate) whose gradients are also returned */
  inputGradients?: readonly string[];
}

/** One running-statistics tensor: fed in as `input`, its updated value comes out as `output`. */
export interface StateTensor {
  name: string;
  input: string;
  output: string;
}

export interface TrainingGraph {
  /** one ONNX graph computing loss, logits and gradients (run it with ModelSession) */
  model: Model;
  batchSize: number;
  /** feed names */
  feeds: {
    /** float32 [B, ...input shape] */
    input: string;
    /** cross-entropy: int64 [B] output indices; mse: float32 target of the logits' shape */
    target: string;
  };
  /**
   * Active Dropout nodes: the loop feeds each a keep-mask drawn from its seeded Rng
   * (float32, 0 or 1/(1-ratio)), so that training is deterministic and resumable.
   */
  masks: { input: string; shape: number[]; ratio: number }[];
  /** trainable parameter names; each is also a graph input of the same name */
  parameters: string[];
  /** parameter name -> output name of its gradient */
  gradients: Record<string, string>;
  /** input tensor name -> output name of its gradient (spec.inputGradients) */
  inputGradients: Record<string, string>;
  /** running statistics carried from step to step */
  state: StateTensor[];
  /** output names */
  loss: string;
  logits: string;
}

export type { Dim };
