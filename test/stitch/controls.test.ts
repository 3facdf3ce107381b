import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createZooModel } from '../../src/nn/zoo.js';
import { openDataset } from '../../src/data/resolve.js';
import { randomControl } from '../../src/stitch/controls.js';
import { StitchContext } from '../../src/stitch/context.js';

const trained = createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.125, seed: 9 });
const train = await openDataset('fashion-mnist-sample', 'train');
const meanOf = (m: typeof trained) => m.graph.initializers.get(m.graph.nodes.find((n) => n.opType === 'BatchNormalization')!.inputs[3]!)!.data as Float32Array;

test('random controls re-estimate BatchNorm statistics on data by default, keep 0/1 with init, and are seeded', async () => {
  const opts = { samples: 128, session: { threads: 1 } };
  const data = await randomControl(trained, 11, train, opts);
  const again = await randomControl(trained, 11, train, opts);
  const init = await randomControl(trained, 11, train, { ...opts, batchNorm: 'init' });
  assert.ok(meanOf(init).every((v) => v === 0), 'init keeps the fresh 0 means');
  assert.ok(meanOf(data).some((v) => v !== 0), 'data re-estimates them');
  assert.deepEqual(meanOf(again), meanOf(data));
  // the weights are the same random draw either way: only the statistics differ
  const conv = trained.graph.nodes.find((n) => n.opType === 'Conv')!.inputs[1]!;
  assert.deepEqual(data.graph.initializers.get(conv)!.data, init.graph.initializers.get(conv)!.data);
  assert.notDeepEqual(data.graph.initializers.get(conv)!.data, trained.graph.initializers.get(conv)!.data);
});

test('a grid context makes the random networks its kinds need, and refuses to hand out unprepared ones', async () => {
  const ctx = new StitchContext({ a: trained, b: trained, train, test: train, trainLimit: 64, testLimit: 64, session: { threads: 1 }, randomBatchNorm: 'init' });
  try {
    assert.throws(() => ctx.source('B0'), /not prepared/);
    await ctx.prepare(['random-receiver']);
    assert.ok(meanOf(ctx.source('B0').model).every((v) => v === 0));
    assert.throws(() => ctx.source('A0'), /not prepared/);
  } finally {
    await ctx.release();
  }
});
