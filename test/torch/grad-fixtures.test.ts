import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { loadModel } from '../../src/onnx/proto.js';
import { runningStatistics, trainableParameters } from '../../src/onnx/parameters.js';
import { readGradFixture, type GradFixture, type GradTensor } from '../helpers/grad-fixtures.js';

// Checks the committed PyTorch gradient references themselves: that they decode, that
// they cover exactly the model file's parameters with the right shapes, and that they
// are numerically sound. Comparing modelsmith's own gradients with them is the job of
// the training-graph tests.
const MODELS = ['vgg_small', 'resnet_small'];
const MODES = ['train', 'eval'] as const;

const sortedKeys = (m: Map<string, unknown>): string[] => [...m.keys()].sort();

function norm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return Math.sqrt(s);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

/** Mean softmax cross-entropy of row-major [n, classes] logits. */
function crossEntropy(logits: Float64Array, labels: number[]): number {
  const classes = logits.length / labels.length;
  let total = 0;
  labels.forEach((label, r) => {
    const row = logits.subarray(r * classes, (r + 1) * classes);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
    total += lse - row[label]!;
  });
  return total / labels.length;
}

function assertSound(t: GradTensor, what: string): void {
  assert.equal(
    t.data.length,
    t.shape.reduce((a, b) => a * b, 1),
    `${what}: size`,
  );
  assert.ok(t.data.every(Number.isFinite), `${what}: non-finite values`);
  assert.ok(norm(t.data) > 0, `${what}: all zero`);
}

async function ortLogits(fx: GradFixture): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(fx.modelFile, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  try {
    const out = await session.run({ input: new ort.Tensor('float32', fx.input, fx.inputShape) });
    return out['logits']!.data as Float32Array;
  } finally {
    await session.release();
  }
}

for (const name of MODELS) {
  test(`${name}.grad.json covers exactly the parameters and running statistics of its model`, () => {
    const fx = readGradFixture(name);
    const graph = loadModel(fx.modelFile).graph;
    assert.deepEqual(fx.inputShape, [8, 1, 28, 28]);
    assert.equal(fx.labels.length, 8);
    assert.ok(
      fx.labels.every((l) => Number.isInteger(l) && l >= 0 && l < 10),
      `labels ${fx.labels}`,
    );
    const params = trainableParameters(graph).sort();
    const stats = [...runningStatistics(graph)].sort();
    for (const mode of MODES) {
      const r = fx.modes[mode];
      assert.deepEqual(sortedKeys(r.grads), params, `${mode} grads`);
      for (const [p, g] of r.grads) assert.deepEqual(g.shape, graph.initializers.get(p)!.dims, `${mode} ${p}`);
      assert.deepEqual(r.inputGrad.shape, fx.inputShape);
    }
    const running = fx.modes.train.running;
    assert.deepEqual(sortedKeys(running), stats);
    for (const [s, v] of running) assert.deepEqual(v.shape, graph.initializers.get(s)!.dims, s);
    assert.equal(fx.modes.eval.running.size, 0);
  });

  test(`${name}.grad.json holds finite, non-zero, self-consistent numbers`, () => {
    const fx = readGradFixture(name);
    const graph = loadModel(fx.modelFile).graph;
    for (const mode of MODES) {
      const r = fx.modes[mode];
      for (const [p, g] of r.grads) assertSound(g, `${mode} grad ${p}`);
      assertSound(r.inputGrad, `${mode} input grad`);
      assert.ok(Math.abs(crossEntropy(r.logits, fx.labels) - r.loss) < 1e-12, `${mode}: loss is not CE of logits`);
      // The float32 run agrees with float64 far inside the 1e-4 the training graph must meet.
      assert.ok(Math.abs(r.float32.loss - r.loss) <= 1e-5 * Math.abs(r.loss), `${mode}: float32 loss ${r.float32.loss}`);
      assert.ok(maxAbsDiff(r.float32.logits, r.logits) <= 1e-4, `${mode}: float32 logits`);
      assert.ok(r.float32.maxGradRelErr <= 1e-5, `${mode}: float32 grads off by ${r.float32.maxGradRelErr}`);
    }
    assert.ok(Math.abs(fx.modes.train.loss - fx.modes.eval.loss) > 1e-3, 'train and eval give the same loss');
    for (const [s, v] of fx.modes.train.running) {
      assert.ok(v.data.every(Number.isFinite), s);
      const before = graph.initializers.get(s)!.data as Float32Array;
      assert.ok(maxAbsDiff(v.data, before) > 1e-6, `${s}: not updated by the train step`);
    }
  });

  test(`${name}.grad.json eval logits are what onnxruntime computes on the model file`, async () => {
    const fx = readGradFixture(name);
    const logits = await ortLogits(fx);
    assert.ok(maxAbsDiff(logits, fx.modes.eval.logits) <= 1e-4, `max |ORT - PyTorch| = ${maxAbsDiff(logits, fx.modes.eval.logits)}`);
  });
}
