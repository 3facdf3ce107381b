import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { createZooModel } from '../../src/nn/zoo.js';
import { loadModel } from '../../src/onnx/proto.js';
import { openDataset } from '../../src/data/resolve.js';
import { train } from '../../src/autodiff/train.js';
import { runLegoDemo, legoDemoMarkdown } from '../../src/report/demo-lego.js';
import { tempDir } from '../helpers/paths.js';

test("the demo's Model LEGO section disassembles two tasks, assembles them and reports accuracies", async () => {
  const dir = tempDir();
  const trainSet = await openDataset('fashion-mnist-sample', 'train');
  const test = await openDataset('fashion-mnist-sample', 'test');
  const file = join(dir, 'lenet.onnx');
  await train({
    model: createZooModel('lenet5', { input: [1, 28, 28], classes: 10, seed: 0 }),
    data: trainSet,
    epochs: 1,
    batchSize: 64,
    lr: 0.05,
    optimizer: { kind: 'sgd', momentum: 0.9, weightDecay: 5e-4 },
    schedule: { kind: 'cosine', warmupSteps: 0 },
    seed: 0,
    output: file,
    session: { threads: 1 },
  });
  const r = await runLegoDemo({ model: loadModel(file), name: 'lenet5', train: trainSet, test, outDir: dir, session: { threads: 1 } });
  assert.equal(r.components.length, 2);
  for (const c of r.components) {
    assert.ok(existsSync(c.file));
    assert.ok(c.parameters < r.parameters);
    assert.ok(c.accuracy > 0.5, `component ${c.task} accuracy ${c.accuracy}`);
  }
  assert.equal(r.assembled.method, 'block-diagonal');
  assert.ok(existsSync(r.assembled.file));
  assert.ok(r.assembled.scaled > 0.3 && r.assembled.unscaled > 0.3);
  assert.ok(r.seconds < 60);
  const md = legoDemoMarkdown(r);
  assert.match(md, /## Model LEGO/);
  assert.match(md, /assembled, scaled/);
});
