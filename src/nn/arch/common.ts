/** What every zoo architecture receives and returns, and the layer patterns they share. */
import type { CutPoint } from '../../onnx/metadata.js';
import type { ConvOptions, GraphBuilder, TensorHandle } from '../builder.js';
import type { VitShape } from './vit.js';

export interface ArchContext {
  b: GraphBuilder;
  /** the graph input, [C, H, W] per sample */
  x: TensorHandle;
  classes: number;
  /** a channel or hidden-unit count scaled by the width multiplier */
  ch(count: number): number;
  /** ResNet stage block counts (validated by the registry) */
  blocks?: readonly number[];
  /** MLP hidden layer sizes before width scaling (validated by the registry) */
  hidden?: readonly number[];
  /** ViT structure (validated by the registry; default VIT_DEFAULTS) */
  vit?: VitShape;
}

export interface ArchResult {
  /** the classifier's output, before it is renamed to the graph output `logits` */
  logits: TensorHandle;
  /** stem, blocks and features; the registry appends the logits cut */
  cuts: CutPoint[];
}

export type Arch = (ctx: ArchContext) => ArchResult;

export const cut = (name: string, tensor: TensorHandle, kind: CutPoint['kind']): CutPoint => ({ name, tensor: tensor.name, kind });

/** Width scaling: every count stays at least 1. */
export const scaleWidth =
  (width: number) =>
  (count: number): number =>
    Math.max(1, Math.round(count * width));

/** Conv -> BatchNorm -> ReLU with explicit names for each of the three (PyTorch module paths differ per model). */
export function convBnRelu(b: GraphBuilder, x: TensorHandle, o: ConvOptions, names: [conv: string, bn: string, relu: string]): TensorHandle {
  return b.relu(b.batchNorm(b.conv(x, o, names[0]), names[1]), names[2]);
}

/** Global average pool -> flatten -> Linear with PyTorch's default init: the CIFAR-style head. */
export function poolAndClassify(b: GraphBuilder, x: TensorHandle, classes: number, fc: string): { features: TensorHandle; logits: TensorHandle } {
  const features = b.flatten(b.globalAvgPool(x, 'avgpool'), 'flatten');
  return { features, logits: b.linear(features, classes, fc, { init: 'uniform' }) };
}
