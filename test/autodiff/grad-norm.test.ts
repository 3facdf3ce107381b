import { test } from 'node:test';
import type { Node } from '../../src/onnx/types.js';
import { float, int } from '../../src/onnx/graph.js';
import { Rng } from '../../src/util/random.js';
import { float32 } from '../../src/onnx/tensor.js';
import { checkOp } from '../helpers/gradcheck.js';
import { RULES } from '../../src/autodiff/rules/norm.js';
import '../helpers/reference/norm.js';
import { channelMoments } from '../helpers/reference/norm.js';
import type { RefTensor } from '../helpers/reference/registry.js';
import { assertClose, assertMatchesOrt, numericGradient, randomRef, runRule } from './conv-test-kit.js';

let id = 0;
const bn = (training: boolean, outputs = ['y']): Node => ({
  name: `bn${id++}`,
  opType: 'BatchNormalization',
  inputs: ['x', 'scale', 'bias', 'mean', 'var'],
  outputs,
  attributes: { epsilon: float(1e-3), momentum: float(0.9), ...(training ? { training_mode: int(1) } : {}) },
});

function params(rng: Rng, x: RefTensor): Record<string, RefTensor> {
  const c = x.dims[1]!;
  const positive = randomRef(rng, [c]);
  positive.data = positive.data.map((v) => 0.5 + Math.abs(v));
  return { x, scale: randomRef(rng, [c]), bias: randomRef(rng, [c]), mean: randomRef(rng, [c]), var: positive };
}

/** Activations with a channel offset and scale, as BatchNorm sees them in a network. */
function activations(rng: Rng, dims: number[]): RefTensor {
  const x = randomRef(rng, dims);
  const per = x.data.length / dims[0]! / dims[1]!;
  x.data = x.data.map((v, i) => v * (1 + (Math.floor(i / per) % dims[1]!)) + 3);
  return x;
}

const SHAPES = [
  [3, 2, 3, 4],
  [5, 3],
  [2, 2, 5],
];

test('reference BatchNormalization matches ONNX Runtime (inference and training_mode=1, 4-D, 3-D and 2-D)', async () => {
  const rng = new Rng(1);
  for (const dims of SHAPES) {
    const inputs = params(rng, activations(rng, dims));
    await assertMatchesOrt(bn(false), inputs, 1e-5);
    await assertMatchesOrt(bn(true, ['y', 'running_mean', 'running_var']), inputs, 1e-5);
  }
});

test('BatchNormalization eval-mode gradient (affine map) matches finite differences', async () => {
  const rng = new Rng(2);
  for (const dims of SHAPES) {
    const node = bn(false);
    const inputs = params(rng, activations(rng, dims));
    const { grads, dys } = await runRule(RULES.BatchNormalization!, node, inputs, { constants: ['mean', 'var'] });
    const args = [inputs.x, inputs.scale, inputs.bias, inputs.mean, inputs.var];
    ['x', 'scale', 'bias'].forEach((name, i) =>
      assertClose(numericGradient(node, args, i, dys[0]!, 1e-5), grads[i]!, 1e-5, `eval ${JSON.stringify(dims)} d${name}`),
    );
  }
});

test('BatchNormalization train-mode gradient (through the batch statistics) matches finite differences', async () => {
  const rng = new Rng(3);
  for (const dims of SHAPES) {
    const node = bn(true);
    const x = activations(rng, dims);
    const inputs = params(rng, x);
    // As the differentiator hands it over: mean/var inputs hold the batch statistics of X.
    const { mean, variance } = channelMoments(x);
    inputs.mean = { dims: [dims[1]!], data: mean };
    inputs.var = { dims: [dims[1]!], data: variance };
    const { grads, dys } = await runRule(RULES.BatchNormalization!, node, inputs, { constants: ['mean', 'var'], withoutForward: true });
    const args = [inputs.x, inputs.scale, inputs.bias, inputs.mean, inputs.var];
    ['x', 'scale', 'bias'].forEach((name, i) =>
      assertClose(numericGradient(node, args, i, dys[0]!, 1e-5), grads[i]!, 2e-5, `train ${JSON.stringify(dims)} d${name}`),
    );
  }
});

test('BatchNormalization train-mode input gradient alone (frozen scale and bias)', async () => {
  const rng = new Rng(4);
  const node = bn(true);
  const x = activations(rng, [4, 3, 2, 2]);
  const inputs = params(rng, x);
  const { mean, variance } = channelMoments(x);
  inputs.mean = { dims: [3], data: mean };
  inputs.var = { dims: [3], data: variance };
  const { grads, dys } = await runRule(RULES.BatchNormalization!, node, inputs, { constants: ['scale', 'bias', 'mean', 'var'], withoutForward: true });
  assertClose(
    numericGradient(node, [inputs.x, inputs.scale, inputs.bias, inputs.mean, inputs.var], 0, dys[0]!, 1e-5),
    grads[0]!,
    2e-5,
    'train dX, frozen affine',
  );
});

test('BatchNormalization through the training graph, train and eval, 4-D and 2-D (gradcheck)', async () => {
  for (const dims of [
    [4, 3, 2, 3],
    [6, 4],
  ]) {
    const c = dims[1]!;
    const running = [
      {
        constant: float32(
          [c],
          Array.from({ length: c }, (_, i) => 0.1 * i),
        ),
      },
      {
        constant: float32(
          [c],
          Array.from({ length: c }, (_, i) => 1 + 0.5 * i),
        ),
      },
    ];
    for (const batchNorm of ['train', 'eval'] as const) {
      await checkOp(
        { op: 'BatchNormalization', inputs: [dims, { shape: [c] }, { shape: [c] }, ...running], attributes: { epsilon: float(1e-5), momentum: float(0.9) } },
        { batchNorm },
      );
    }
  }
});
