import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createZooModel } from '../../src/nn/zoo.js';
import { getInputSpec, getLabels, setInputSpec, setLabels } from '../../src/onnx/metadata.js';
import { loadModel, saveModel } from '../../src/onnx/proto.js';
import { runCli, isOneLineError } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';

const dir = tempDir();

function save(name: string, classes: number[], seed: number, input: [number, number, number] = [1, 28, 28], normalised = true): string {
  const m = createZooModel('mlp', { hidden: [16], input, classes: classes.length, seed });
  setLabels(
    m,
    classes.map((c) => ({ dataset: 'fashion-mnist', class: c })),
  );
  if (normalised) setInputSpec(m, { shape: input, mean: [0.286], std: [0.353] });
  else delete m.metadata['modelsmith.input'];
  const f = join(dir, name);
  saveModel(m, f);
  return f;
}

test('modelsmith assemble writes the model and prints per-component and union accuracy', () => {
  const a = save('a.onnx', [0, 1, 2], 1),
    b = save('b.onnx', [3, 4], 2);
  const out = join(dir, 'ab.onnx');
  const r = runCli(['assemble', a, b, '--data', 'fashion-mnist-sample', '--scale-samples', '20', '-o', out, '--json', '--threads', '1']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.method, 'block-diagonal');
  assert.equal(j.outputs, 5);
  assert.equal(j.scaled, true);
  assert.equal(j.scaleFactors.length, 2);
  assert.deepEqual(
    j.components.map((c: { classes: number[] }) => c.classes),
    [
      [0, 1, 2],
      [3, 4],
    ],
  );
  assert.deepEqual(j.union[0].classes, [0, 1, 2, 3, 4]);
  assert.equal(j.union[0].samples, 500);
  assert.ok(j.union[0].accuracy >= 0 && j.union[0].accuracy <= 1);
  assert.deepEqual(
    getLabels(loadModel(out))!.map((l) => l.class),
    [0, 1, 2, 3, 4],
  );
  const text = runCli(['assemble', a, b, '--no-scale', '--data', 'fashion-mnist-sample', '-o', join(dir, 'ab2.onnx'), '--threads', '1']);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /not scaled/);
  assert.match(text.stdout, /assembled\s+fashion-mnist\s+0,1,2,3,4\s+500/);
});

test('modelsmith assemble: overlapping classes, input shapes and missing scale data are one-line errors', () => {
  const a = save('o1.onnx', [0, 1, 2], 1),
    b = save('o2.onnx', [2, 3], 2),
    c = save('small.onnx', [5], 3, [1, 14, 14]);
  const overlap = runCli(['assemble', a, b, '--no-scale', '-o', join(dir, 'x.onnx')]);
  assert.ok(isOneLineError(overlap), overlap.stderr);
  assert.match(overlap.stderr, /overlap in 1 class: fashion-mnist class 2/);
  const merged = runCli(['assemble', a, b, '--no-scale', '--overlap', 'merge', '--no-test', '-o', join(dir, 'm.onnx'), '--json']);
  assert.equal(merged.code, 0, merged.stderr);
  assert.equal(JSON.parse(merged.stdout).outputs, 4);
  const shapes = runCli(['assemble', a, c, '--no-scale', '-o', join(dir, 'y.onnx')]);
  assert.ok(isOneLineError(shapes), shapes.stderr);
  assert.match(shapes.stderr, /different input shapes/);
  const noData = runCli(['assemble', a, c, '-o', join(dir, 'z.onnx')]);
  assert.ok(isOneLineError(noData), noData.stderr);
  assert.match(noData.stderr, /--scale-data/);
});

test('modelsmith assemble: components without normalisation metadata get a one-line warning naming --mean/--std, or take them from the flags', () => {
  const a = save('n1.onnx', [0, 1], 1, [1, 28, 28], false),
    b = save('n2.onnx', [2, 3], 2, [1, 28, 28], false);
  assert.equal(getInputSpec(loadModel(a))?.mean, undefined, 'the component carries no normalisation');
  const warned = runCli(['assemble', a, b, '--no-scale', '--no-test', '-o', join(dir, 'n.onnx'), '--threads', '1']);
  assert.equal(warned.code, 0, warned.stderr);
  const lines = warned.stderr.split('\n').filter((l) => /carries no input normalisation/.test(l));
  assert.equal(lines.length, 2, warned.stderr);
  assert.match(lines[0]!, /n1\.onnx.*--mean\/--std/);
  assert.equal(getInputSpec(loadModel(join(dir, 'n.onnx')))?.mean, undefined);
  const given = runCli(['assemble', a, b, '--no-scale', '--no-test', '--mean', '0.286', '--std', '0.353', '-o', join(dir, 'g.onnx'), '--threads', '1']);
  assert.equal(given.code, 0, given.stderr);
  assert.doesNotMatch(given.stderr, /carries no input normalisation/);
  assert.deepEqual(getInputSpec(loadModel(join(dir, 'g.onnx'))), { shape: [1, 28, 28], mean: [0.286], std: [0.353] });
  // components that carry it: no warning, and the assembled model carries it on
  const c = save('m1.onnx', [4], 3),
    d = save('m2.onnx', [5], 4);
  const quiet = runCli(['assemble', c, d, '--no-scale', '--no-test', '-o', join(dir, 'q.onnx'), '--threads', '1']);
  assert.doesNotMatch(quiet.stderr, /normalisation/);
  assert.deepEqual(getInputSpec(loadModel(join(dir, 'q.onnx')))?.mean, [0.286]);
});
