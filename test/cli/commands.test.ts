import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { fixture, tempDir } from '../helpers/paths.js';

const dir = tempDir();

function json(args: string[]): Record<string, unknown> {
  const r = runCli([...args, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

test('zoo list names every architecture', () => {
  const r = json(['zoo', 'list']) as { architectures: { name: string }[] };
  const names = r.architectures.map((a) => a.name);
  for (const n of ['mlp', 'lenet5', 'vgg11', 'vgg16', 'resnet', 'resnet18', 'resnet34', 'resnet50', 'inception']) assert.ok(names.includes(n), n);
});

test('zoo create -> inspect -> eval, with JSON results', () => {
  const file = join(dir, 'r.onnx');
  const created = json(['zoo', 'create', 'resnet', '--blocks', '1,1,1,1', '--width', '0.25', '--seed', '3', '-o', file]);
  assert.ok(existsSync(file));
  const info = json(['inspect', file]) as {
    parameters: number;
    flopsPerImage: number;
    cuts: { name: string }[];
    operators: Record<string, number>;
    inputs: { shape: unknown[] }[];
  };
  assert.equal(info.parameters, created['parameters']);
  assert.ok(info.flopsPerImage > 1e6);
  assert.ok(info.cuts.length >= 6, 'stem, 4 blocks, features, logits');
  assert.ok(info.operators['Conv']! >= 9);
  assert.deepEqual(info.inputs[0]!.shape, ['N', 1, 28, 28]);
  const ev = json(['eval', file, '--data', 'fashion-mnist-sample', '--classes', '0-2', '--mean', '0.286', '--std', '0.353']) as {
    accuracy: number;
    perClass: Record<string, number>;
    samples: number;
    data: string;
  };
  assert.equal(ev.samples, 300);
  assert.deepEqual(Object.keys(ev.perClass).sort(), ['0', '1', '2']);
  assert.ok(ev.accuracy >= 0 && ev.accuracy <= 1);
  assert.match(ev.data, /sample/);
});

test('--json prints only JSON on stdout; --quiet prints nothing', () => {
  const file = fixture('torch', 'vgg_small.onnx');
  const quiet = runCli(['eval', file, '--data', 'fashion-mnist-sample', '--quiet']);
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.equal(quiet.stdout, '');
  assert.equal(quiet.stderr, '');
  const r = runCli(['inspect', file, '--json']);
  assert.doesNotThrow(() => JSON.parse(r.stdout));
});

test('a PyTorch export inspects (shape arithmetic folded) and evaluates', () => {
  for (const f of ['vgg_small.nofold.onnx', 'vgg_small.onnx']) {
    const info = json(['inspect', fixture('torch', f)]) as { parameters: number; flopsPerImage: number; outputs: { shape: unknown[] }[] };
    assert.equal(info.parameters > 29000, true);
    assert.ok(info.flopsPerImage > 0);
    assert.deepEqual(info.outputs[0]!.shape, ['N', 10]);
  }
});

test('extract cuts a zoo model at a cut point', () => {
  const file = join(dir, 'l.onnx');
  json(['zoo', 'create', 'lenet5', '-o', file]);
  const info = json(['inspect', file]) as { cuts: { name: string }[] };
  const cut = info.cuts[1]!.name;
  const part = join(dir, 'part.onnx');
  const r = json(['extract', file, '--to', cut, '-o', part]);
  assert.ok((r['nodes'] as number) > 0);
  assert.ok(existsSync(part));
});
