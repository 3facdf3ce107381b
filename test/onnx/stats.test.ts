import { test } from 'node:test';
import assert from 'node:assert/strict';
import { modelStats } from '../../src/onnx/stats.js';
import { tinyConvNet } from '../helpers/graphs.js';

test('parameters and FLOPs per image of a tiny conv + linear model, by hand', () => {
  const s = modelStats(tinyConvNet());
  // conv 4x3x3x3 + 4 bias; linear 10x64 + 10
  assert.equal(s.parameters, 108 + 4 + 640 + 10);
  // Conv: 2 * Cin*kh*kw (27) * Cout*H*W (4*8*8=256) + bias 256 = 14080
  // Relu: 256; MaxPool 2x2: 4 per output element * 64 = 256; Flatten: 0
  // Gemm: 2 * M*K*N (1*64*10) + bias 10 = 1290
  assert.equal(s.flopsPerImage, 14080 + 256 + 256 + 0 + 1290);
  assert.deepEqual(s.opHistogram, { Conv: 1, Relu: 1, MaxPool: 1, Flatten: 1, Gemm: 1 });
  assert.deepEqual(s.inputs, [{ name: 'input', dtype: 'float32', shape: ['N', 3, 8, 8] }]);
  assert.deepEqual(s.outputs, [{ name: 'logits', dtype: 'float32', shape: ['N', 10] }]);
  assert.deepEqual(s.uncounted, []);
});

test('a fixed batch is divided out of the FLOP count', () => {
  const m = tinyConvNet();
  const perImage = modelStats(m).flopsPerImage;
  m.graph.inputs[0]!.shape = [4, 3, 8, 8];
  assert.equal(modelStats(m).flopsPerImage, perImage);
});
