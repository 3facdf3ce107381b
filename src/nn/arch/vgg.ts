/**
 * VGG with BatchNorm, CIFAR-style (kuangliu/pytorch-cifar): 3x3 convolutions with bias,
 * each followed by BatchNorm and ReLU, 2x2 max pools between stages, then a global
 * average pool and one Linear layer. Layers are numbered as in PyTorch's
 * nn.Sequential (`features.<i>`), so the weights read like a state_dict.
 */
import type { CutPoint } from '../../onnx/metadata.js';
import type { TensorHandle } from '../builder.js';
import { type Arch, cut, poolAndClassify } from './common.js';

type Cfg = readonly (number | 'M')[];

export const VGG_CFG = {
  vgg11: [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
  vgg16: [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'],
} as const satisfies Record<string, Cfg>;

export const vgg =
  (cfg: Cfg): Arch =>
  ({ b, x, classes, ch }) => {
    let h: TensorHandle = x;
    let index = 0;
    const cuts: CutPoint[] = [];
    for (const item of cfg) {
      if (item === 'M') {
        // Small inputs (28x28) run out of spatial size before the last pool; skip it
        // rather than fail. The index still advances so that names match the 32x32 model.
        if (h.shape[1]! >= 2 && h.shape[2]! >= 2) h = b.maxPool(h, { kernel: 2, stride: 2 }, `features.${index}`);
        index += 1;
        cuts.push(cut(`stage${cuts.length}`, h, 'block'));
        continue;
      }
      h = b.conv(h, { out: ch(item), kernel: 3, pad: 1 }, `features.${index}`);
      h = b.batchNorm(h, `features.${index + 1}`);
      h = b.relu(h, `features.${index + 2}`);
      index += 3;
      if (cuts.length === 0) cuts.push(cut('stem', h, 'stem'));
    }
    const head = poolAndClassify(b, h, classes, 'classifier');
    cuts.push(cut('features', head.features, 'features'));
    return { logits: head.logits, cuts };
  };
