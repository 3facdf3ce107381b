/**
 * GoogLeNet for small images (kuangliu/pytorch-cifar): a 3x3 conv stem of 192 channels,
 * Inception modules a3 b3, max pool, a4..e4, max pool, a5 b5, then global average pool
 * and Linear. Each module concatenates four branches on channels: 1x1; 1x1 -> 3x3;
 * 1x1 -> 3x3 -> 3x3 (standing in for 5x5); 3x3 max pool -> 1x1.
 */
import type { CutPoint } from '../../onnx/metadata.js';
import type { GraphBuilder, TensorHandle } from '../builder.js';
import { type Arch, convBnRelu, cut, poolAndClassify } from './common.js';

/** [1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection] output channels */
type ModuleCfg = readonly [number, number, number, number, number, number];

const MODULES: readonly (readonly [string, ModuleCfg] | 'pool')[] = [
  ['a3', [64, 96, 128, 16, 32, 32]],
  ['b3', [128, 128, 192, 32, 96, 64]],
  'pool',
  ['a4', [192, 96, 208, 16, 48, 64]],
  ['b4', [160, 112, 224, 24, 64, 64]],
  ['c4', [128, 128, 256, 24, 64, 64]],
  ['d4', [112, 144, 288, 32, 64, 64]],
  ['e4', [256, 160, 320, 32, 128, 128]],
  'pool',
  ['a5', [256, 160, 320, 32, 128, 128]],
  ['b5', [384, 192, 384, 48, 128, 128]],
];

/** Conv(k, pad k/2) + BN + ReLU named as entries i, i+1, i+2 of a PyTorch nn.Sequential. */
function seqConv(b: GraphBuilder, x: TensorHandle, out: number, kernel: number, prefix: string, i: number): TensorHandle {
  return convBnRelu(b, x, { out, kernel, pad: (kernel - 1) / 2 }, [`${prefix}.${i}`, `${prefix}.${i + 1}`, `${prefix}.${i + 2}`]);
}

function inceptionModule(b: GraphBuilder, x: TensorHandle, cfg: ModuleCfg, name: string): TensorHandle {
  const [n1, r3, n3, r5, n5, np] = cfg;
  const b1 = seqConv(b, x, n1, 1, `${name}.b1`, 0);
  const b2 = seqConv(b, seqConv(b, x, r3, 1, `${name}.b2`, 0), n3, 3, `${name}.b2`, 3);
  let b3 = seqConv(b, x, r5, 1, `${name}.b3`, 0);
  b3 = seqConv(b, seqConv(b, b3, n5, 3, `${name}.b3`, 3), n5, 3, `${name}.b3`, 6);
  const pooled = b.maxPool(x, { kernel: 3, stride: 1, pad: 1 }, `${name}.b4.0`);
  const b4 = seqConv(b, pooled, np, 1, `${name}.b4`, 1);
  return b.concat([b1, b2, b3, b4], 1, `${name}.concat`);
}

export const inception: Arch = ({ b, x, classes, ch }) => {
  let h = seqConv(b, x, ch(192), 3, 'pre_layers', 0);
  const cuts: CutPoint[] = [cut('stem', h, 'stem')];
  let stage = 3;
  for (const m of MODULES) {
    if (m === 'pool') {
      h = b.maxPool(h, { kernel: 3, stride: 2, pad: 1 }, `maxpool${stage++}`);
      continue;
    }
    const [name, cfg] = m;
    h = inceptionModule(b, h, cfg.map(ch) as unknown as ModuleCfg, name);
    cuts.push(cut(name, h, 'block'));
  }
  const head = poolAndClassify(b, h, classes, 'fc');
  cuts.push(cut('features', head.features, 'features'));
  return { logits: head.logits, cuts };
};
