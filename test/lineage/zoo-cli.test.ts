import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, isOneLineError } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';

test('lineage-zoo CLI: bad options are one-line errors naming the flag', () => {
  const out = join(tempDir(), 'z');
  const cases: [string[], RegExp][] = [
    [['--trees', '0'], /--trees expects a positive integer, got 0/],
    [['--children', 'two'], /--children expects an integer, got "two"/],
    [['--depth', '-1'], /--depth expects a non-negative integer/],
    [['--lowrank', '4,x'], /--lowrank expects a comma-separated list of positive integer ranks such as 4,8, got "4,x"/],
    [['--lowrank', '0'], /--lowrank .* got "0"/],
    [['--variants', 'fp8'], /--variants expects a list of fp16, int8, pruned, got "fp8"/],
    [['--prune-fraction', '2'], /--prune-fraction expects a number in \(0, 1\), got 2/],
    [['--arch', 'nope'], /unknown architecture "nope"/],
    [['--lowrank', '200', '--hidden', '16,16'], /LoRA rank 200 is larger than layer fc1.weight allows \(16x784: at most 16\)/],
    [['--data', 'no/such/folder'], /no\/such\/folder/],
  ];
  for (const [args, msg] of cases) {
    const r = runCli([
      'lineage-zoo',
      '--data',
      'fashion-mnist-sample',
      '--steps',
      '2',
      '--root-steps',
      '2',
      '--trees',
      '1',
      '--children',
      '1',
      '--depth',
      '1',
      ...args,
      '-o',
      out,
    ]);
    assert.ok(isOneLineError(r), `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, msg);
  }
  assert.ok(!existsSync(out), 'nothing is trained or written when an option is bad');
  const file = `${out}.txt`;
  writeFileSync(file, 'not a folder');
  const r = runCli(['lineage-zoo', '--data', 'fashion-mnist-sample', '-o', file]);
  assert.ok(isOneLineError(r), r.stderr);
  assert.match(r.stderr, /is a file; expected a folder/);
});

test('lineage-zoo CLI: --json prints a summary; the folder holds models, truth and records', () => {
  const out = join(tempDir(), 'z');
  const r = runCli([
    '--threads',
    '1',
    'lineage-zoo',
    '--data',
    'fashion-mnist-sample',
    '--trees',
    '2',
    '--children',
    '1',
    '--depth',
    '1',
    '--hidden',
    '16,16',
    '--steps',
    '5',
    '--root-steps',
    '10',
    '--batch',
    '32',
    '--seed',
    '4',
    '--onnx',
    '--json',
    '-o',
    out,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { models: number; edges: number; trained: number; meanTestAccuracy: number };
  assert.deepEqual([j.models, j.edges, j.trained], [4, 2, 4]);
  assert.ok(j.meanTestAccuracy > 0.1 && j.meanTestAccuracy <= 1);
  const truth = JSON.parse(readFileSync(join(out, 'truth.json'), 'utf8')) as { edges: [string, string][] };
  for (const [p, c] of truth.edges) {
    assert.ok(existsSync(join(out, `${p}.safetensors`)) && existsSync(join(out, `${c}.safetensors`)));
    assert.ok(existsSync(join(out, 'onnx', `${c}.onnx`)));
  }
  // the written ONNX carries its task's labels, so eval scores it directly
  const child = truth.edges[0]![1];
  const ev = runCli(['eval', join(out, 'onnx', `${child}.onnx`), '--data', 'fashion-mnist-sample', '--json']);
  assert.equal(ev.code, 0, ev.stderr);
  assert.ok((JSON.parse(ev.stdout) as { accuracy: number }).accuracy > 0.1);
});
