import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createZooModel } from '../../src/nn/zoo.js';
import { openDataset } from '../../src/data/resolve.js';
import { inferBatches } from '../../src/runtime/infer.js';
import { resolveNormalization } from '../../src/runtime/normalization.js';
import { reestimateBatchNorm } from '../../src/autodiff/batchnorm-stats.js';

const fresh = () => createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.125, seed: 5, input: [1, 28, 28], classes: 10 });

/** Channel means of a tapped tensor over the given images, in evaluation mode. */
async function channelMeans(model: ReturnType<typeof fresh>, tensor: string, indices: number[]): Promise<Float64Array> {
  const ds = await openDataset('fashion-mnist-sample', 'train', { announce: false });
  const normalization = resolveNormalization(model, 1).normalization;
  let sums: Float64Array | undefined;
  let count = 0;
  for await (const { outputs } of inferBatches(model, ds, { normalization, indices, taps: [tensor], threads: 1 })) {
    const t = outputs[tensor]!;
    const [n, c] = t.dims as number[];
    const per = t.data.length / (n! * c!);
    sums ??= new Float64Array(c!);
    for (let b = 0; b < n!; b++) for (let ch = 0; ch < c!; ch++) for (let i = 0; i < per; i++) sums[ch]! += (t.data as Float32Array)[(b * c! + ch) * per + i]!;
    count += n! * per;
  }
  return sums!.map((s) => s / count);
}

test('re-estimated statistics make every BatchNorm see what it normalises (one batch: exact up to the unbiased factor)', async () => {
  const model = fresh();
  const ds = await openDataset('fashion-mnist-sample', 'train', { announce: false });
  const indices = Array.from({ length: 64 }, (_, i) => i * 3);
  const r = await reestimateBatchNorm(model, ds, { indices, samples: 64, batchSize: 64, threads: 1 });
  assert.equal(r.samples, 64);
  const bns = model.graph.nodes.filter((n) => n.opType === 'BatchNormalization');
  assert.equal(r.layers, bns.length);
  // the original stays untouched (inputs are never modified)
  assert.ok((model.graph.initializers.get(bns[0]!.inputs[3]!)!.data as Float32Array).every((v) => v === 0));
  for (const bn of [bns[0]!, bns[bns.length - 1]!]) {
    const measured = await channelMeans(r.model, bn.inputs[0]!, indices);
    const stored = r.model.graph.initializers.get(bn.inputs[3]!)!.data as Float32Array;
    const scale = Math.max(...measured.map(Math.abs), 1e-6);
    measured.forEach((m, c) => assert.ok(Math.abs(m - stored[c]!) <= 2e-3 * scale, `${bn.name} channel ${c}: stored ${stored[c]} vs measured ${m}`));
    const variance = r.model.graph.initializers.get(bn.inputs[4]!)!.data as Float32Array;
    assert.ok(
      variance.every((v) => v > 0),
      `${bn.name}: variances are positive`,
    );
  }
});

test('the same seed draws the same images and gives the same statistics; another seed other images', async () => {
  const model = fresh();
  const train = await openDataset('fashion-mnist-sample', 'train', { announce: false });
  const a = await reestimateBatchNorm(model, train, { samples: 256, batchSize: 128, seed: 3, threads: 1 });
  const b = await reestimateBatchNorm(model, train, { samples: 256, batchSize: 128, seed: 3, threads: 1 });
  const c = await reestimateBatchNorm(model, train, { samples: 256, batchSize: 128, seed: 4, threads: 1 });
  for (const [k, t] of a.model.graph.initializers) assert.deepEqual(t.data, b.model.graph.initializers.get(k)!.data, k);
  const name = model.graph.nodes.find((n) => n.opType === 'BatchNormalization')!.inputs[3]!;
  assert.notDeepEqual(a.model.graph.initializers.get(name)!.data, c.model.graph.initializers.get(name)!.data);
});

test('bad input: too few images, a bad sample count', async () => {
  const ds = await openDataset('fashion-mnist-sample', 'train', { announce: false });
  await assert.rejects(reestimateBatchNorm(fresh(), ds, { indices: [0] }), /at least 2 images/);
  await assert.rejects(reestimateBatchNorm(fresh(), ds, { samples: 1.5 }), /samples must be an integer/);
});
