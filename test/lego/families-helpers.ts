/** Shared by the family tests: the torchvision fixtures, random kept-channel masks, 3-channel data. */
import { readdirSync } from 'node:fs';
import type { ChannelGraph, SpaceMasks } from '../../src/lego/channels.js';
import { closeKeep, findSpace } from '../../src/lego/channels.js';
import type { Model } from '../../src/onnx/types.js';
import { int, ints } from '../../src/onnx/graph.js';
import { int64 } from '../../src/onnx/tensor.js';
import { Rng } from '../../src/util/random.js';
import { fixture } from '../helpers/paths.js';
import { buildModel, node, randn, vi } from '../helpers/graphs.js';

/** fixtures/torchvision/*.onnx (small members of 14 torchvision families) and fixtures/torch/*.onnx. */
export const TV_FIXTURES = readdirSync(fixture('torchvision'))
  .filter((f) => f.endsWith('.onnx'))
  .sort()
  .map((f) => fixture('torchvision', f));
export const TORCH_FIXTURES = readdirSync(fixture('torch'))
  .filter((f) => f.endsWith('.onnx'))
  .sort()
  .map((f) => fixture('torch', f));

/**
 * A random kept set: every space that may be pruned keeps each channel with probability
 * `p` (at least one), fixed spaces stay whole, grouped convolutions' groups are closed.
 */
export function randomKeep(cg: ChannelGraph, seed: number, p = 0.5): SpaceMasks {
  const rng = new Rng(seed);
  const keep: SpaceMasks = new Map();
  cg.spaces.forEach((s, id) => {
    if (findSpace(cg, id) !== id) return;
    const m = new Uint8Array(s.size);
    if (s.fixed) m.fill(1);
    else {
      for (let k = 0; k < s.size; k++) m[k] = rng.next() < p ? 1 : 0;
      m[rng.int(s.size)] = 1;
    }
    keep.set(id, m);
  });
  closeKeep(cg, keep);
  return keep;
}

/** Every channel kept. */
export function allKept(cg: ChannelGraph): SpaceMasks {
  const keep: SpaceMasks = new Map();
  cg.spaces.forEach((s, id) => {
    if (findSpace(cg, id) === id) keep.set(id, new Uint8Array(s.size).fill(1));
  });
  return keep;
}

/** The file's base name without .onnx, for test titles. */
export const nameOf = (file: string): string =>
  file
    .split('/')
    .pop()!
    .replace(/\.onnx$/, '');

/** A Split of the channels (chunk as newer exporters write it), one part through a conv, concatenated back. */
export function splitNet(sizes: number[] | undefined, seed = 3): Model {
  const rng = new Rng(seed);
  const parts = sizes?.length ?? 2;
  const first = sizes?.[0] ?? 4;
  return buildModel({
    inputs: [vi('input', ['N', 3, 4, 4])],
    outputs: ['logits'],
    initializers: {
      w1: randn(rng, [8, 3, 3, 3]),
      wa: randn(rng, [5, first, 1, 1]),
      w2: randn(rng, [6, 5 + 8 - first, 1, 1]),
      fc: randn(rng, [5, 6]),
      ...(sizes ? { sizes: int64([sizes.length], sizes) } : {}),
    },
    nodes: [
      node('Conv', ['input', 'w1'], ['c1'], { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]) }, 'c1'),
      node('Relu', ['c1'], ['r1'], {}, 'r1'),
      node(
        'Split',
        sizes ? ['r1', 'sizes'] : ['r1'],
        Array.from({ length: parts }, (_, k) => `part${k}`),
        { axis: int(1) },
        'chunk',
      ),
      node('Conv', ['part0', 'wa'], ['ca'], { kernel_shape: ints([1, 1]) }, 'ca'),
      node('Concat', ['ca', ...Array.from({ length: parts - 1 }, (_, k) => `part${k + 1}`)], ['joined'], { axis: int(1) }, 'join'),
      node('Conv', ['joined', 'w2'], ['c2'], { kernel_shape: ints([1, 1]) }, 'c2'),
      node('GlobalAveragePool', ['c2'], ['gap'], {}, 'gap'),
      node('Flatten', ['gap'], ['flat'], { axis: int(1) }, 'flat'),
      node('Gemm', ['flat', 'fc'], ['logits'], { transB: int(1) }, 'fc'),
    ],
  });
}
