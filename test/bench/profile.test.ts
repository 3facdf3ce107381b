import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createZooModel } from '../../src/nn/zoo.js';
import { trainableParameters } from '../../src/onnx/parameters.js';
import { TrainingSession } from '../../src/autodiff/trainer.js';
import { ModelSession } from '../../src/runtime/session.js';
import { nodeKind, summariseProfile } from '../../bench/profile.js';

test('nodeKind: gradient nodes by their forward node and the Conv rule hints, fusions, reorders', () => {
  const ops = new Map([
    ['conv1', 'Conv'],
    ['/layer1/conv/Conv', 'Conv'],
    ['bn1', 'BatchNormalization'],
    ['relu', 'Relu'],
  ]);
  assert.equal(nodeKind('grad/conv1/conv_dw_im2col.node', 'Conv', ops), 'Conv backward: weight gradient (dW)');
  assert.equal(nodeKind('grad//layer1/conv/Conv/conv_dx.node', 'Conv', ops), 'Conv backward: input gradient (dX)');
  assert.equal(nodeKind('grad/bn1/bn1_grad_dx.node', 'Add', ops), 'BatchNormalization backward');
  assert.equal(nodeKind('bn1/batch_centred.node', 'Sub', ops), 'BatchNormalization forward');
  assert.equal(nodeKind('bn1_nchwc', 'Conv', ops), 'Conv forward (with fused BatchNorm/ReLU)');
  assert.equal(nodeKind('grad/relu/where.node', 'Where', ops), 'Relu backward');
  assert.equal(nodeKind('conv1_nchwc_in', 'ReorderInput', ops), 'layout reorder (ReorderInput/Output)');
  assert.equal(nodeKind('conv1_nchwc_wri', 'ReorderInput', ops), 'weight reorder for NCHWc (ReorderInput/Reshape)');
  assert.equal(nodeKind('conv1_nchwc_wrs', 'Reshape', ops), 'weight reorder for NCHWc (ReorderInput/Reshape)');
  assert.equal(nodeKind('loss/log_softmax', 'LogSoftmax', ops), 'other (LogSoftmax)');
});

test('a profiled training step: the profile file is found and summarised per kind of work, warm-up runs left out', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'modelsmith-profile-test-'));
  try {
    const model = createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.25, input: [1, 8, 8], classes: 4, seed: 0 });
    const s = await TrainingSession.create(model, {
      trainable: trainableParameters(model.graph),
      loss: 'cross-entropy',
      batchSize: 4,
      batchNorm: 'train',
      session: { threads: 1, profile: join(dir, 'step') },
    });
    const x = new Float32Array(4 * 64).fill(0.5);
    const target = BigInt64Array.from([0, 1, 2, 3], (v) => BigInt(v));
    for (let i = 0; i < 3; i++) await s.step(x, target);
    const file = s.endProfiling();
    await s.release();
    assert.ok(file.startsWith(join(dir, 'step_')) && file.endsWith('.json'), file);
    const p = summariseProfile(file, 1, new Map(model.graph.nodes.map((n) => [n.name, n.opType])));
    assert.equal(p.runs, 2);
    const kinds = new Set(p.categories.map((c) => c.name));
    for (const k of ['Conv backward: weight gradient (dW)', 'Conv backward: input gradient (dX)', 'BatchNormalization backward']) assert.ok(kinds.has(k), k);
    assert.ok(p.kernelMs > 0 && p.runMs >= p.kernelMs, `run ${p.runMs} ms, kernels ${p.kernelMs} ms`);
    const sum = p.categories.reduce((a, c) => a + c.ms, 0);
    assert.ok(Math.abs(sum - p.kernelMs) < 1e-6 * Math.max(1, p.kernelMs));
    assert.throws(() => summariseProfile(file, 3, new Map()), /none left/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('endProfiling without the profile option is refused', async () => {
  const model = createZooModel('mlp', { input: [1, 4, 4], classes: 3, seed: 0 });
  const s = await ModelSession.create(model, { threads: 1 });
  assert.throws(() => s.endProfiling(), /not created with the profile option/);
  await s.release();
});
