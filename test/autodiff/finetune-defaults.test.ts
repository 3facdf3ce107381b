/**
 * `train <model.onnx>` with default flags fine-tunes a BatchNorm-folded export: a small
 * PyTorch ResNet trained to 84% on Fashion-MNIST and exported as users do (BatchNorm
 * folded into its convolutions, fixtures/finetune) diverges within the first epoch under
 * the from-scratch settings (SGD lr 0.05, no warm-up: the reported "loss is NaN at epoch
 * 1"), and does not under the fine-tuning defaults, which lower its loss on the data it
 * was tuned on and on held-out images.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { runCli, isOneLineError } from '../helpers/cli.js';
import { fixture, tempDir } from '../helpers/paths.js';
import { openModel } from '../../src/onnx/open.js';
import { openDataset } from '../../src/data/resolve.js';
import { loadBatch } from '../../src/data/batches.js';
import { ModelSession } from '../../src/runtime/session.js';
import { FINE_TUNING, FROM_SCRATCH } from '../../src/autodiff/train.js';

const MODEL = fixture('finetune', 'resnet_small_fm.onnx');
const dir = tempDir();
// two epochs of the sample (70 steps): the default schedule's shape, short
const ARGS = ['--data', 'fashion-mnist-sample', '--mean', '0.286', '--std', '0.353', '--epochs', '2', '--no-test', '--threads', '1', '--quiet'];

/** Mean cross-entropy on 500 fixed images of a split of the sample. */
async function loss(file: string, split: 'train' | 'test'): Promise<number> {
  const data = await openDataset('fashion-mnist-sample', split, { announce: false });
  const batch = await loadBatch(
    data,
    Array.from({ length: 500 }, (_, i) => 2 * i),
    { normalization: { mean: [0.286], std: [0.353] } },
  );
  const session = await ModelSession.create(openModel(file), { threads: 1 });
  try {
    const logits = (await session.run({ input: { dims: [500, 1, 28, 28], data: batch.x } }))['logits']!.data as Float32Array;
    let loss = 0;
    for (let n = 0; n < 500; n++) {
      const row = logits.subarray(n * 10, n * 10 + 10);
      const max = Math.max(...row);
      loss += max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) - row[batch.labels[n]!]!;
    }
    return loss / 500;
  } finally {
    await session.release();
  }
}

test('fine-tuning defaults are gentler than the from-scratch ones', () => {
  assert.ok(FINE_TUNING.lr.sgd < FROM_SCRATCH.lr.sgd && FINE_TUNING.lr.adam < FROM_SCRATCH.lr.adam);
});

test('the from-scratch settings diverge on the folded export (the reported failure)', () => {
  const r = runCli(['train', MODEL, ...ARGS, '--lr', String(FROM_SCRATCH.lr.sgd), '--warmup', '0', '-o', join(dir, 'scratch.onnx')]);
  assert.ok(isOneLineError(r) && /training diverged: the loss is NaN at epoch 1/.test(r.stderr), r.stderr);
});

test('train <model.onnx> with default flags fine-tunes the folded export without diverging and lowers its loss', async () => {
  const out = join(dir, 'tuned.onnx');
  const r = runCli(['train', MODEL, ...ARGS, '--json', '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  for (const split of ['train', 'test'] as const) {
    const before = await loss(MODEL, split);
    const after = await loss(out, split);
    assert.ok(after < before, `${split} loss ${before.toFixed(4)} -> ${after.toFixed(4)}`);
  }
});
