/** Tiny trained models for the stitching tests: a few SGD steps on three sample classes. */
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Rng } from '../../src/util/random.js';
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
    data: await openDataset('fashion-mnist-sample', 'train'),
    classes: CLASSES,
    epochs: 1,
    batchSize: 64,
    lr: 0.05,
    optimizer: { kind: 'sgd', momentum: 0.9, weightDecay: 5e-4 },
    schedule: { kind: 'constant' },
    seed,
    validation: 0.1,
    output: file,
    session: { threads: 1 },
  });
  return { file, model: loadModel(file) };
}

/**
 * A tiny CIFAR-10-format dataset (3x32x32, 10 classes) in `dir`: `train` images spread
 * over the five training files and `test` images in the test file; each class has its
 * own mean colour plus seeded noise. Returns the `--data` spec (`cifar10:<dir>`).
 */
export function tinyCifar(dir: string, train = 60, test = 30, seed = 1): string {
  mkdirSync(dir, { recursive: true });
  const rng = new Rng(seed);
  const record = (label: number): Buffer => {
    const b = Buffer.alloc(1 + 3072);
    b[0] = label;
    for (let c = 0; c < 3; c++) {
      const mean = 40 + ((label * (c + 3) * 37) % 180);
      for (let p = 0; p < 1024; p++) b[1 + c * 1024 + p] = Math.max(0, Math.min(255, Math.round(mean + 40 * rng.normal())));
    }
    return b;
  };
  const file = (name: string, n: number, offset: number): void => {
    writeFileSync(join(dir, name), Buffer.concat(Array.from({ length: n }, (_, i) => record((offset + i) % 10))));
  };
  const per = Math.ceil(train / 5);
  for (let k = 0; k < 5; k++) file(`data_batch_${k + 1}.bin`, Math.max(1, Math.min(per, train - k * per)), k * per);
  file('test_batch.bin', test, 0);
  return `cifar10:${dir}`;
}
