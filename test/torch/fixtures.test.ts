import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { fixture } from '../helpers/paths.js';
import { readIoFixture } from '../helpers/fixtures.js';

// Validates the committed PyTorch exports themselves against the logits PyTorch
// computed, through a bare onnxruntime session (no modelsmith code involved).
const MODELS = ['vgg_small', 'resnet_small', 'inception_small'];
const VARIANTS = ['.onnx', '.nofold.onnx'];
const TOLERANCE = 1e-4;

async function runBare(file: string, input: Float32Array, shape: number[]): Promise<ort.Tensor> {
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  try {
    const out = await session.run({ input: new ort.Tensor('float32', input, shape) });
    return out['logits']!;
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

for (const name of MODELS) {
  for (const variant of VARIANTS) {
    test(`${name}${variant} reproduces the PyTorch logits under onnxruntime`, async () => {
      const io = readIoFixture(name);
      assert.deepEqual(io.inputShape, [4, 1, 28, 28]);
      assert.deepEqual(io.logitsShape, [4, 10]);
      const logits = await runBare(fixture('torch', `${name}${variant}`), io.input, io.inputShape);
      assert.deepEqual(logits.dims, io.logitsShape);
      const diff = maxAbsDiff(logits.data as Float32Array, io.logits);
      assert.ok(diff <= TOLERANCE, `max |ORT - PyTorch| = ${diff}`);
    });
  }
}

test('the fixture inputs give distinct logits per image (the check above is not vacuous)', () => {
  for (const name of MODELS) {
    const { logits } = readIoFixture(name);
    const rows = [0, 1, 2, 3].map((r) => logits.subarray(r * 10, r * 10 + 10));
    assert.ok(maxAbsDiff(rows[0]!, rows[1]!) > 1e-3, `${name}: images 0 and 1 give near-identical logits`);
    assert.ok(logits.every(Number.isFinite), `${name}: non-finite logits`);
  }
});

test('the dynamic batch axis works: one image alone gives the same logits as in the batch', async () => {
  const io = readIoFixture('vgg_small');
  const one = io.input.slice(28 * 28, 2 * 28 * 28);
  const logits = await runBare(fixture('torch', 'vgg_small.nofold.onnx'), one, [1, 1, 28, 28]);
  assert.deepEqual(logits.dims, [1, 10]);
  assert.ok(maxAbsDiff(logits.data as Float32Array, io.logits.subarray(10, 20)) <= TOLERANCE);
});
