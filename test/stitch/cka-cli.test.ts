import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createZooModel } from '../../src/nn/zoo.js';
import { saveModel } from '../../src/onnx/proto.js';
import { runCli, isOneLineError } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';

const dir = tempDir();
const fa = join(dir, 'a.onnx');
const fb = join(dir, 'b.onnx');
const fc = join(dir, 'c.onnx');
saveModel(createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.125, input: [1, 28, 28], seed: 1 }), fa);
saveModel(createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.125, input: [1, 28, 28], seed: 2 }), fb);
saveModel(createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.125, input: [3, 32, 32], seed: 1 }), fc);
const data = ['--data', 'fashion-mnist-sample', '--threads', '1'];

test('modelsmith cka writes matrix.json and the heatmaps, with controls, and prints only JSON with --json', () => {
  const out = join(dir, 'grid');
  const cuts = ['--senders', 'stem,layer2.0', '--receivers', 'stem,layer1.0,features'];
  const r = runCli(['cka', fa, fb, ...data, '--samples', '30', '--debiased', '--controls', ...cuts, '-o', out, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.samples, 30);
  assert.equal(j.estimator, 'debiased');
  assert.deepEqual(j.senders, ['stem', 'layer2.0']);
  assert.deepEqual(j.receivers, ['stem', 'layer1.0', 'features']);
  assert.deepEqual(
    j.cuts.senders.map((c: { tensor: string }) => c.tensor),
    ['stem.relu', 'layer2.0.relu2'],
  );
  assert.deepEqual(j.kinds, ['trained', 'random-sender', 'random-receiver', 'random-both']);
  assert.deepEqual(j.values, j.matrices.debiased.trained);
  for (const est of ['biased', 'debiased']) {
    for (const kind of j.kinds) {
      const m = j.matrices[est][kind];
      assert.equal(m.length, 2);
      assert.ok(m.every((row: number[]) => row.length === 3 && row.every((v) => typeof v === 'number' && v <= 1 + 1e-6)));
      assert.ok('lowerLeft' in j.triangles[est][kind]);
    }
  }
  // the random controls are other networks: their matrices differ from the trained pair's
  assert.notDeepEqual(j.matrices.biased['random-sender'], j.matrices.biased.trained);
  assert.notDeepEqual(j.matrices.biased['random-receiver'], j.matrices.biased.trained);
  const m = JSON.parse(readFileSync(join(out, 'matrix.json'), 'utf8'));
  assert.deepEqual(m.matrices, j.matrices);
  for (const f of ['cka.svg', 'cka.png', 'cka-biased.svg', 'cka-biased.png', 'cka-debiased.svg', 'cka-debiased.png']) {
    assert.ok(existsSync(join(out, f)), f);
    assert.ok(j.files.includes(join(out, f)), `files lists ${f}`);
  }
  const svg = readFileSync(join(out, 'cka.svg'), 'utf8');
  assert.ok(svg.includes('linear CKA (biased)') && svg.includes('linear CKA (debiased)'));
  assert.ok(svg.includes(`>${j.matrices.biased.trained[1][2].toFixed(2)}<`), 'annotated values');
  assert.ok(readFileSync(join(out, 'cka-biased.svg'), 'utf8').includes('random -&gt; random'));
  // the same seed gives the same numbers; without --controls only the trained pair
  const again = runCli(['cka', fa, fb, ...data, '--samples', '30', ...cuts, '-o', join(dir, 'grid2'), '--json']);
  assert.equal(again.code, 0, again.stderr);
  const k = JSON.parse(again.stdout);
  assert.deepEqual(k.matrices.biased.trained, j.matrices.biased.trained);
  assert.deepEqual(k.kinds, ['trained']);
  assert.equal(k.estimator, 'biased');
  assert.ok(!existsSync(join(dir, 'grid2', 'cka-biased.png')));
});

test('modelsmith cka: unknown cuts and different input shapes are one-line errors', () => {
  const out = join(dir, 'bad');
  const unknown = runCli(['cka', fa, fb, ...data, '--samples', '8', '--receivers', 'layer7.0', '-o', out]);
  assert.ok(isOneLineError(unknown), unknown.stderr);
  assert.match(unknown.stderr, /cut "layer7.0" does not exist in .*b\.onnx/);
  const shapes = runCli(['cka', fa, fc, ...data, '--samples', '8', '-o', out]);
  assert.ok(isOneLineError(shapes), shapes.stderr);
  assert.match(shapes.stderr, /1x28x28.*3x32x32/);
  const samples = runCli(['cka', fa, fb, ...data, '--samples', '0', '-o', out]);
  assert.ok(isOneLineError(samples), samples.stderr);
  assert.match(samples.stderr, /--samples/);
  assert.ok(!existsSync(join(out, 'matrix.json')));
});
