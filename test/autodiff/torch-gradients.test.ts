import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/onnx/proto.js';
import { trainableParameters } from '../../src/onnx/parameters.js';
import { TrainingSession } from '../../src/autodiff/trainer.js';
import { readGradFixture, type GradTensor } from '../helpers/grad-fixtures.js';

/** max |a - b| relative to max |b|: the tensor-wise relative error */
function relError(a: ArrayLike<number>, b: GradTensor | Float64Array): number {
  const ref = 'data' in b ? b.data : b;
  assert.equal(a.length, ref.length);
  let diff = 0,
    scale = 0;
  for (let i = 0; i < ref.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - ref[i]!));
    scale = Math.max(scale, Math.abs(ref[i]!));
  }
  return diff / scale;
}

for (const name of ['vgg_small', 'resnet_small']) {
  for (const mode of ['train', 'eval'] as const) {
    test(`PyTorch export ${name}: loss, logits, parameter and input gradients and running statistics match PyTorch (BatchNorm ${mode}) to 1e-4 relative`, async () => {
      const fx = readGradFixture(name);
      const ref = fx.modes[mode];
      const model = loadModel(fx.modelFile);
      const trainable = trainableParameters(model.graph);
      const t = await TrainingSession.create(model, {
        trainable,
        loss: 'cross-entropy',
        batchSize: fx.inputShape[0]!,
        batchNorm: mode,
        dropout: false,
        inputGradients: ['input'],
        session: { threads: 1 },
      });
      const r = await t.step(fx.input, BigInt64Array.from(fx.labels.map(BigInt)));
      assert.ok(Math.abs(r.loss - ref.loss) / Math.abs(ref.loss) < 1e-4, `loss ${r.loss} vs ${ref.loss}`);
      assert.ok(relError(r.logits, ref.logits) < 1e-4, 'logits');
      assert.deepEqual([...r.grads.keys()].sort(), [...ref.grads.keys()].sort());
      for (const [p, g] of ref.grads) assert.ok(relError(r.grads.get(p)!, g) < 1e-4, `gradient of ${p}: ${relError(r.grads.get(p)!, g)}`);
      assert.ok(relError(r.inputGrads.get('input')!, ref.inputGrad) < 1e-4, 'input gradient');
      for (const [s, v] of ref.running) assert.ok(relError(t.state.get(s)!, v) < 1e-4, `running statistic ${s}`);
      await t.release();
    });
  }
}
