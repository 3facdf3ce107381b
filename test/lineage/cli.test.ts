import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, isOneLineError } from '../helpers/cli.js';
import { writeSyntheticZoo } from '../../src/lineage/synthetic.js';
import { tempDir } from '../helpers/paths.js';

test('modelsmith lineage writes forest files, prints the tree and the accuracies', () => {
  const dir = tempDir();
  writeSyntheticZoo(dir, { trees: 2, children: 2, depth: 2, layers: 2, size: 16, seed: 5 });
  const out = join(tempDir(), 'out');
  const r = runCli(['lineage', dir, '--clusters', '2', '--lambda', '0', '--truth', join(dir, 'truth.json'), '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  for (const f of ['forest.json', 'forest.dot', 'forest.svg', 'forest.png']) assert.ok(existsSync(join(out, f)), f);
  assert.match(r.stdout, /tree 1 \(7 models\)/);
  assert.match(r.stdout, /├─ |└─ /);
  assert.match(r.stdout, /directed accuracy \d+\.\d+% .* undirected 100\.00%, clustering 100\.00%/);
  assert.match(r.stderr, /square 2-D/);
  const forest = JSON.parse(readFileSync(join(out, 'forest.json'), 'utf8'));
  assert.equal(forest.edges.length, 12);
  assert.equal(forest.score.undirected, 1);
  assert.match(readFileSync(join(out, 'forest.svg'), 'utf8'), /<svg/);
  assert.deepEqual([...readFileSync(join(out, 'forest.png')).subarray(1, 4)], [0x50, 0x4e, 0x47]);

  const j = runCli(['lineage', dir, '--json', '--layers', 'layer0.*', '--mode', 'spectral', '--signal', 'norm', '-o', out]);
  assert.equal(j.code, 0, j.stderr);
  const res = JSON.parse(j.stdout);
  assert.deepEqual(
    res.selection.layers.map((l: { name: string }) => l.name),
    ['layer0.weight'],
  );
  assert.equal(res.settings.clusters.estimated, true);
  assert.equal(res.settings.mode, 'spectral');
  assert.equal(res.settings.schatten, 0.25);
  assert.equal(res.settings.direction, 'parent-lower');
  assert.equal(j.stderr, '');
});

test('modelsmith lineage errors are one clear line', () => {
  const dir = tempDir();
  writeSyntheticZoo(dir, { trees: 1, children: 2, depth: 1, layers: 1, size: 4, seed: 6 });
  const out = join(tempDir(), 'out');
  const bad = join(dir, 'broken.safetensors');
  const cases: [string[], RegExp][] = [
    [[dir, '--clusters', '0'], /--clusters expects a positive integer/],
    [[dir, '--clusters', 'two'], /--clusters/],
    [[dir, '--clusters', '9'], /--clusters must be an integer from 1 to 3/],
    [[dir, '--mode', 'lora'], /--mode expects auto, ft, lowrank or spectral, got "lora"/],
    [[dir, '--schatten', '0'], /--schatten/],
    [[dir, '--schatten', '3'], /--schatten must be in \(0, 2\]/],
    [[dir, '--signal', 'age'], /--signal expects kurtosis or norm, got "age"/],
    [[dir, '--placement', 'tree'], /--placement expects arborescence or rooted-mst/],
    [[dir, '--cluster-distance', 'l2'], /--cluster-distance expects reference or selected/],
    [[dir, '--lambda', '-1'], /--lambda/],
    [[dir, '--direction', 'up'], /--direction/],
    [[dir, '--layers', 'nothing*'], /matches no tensor/],
    [[join(dir, 'missing')], /missing/],
  ];
  for (const [args, re] of cases) {
    const r = runCli(['lineage', ...args, '-o', out]);
    assert.ok(isOneLineError(r), `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
  writeFileSync(join(dir, 'truth-bad.json'), '{"edges": [["t0", "ghost"]]}');
  let r = runCli(['lineage', dir, '--truth', join(dir, 'truth-bad.json'), '-o', out]);
  assert.ok(isOneLineError(r), r.stderr);
  assert.match(r.stderr, /"ghost", which is not one of the 3 models/);
  writeFileSync(bad, Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, 123]));
  r = runCli(['lineage', dir, '-o', out]);
  assert.ok(isOneLineError(r), r.stderr);
  assert.match(r.stderr, /broken\.safetensors/);
  const other = tempDir();
  writeSyntheticZoo(other, { trees: 1, children: 1, depth: 1, layers: 1, size: 6, seed: 7 });
  r = runCli(['lineage', join(dir, 't0.safetensors'), join(other, 't0-0.safetensors'), '-o', out]);
  assert.ok(isOneLineError(r), r.stderr);
  assert.match(r.stderr, /\[6x6\] in t0-0 but \[4x4\] in t0/);
});
