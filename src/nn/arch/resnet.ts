/**
 * ResNets for small images (kuangliu/pytorch-cifar): a 3x3 stride-1 stem without max
 * pooling, four stages of 64/128/256/512 channels with strides 1/2/2/2, a 1x1
 * convolution + BatchNorm shortcut wherever the shape changes, then global average pool
 * and Linear. Parameter names follow torchvision (`layer1.0.conv1`, `downsample`, `fc`).
 */
import type { CutPoint } from '../../onnx/metadata.js';
import type { GraphBuilder, TensorHandle } from '../builder.js';
import { type Arch, type ArchContext, convBnRelu, cut, poolAndClassify } from './common.js';

interface BlockSpec {
  planes: number;
  stride: number;
  name: string;
}

type Block = (b: GraphBuilder, x: TensorHandle, s: BlockSpec) => TensorHandle;

/** Identity when the shape is kept, else a strided 1x1 conv + BN projection. */
function shortcut(b: GraphBuilder, x: TensorHandle, out: number, stride: number, name: string): TensorHandle {
  if (stride === 1 && x.shape[0] === out) return x;
  const conv = b.conv(x, { out, kernel: 1, stride, bias: false }, `${name}.downsample.0`);
  return b.batchNorm(conv, `${name}.downsample.1`);
}

const basic: Block = (b, x, { planes, stride, name }) => {
  const h = convBnRelu(b, x, { out: planes, kernel: 3, stride, pad: 1, bias: false }, [`${name}.conv1`, `${name}.bn1`, `${name}.relu1`]);
  const y = b.batchNorm(b.conv(h, { out: planes, kernel: 3, pad: 1, bias: false }, `${name}.conv2`), `${name}.bn2`);
  return b.relu(b.add(y, shortcut(b, x, planes, stride, name), `${name}.add`), `${name}.relu2`);
};

export const BOTTLENECK_EXPANSION = 4;

const bottleneck: Block = (b, x, { planes, stride, name }) => {
  const out = planes * BOTTLENECK_EXPANSION;
  let h = convBnRelu(b, x, { out: planes, kernel: 1, bias: false }, [`${name}.conv1`, `${name}.bn1`, `${name}.relu1`]);
  h = convBnRelu(b, h, { out: planes, kernel: 3, stride, pad: 1, bias: false }, [`${name}.conv2`, `${name}.bn2`, `${name}.relu2`]);
  const y = b.batchNorm(b.conv(h, { out, kernel: 1, bias: false }, `${name}.conv3`), `${name}.bn3`);
  return b.relu(b.add(y, shortcut(b, x, out, stride, name), `${name}.add`), `${name}.relu3`);
};

const STAGE_PLANES = [64, 128, 256, 512] as const;
const STAGE_STRIDES = [1, 2, 2, 2] as const;

function resnetWith(block: Block, fixedBlocks?: readonly number[]): Arch {
  return ({ b, x, classes, ch, blocks }: ArchContext) => {
    const counts = fixedBlocks ?? blocks ?? [2, 2, 2, 2];
    let h = convBnRelu(b, x, { out: ch(64), kernel: 3, pad: 1, bias: false }, ['conv1', 'bn1', 'stem.relu']);
    const cuts: CutPoint[] = [cut('stem', h, 'stem')];
    counts.forEach((n, s) => {
      for (let i = 0; i < n; i++) {
        const name = `layer${s + 1}.${i}`;
        h = block(b, h, { planes: ch(STAGE_PLANES[s]!), stride: i === 0 ? STAGE_STRIDES[s]! : 1, name });
        cuts.push(cut(name, h, 'block'));
      }
    });
    const head = poolAndClassify(b, h, classes, 'fc');
    cuts.push(cut('features', head.features, 'features'));
    return { logits: head.logits, cuts };
  };
}

export const resnet = resnetWith(basic);
export const resnet18 = resnetWith(basic, [2, 2, 2, 2]);
export const resnet34 = resnetWith(basic, [3, 4, 6, 3]);
export const resnet50 = resnetWith(bottleneck, [3, 4, 6, 3]);
