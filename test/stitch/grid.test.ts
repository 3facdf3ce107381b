import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { saveModel } from '../../src/onnx/proto.js';
import { createZooModel } from '../../src/nn/zoo.js';
import { runCli, isOneLineError } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';
import { tinyTrained } from './helpers.js';

const dir = tempDir('stitch-grid-');
const a = await tinyTrained(21, dir);
const b = await tinyTrained(22, dir);
const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const GRID = [
  'stitch',
  a.file,
  b.file,
  '--data',
  'fashion-mnist-sample',
  '--senders',
  'stem,layer3.0',
  '--receivers',
  'layer1.0,features',
  '--epochs',
  '1',
  '--batch',
  '32',
  '--train-limit',
  '96',
  '--test-limit',
  '64',
  '--threads',
  '1',
];

const cellFiles = (g: string): string[] =>
  existsSync(join(g, 'cells'))
    ? readdirSync(join(g, 'cells'))
        .filter((f) => f.endsWith('.json'))
        .sort()
    : [];

test('a grid stopped halfway and rerun computes only the missing cells', () => {
  const g = join(dir, 'resume');
  const first = runCli([...GRID, '--stop-after', '2', '--json', '-o', g]);
  assert.equal(first.code, 0, first.stderr);
  const r1 = JSON.parse(first.stdout);
  assert.equal(r1.ran, 2);
  assert.equal(r1.matrix.complete, false);
  const done = cellFiles(g);
  assert.equal(done.length, 2);
  const before = new Map(done.map((f) => [f, readFileSync(join(g, 'cells', f), 'utf8')]));
  const second = runCli([...GRID, '--json', '-o', g]);
  assert.equal(second.code, 0, second.stderr);
  const r2 = JSON.parse(second.stdout);
  assert.equal(r2.ran, 2);
  assert.equal(r2.resumed, 2);
  assert.equal(r2.matrix.complete, true);
  assert.equal(cellFiles(g).length, 4);
  for (const [f, text] of before) assert.equal(readFileSync(join(g, 'cells', f), 'utf8'), text, `${f} was not recomputed`);
  const m = JSON.parse(readFileSync(join(g, 'matrix.json'), 'utf8'));
  assert.deepEqual(m.senders, ['stem', 'layer3.0']);
  assert.deepEqual(m.receivers, ['layer1.0', 'features']);
  for (const row of m.matrices.accuracy.trained) for (const v of row) assert.ok(v >= 0 && v <= 1);
  for (const f of ['accuracy.svg', 'accuracy.png']) assert.ok(statSync(join(g, f)).size > 1000, f);
  const third = runCli([...GRID, '--json', '-o', g]);
  assert.equal(JSON.parse(third.stdout).ran, 0, 'nothing left to do');
});

test('a grid whose worker processes are SIGKILLed keeps finished cells; the rerun (2 workers) finishes the rest', async () => {
  const g = join(dir, 'killed');
  const args = [...GRID, '--controls', '--senders', 'stem', '--workers', '2', '-o', g];
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: 'ignore', detached: true });
  // wait for the first finished cell, then kill the whole process group (CLI and its workers)
  const start = Date.now();
  while (cellFiles(g).length < 1 && Date.now() - start < 60_000) await new Promise((r) => setTimeout(r, 100));
  process.kill(-child.pid!, 'SIGKILL');
  await new Promise((r) => child.on('close', r));
  const kept = cellFiles(g);
  assert.ok(kept.length >= 1 && kept.length < 8, `${kept.length} cells finished before the kill`);
  const contents = new Map(kept.map((f) => [f, readFileSync(join(g, 'cells', f), 'utf8')]));
  const rerun = runCli([...args, '--json']);
  assert.equal(rerun.code, 0, rerun.stderr);
  const r = JSON.parse(rerun.stdout);
  assert.equal(r.resumed, kept.length);
  assert.equal(r.ran, 8 - kept.length);
  assert.equal(cellFiles(g).length, 8);
  for (const [f, text] of contents) assert.equal(readFileSync(join(g, 'cells', f), 'utf8'), text, `${f} was not recomputed`);
  assert.deepEqual(Object.keys(r.matrix.matrices.accuracy).sort(), ['random-both', 'random-receiver', 'random-sender', 'trained']);
  assert.ok(r.matrix.base.A0 !== undefined && r.matrix.base.B0 !== undefined);
});

test('bad input: unknown cut names, different input shapes, sizes no integer stride joins: one clear line each', () => {
  const unknown = runCli([...GRID, '--senders', 'layer9.9', '-o', join(dir, 'bad1')]);
  assert.ok(isOneLineError(unknown), unknown.stderr);
  assert.match(unknown.stderr, /cut "layer9\.9" does not exist in .*r21\.onnx; its cut points are: stem, layer1\.0/);

  const cifar = join(dir, 'cifar.onnx');
  saveModel(createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.125, input: [3, 32, 32], seed: 1 }), cifar);
  const shapes = runCli(['stitch', a.file, cifar, '--data', 'fashion-mnist-sample', '-o', join(dir, 'bad2')]);
  assert.ok(isOneLineError(shapes), shapes.stderr);
  assert.match(shapes.stderr, /takes inputs of shape 1x28x28 but .*cifar\.onnx takes 3x32x32/);

  const lenet = join(dir, 'lenet.onnx');
  saveModel(createZooModel('lenet5', { seed: 1 }), lenet);
  // LeNet's unpadded 5x5 convolutions: 5x5 into the ResNet's 7x7 is no stride r, floor or ceil
  const ratio = runCli(['stitch', lenet, a.file, '--data', 'fashion-mnist-sample', '--senders', 'conv2', '--receivers', 'layer3.0', '-o', join(dir, 'bad3')]);
  assert.ok(isOneLineError(ratio), ratio.stderr);
  assert.match(ratio.stderr, /"conv2".*"layer3\.0".*5x5 and 7x7 differ by no integer stride/);
});

test('--list-cuts lists cut points with shapes', () => {
  const r = runCli(['stitch', a.file, '--list-cuts', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const cuts = JSON.parse(r.stdout).models[0].cuts;
  assert.deepEqual(cuts.find((c: { name: string }) => c.name === 'layer2.0').shape, [16, 14, 14]);
});
