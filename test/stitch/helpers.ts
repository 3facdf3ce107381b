/** Tiny trained models for the stitching tests: a few SGD steps on three sample classes. */
import { join } from 'node:path';
import { openDataset } from '../../src/data/resolve.js';
import { createZooModel } from '../../src/nn/zoo.js';
import { loadModel } from '../../src/onnx/proto.js';
import type { Model } from '../../src/onnx/types.js';
import { train } from '../../src/autodiff/train.js';
import { tempDir } from '../helpers/paths.js';

export const CLASSES = [0, 1, 2];

/** ResNet(1,1,1,1) width 0.125 with 3 outputs (classes 0-2), trained for one short epoch; written to a temp folder. */
export async function tinyTrained(seed: number, dir = tempDir('stitch-test-')): Promise<{ file: string; model: Model }> {
  const file = join(dir, `r${seed}.onnx`);
  await train({
    model: createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.125, classes: 3, seed }),
    data: await openDataset('fashion-mnist-sample', 'train'), classes: CLASSES, epochs: 1, batchSize: 64, lr: 0.05,
    optimizer: { kind: 'sgd', momentum: 0.9, weightDecay: 5e-4 }, schedule: { kind: 'constant' }, seed, validation: 0.1,
    output: file, session: { threads: 1 },
  });
  return { file, model: loadModel(file) };
}
