import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { loadModel, saveModel } from '../../src/onnx/proto.js';
import { ModelSession } from '../../src/runtime/session.js';
import { fixture, tempDir } from '../helpers/paths.js';
import { readIoFixture } from '../helpers/fixtures.js';
import { join } from 'node:path';

const FIXTURES = ['vgg_small', 'resnet_small', 'inception_small'];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

for (const name of FIXTURES) {
  for (const variant of ['', '.nofold']) {
    test(`PyTorch export ${name}${variant}: modelsmith logits equal a bare ONNX Runtime session's to 1e-5`, async () => {
      const file = fixture('torch', `${name}${variant}.onnx`);
      const io = readIoFixture(name);
      const bare = await ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
      const ref = (await bare.run({ input: new ort.Tensor('float32', io.input, io.inputShape) }))['logits']!.data as Float32Array;
      // through modelsmith: IR load, re-encode, and a save/load round trip
      const dir = tempDir();
      saveModel(loadModel(file), join(dir, 'copy.onnx'));
      const model = loadModel(join(dir, 'copy.onnx'));
      const s = await ModelSession.create(model, { threads: 1 });
      const out = await s.run({ input: { dims: io.inputShape, data: io.input } });
      assert.deepEqual(out['logits']!.dims, io.logitsShape);
      assert.ok(maxAbsDiff(out['logits']!.data as Float32Array, ref) <= 1e-5);
      assert.ok(maxAbsDiff(ref, io.logits) <= 1e-4, 'the fixture reproduces PyTorch');
      await s.release();
    });
  }
}

test('without the memory arena and the memory pattern a session gives the same logits, run after run and batch size after batch size', async () => {
  const model = loadModel(fixture('torch', 'resnet_small.onnx'));
  const io = readIoFixture('resnet_small');
  const per = io.input.length / io.inputShape[0]!;
  const x = new Float32Array(16 * per);
  for (let i = 0; i < x.length; i++) x[i] = io.input[i % io.input.length]!;
  const plain = await ModelSession.create(model, { threads: 1 });
  const lean = await ModelSession.create(model, { threads: 1, memArena: false, memPattern: false });
  const patternOnly = await ModelSession.create(model, { threads: 1, memPattern: false });
  try {
    for (const n of [16, 16, 3, 16]) {
      const feed = { input: { dims: [n, ...io.inputShape.slice(1)], data: x.subarray(0, n * per) } };
      const want = (await plain.run(feed))['logits']!.data;
      assert.deepEqual((await lean.run(feed))['logits']!.data, want);
      assert.deepEqual((await patternOnly.run(feed))['logits']!.data, want);
    }
  } finally {
    for (const s of [plain, lean, patternOnly]) await s.release();
  }
});
