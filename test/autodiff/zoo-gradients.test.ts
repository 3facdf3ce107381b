/**
 * Whole-model gradients of every zoo architecture against finite differences, on a
 * few seeded coordinates of a few parameter tensors of each kind (conv weight, BN
 * scale, linear bias...), plus the input. Tiny widths and inputs keep the float64
 * reference forward passes cheap.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Model } from '../../src/onnx/types.js';
import { createZooModel, type ZooOptions } from '../../src/nn/zoo.js';
import { trainableParameters } from '../../src/onnx/parameters.js';
import { checkGradients } from '../helpers/gradcheck.js';
import { validateModel } from '../../src/onnx/validate.js';

interface Case {
  arch: string;
  options: ZooOptions;
  batch: number;
  /** the largest models check only the last tensor of each kind, to keep the test fast */
  lastOnly?: boolean;
}

const CASES: Case[] = [
  { arch: 'mlp', options: { input: [1, 8, 8], hidden: [16, 12] }, batch: 3 },
  { arch: 'lenet5', options: { input: [1, 16, 16], width: 0.5 }, batch: 2 },
  // VGG pools down to 1x1 by 16x16; at 32x32 its last BatchNorms still see 2x2 per image
  { arch: 'vgg11', options: { input: [3, 32, 32], width: 0.0625 }, batch: 2 },
  { arch: 'vgg16', options: { input: [3, 32, 32], width: 0.0625 }, batch: 2 },
  { arch: 'resnet', options: { input: [1, 16, 16], width: 0.0625, blocks: [1, 1, 1, 1] }, batch: 2 },
  { arch: 'resnet18', options: { input: [3, 16, 16], width: 0.0625 }, batch: 2 },
  { arch: 'resnet50', options: { input: [3, 16, 16], width: 0.0625 }, batch: 2, lastOnly: true },
  { arch: 'inception', options: { input: [3, 16, 16], width: 0.0625 }, batch: 2, lastOnly: true },
];

/**
 * Up to two tensors (the first and the last) of each parameter kind, a kind being the
 * operator that reads the parameter and at which input (Conv weight, Conv bias,
 * BatchNormalization scale, Gemm bias...). The input gradient covers the path through
 * every layer anyway.
 */
function representatives(model: Model, lastOnly = false): string[] {
  const kinds = new Map<string, string[]>();
  const params = new Set(trainableParameters(model.graph));
  for (const n of model.graph.nodes) {
    n.inputs.forEach((input, i) => {
      if (!params.has(input)) return;
      const kind = `${n.opType}:${i}`;
      const list = kinds.get(kind) ?? [];
      if (!list.includes(input)) list.push(input);
      kinds.set(kind, list);
    });
  }
  return [...kinds.values()].flatMap((list) => (lastOnly ? [list.at(-1)!] : [...new Set([list[0]!, list.at(-1)!])]));
}

async function check(c: Case, batchNorm: 'train' | 'eval'): Promise<void> {
  const model = createZooModel(c.arch, { ...c.options, seed: 3 });
  const trainable = trainableParameters(model.graph);
  const input = model.graph.inputs[0]!.name;
  const report = await checkGradients({
    model,
    trainable,
    inputGradients: [input],
    check: [...representatives(model, c.lastOnly), input],
    loss: 'cross-entropy',
    batchNorm,
    batchSize: c.batch,
    coordinates: 3,
    seed: 17,
  });
  validateModel(report.trainingGraph.model);
  assert.ok(report.checked >= 6, `${c.arch}: only ${report.checked} coordinates checked`);
  assert.ok(
    Object.values(report.largest).some((v) => v > 1e-6),
    `${c.arch}: every checked gradient is zero`,
  );
}

for (const c of CASES) {
  test(`${c.arch}: gradients match finite differences (BatchNorm in training mode)`, async () => {
    await check(c, 'train');
  });
}

test('resnet [1,1,1,1]: gradients match finite differences with BatchNorm in evaluation mode', async () => {
  await check(
    CASES.find((c) => c.arch === 'resnet')!,
    'eval',
  );
});
