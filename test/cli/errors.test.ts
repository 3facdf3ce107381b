import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { runCli, isOneLineError } from '../helpers/cli.js';
import { fixture, tempDir } from '../helpers/paths.js';
import { packagePath } from '../../src/util/paths.js';
import { saveModel } from '../../src/onnx/proto.js';
import { constantClassifier, onehot } from '../helpers/models.js';

const dir = tempDir();
const good = fixture('torch', 'resnet_small.onnx');
const model = join(dir, 'const.onnx');
saveModel(constantClassifier(onehot(10, 0)), model);

function expectError(args: string[], pattern: RegExp, env: Record<string, string> = {}): void {
  const r = runCli(args, env);
  assert.ok(isOneLineError(r), `expected a one-line error, got code ${r.code}, stderr:\n${r.stderr}`);
  assert.match(r.stderr, pattern);
}

test('a truncated .onnx file: one line naming the file', () => {
  const bytes = readFileSync(good);
  const truncated = join(dir, 'truncated.onnx');
  writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
  expectError(['inspect', truncated], /truncated\.onnx.*not a valid ONNX model/);
});

test('a file that is not ONNX', () => {
  const text = join(dir, 'notes.onnx');
  writeFileSync(text, 'these are my notes, not a model\n'.repeat(20));
  expectError(['inspect', text], /notes\.onnx/);
  expectError(['eval', text, '--data', 'fashion-mnist-sample'], /notes\.onnx/);
});

test('a missing model file', () => {
  expectError(['inspect', join(dir, 'nope.onnx')], /not found.*nope\.onnx/);
});

test('an unsupported operator: the error names the node and the operator', () => {
  const m = constantClassifier(onehot(10, 0));
  m.graph.nodes.splice(1, 0, { name: 'weird_node', opType: 'FancyOp', inputs: ['features'], outputs: ['features2'], attributes: {} });
  m.graph.nodes[2]!.inputs[0] = 'features2';
  const file = join(dir, 'fancy.onnx');
  saveModel(m, file);
  expectError(['inspect', file], /weird_node.*FancyOp/);
  expectError(['eval', file, '--data', 'fashion-mnist-sample'], /weird_node.*FancyOp/);
});

test('a missing dataset path', () => {
  expectError(['eval', model, '--data', join(dir, 'no-such-folder')], /no-such-folder/);
  expectError(['eval', model, '--data', 'cifar10:' + join(dir, 'no-cifar')], /no-cifar/);
});

test('a dataset whose labels exceed the class count', () => {
  const root = join(dir, 'data');
  const fm = join(root, 'fashion-mnist');
  mkdirSync(fm, { recursive: true });
  const sample = packagePath('data', 'sample', 'fashion-mnist');
  for (const f of ['t10k-images-idx3-ubyte.gz', 'train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz']) copyFileSync(join(sample, f), join(fm, f));
  const labels = gunzipSync(readFileSync(join(sample, 't10k-labels-idx1-ubyte.gz')));
  labels[8 + 5] = 12;
  writeFileSync(join(fm, 't10k-labels-idx1-ubyte.gz'), gzipSync(labels));
  expectError(['eval', model, '--data', 'fashion-mnist'], /label 12/, { MODELSMITH_DATA: root });
});

test('--classes out of range or malformed', () => {
  expectError(['eval', model, '--data', 'fashion-mnist-sample', '--classes', '0-2,12'], /12.*out of range/);
  expectError(['eval', model, '--data', 'fashion-mnist-sample', '--classes', 'two'], /--classes/);
});

test('a cut name that does not exist', () => {
  expectError(['extract', good, '--to', 'no_such_cut', '-o', join(dir, 'x.onnx')], /no_such_cut.*does not exist/);
});

test('bad option values name the flag', () => {
  expectError(['zoo', 'create', 'resnet', '--blocks', '1,x', '-o', join(dir, 'r.onnx')], /--blocks/);
  expectError(['zoo', 'create', 'resnet', '--input', '28x28', '-o', join(dir, 'r.onnx')], /--input/);
  expectError(['zoo', 'create', 'alexnet', '-o', join(dir, 'r.onnx')], /alexnet/);
  expectError(['eval', model, '--data', 'fashion-mnist-sample', '--mean', '0.1,0.2'], /--mean|2 values/);
  expectError(
    ['stitch', good, good, '--data', 'fashion-mnist-sample', '--controls', '--random-bn', 'maybe', '-o', join(dir, 'g')],
    /--random-bn expects data or init, got "maybe"/,
  );
  expectError(
    ['cka', good, good, '--data', 'fashion-mnist-sample', '--random-bn', 'maybe', '-o', join(dir, 'k')],
    /--random-bn expects data or init, got "maybe"/,
  );
});
