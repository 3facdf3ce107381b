import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { closeSources, expandInputs, modelStem, openSources } from '../../src/lineage/sources.js';
import { all2dLayers, layerPattern, selectLayers } from '../../src/lineage/select.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { float32, floatToHalf, tensor } from '../../src/onnx/tensor.js';
import { createZooModel } from '../../src/nn/zoo.js';
import { saveModel } from '../../src/onnx/proto.js';
import { tempDir } from '../helpers/paths.js';
import { assertUserError } from '../helpers/assertions.js';

const sq = (n: number, v = 1): ReturnType<typeof float32> => float32([n, n], new Float32Array(n * n).fill(v));

function model(dir: string, name: string, extra: Record<string, ReturnType<typeof float32>> = {}): string {
  const p = join(dir, `${name}.safetensors`);
  writeSafetensors(p, { 'a.weight': sq(4), 'b.weight': sq(4, 2), 'head.weight': float32([2, 4], new Float32Array(8)), 'a.bias': float32([4]), ...extra });
  return p;
}

test('inputs: folders, list files and single files resolve to models named by stem', () => {
  const dir = tempDir();
  const sub = join(dir, 'more');
  mkdirSync(sub);
  model(dir, 'm1');
  model(dir, 'm2');
  model(sub, 'm3');
  writeFileSync(join(dir, 'notes.md'), 'ignored');
  const list = join(dir, 'list.txt');
  writeFileSync(list, '# models\nmore/m3.safetensors\n\n');
  assert.deepEqual(expandInputs([dir]).map(modelStem), ['m1', 'm2']);
  assert.deepEqual(expandInputs([list]).map(modelStem), ['m3']);
  const ms = openSources([dir, list]);
  assert.deepEqual(
    ms.map((m) => m.name),
    ['m1', 'm2', 'm3'],
  );
  assert.deepEqual([...ms[1]!.read('b.weight')].slice(0, 2), [2, 2]);
  closeSources(ms);
  assertUserError(() => openSources([dir, join(dir, 'm1.safetensors')]), '"m1"', 'unique');
  assertUserError(() => openSources([join(dir, 'nope')]), 'nope', 'ENOENT');
  assertUserError(() => openSources([join(dir, 'notes.md')]), 'notes.md', 'not a model file');
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  assertUserError(() => openSources([empty]), 'no .safetensors or .onnx');
  assertUserError(() => openSources([]), 'no model');
});

test('a malformed model file is refused with its name', () => {
  const dir = tempDir();
  model(dir, 'good');
  writeFileSync(join(dir, 'bad.safetensors'), 'not a safetensors file at all');
  assertUserError(() => openSources([dir]), 'bad.safetensors');
  const d2 = tempDir();
  writeFileSync(join(d2, 'x.onnx'), Uint8Array.from([1, 2, 3, 250, 250, 250]));
  assertUserError(() => openSources([d2]), 'x.onnx');
});

test('default selection: square 2-D float matrices; patterns: globs and /regex/', () => {
  const dir = tempDir();
  model(dir, 'm1', { 'emb.weight': tensor('int32', [3, 3]) as ReturnType<typeof float32> });
  model(dir, 'm2', { 'emb.weight': tensor('int32', [3, 3]) as ReturnType<typeof float32> });
  const ms = openSources([dir]);
  const def = selectLayers(ms);
  assert.deepEqual(def.layers.map((l) => l.name).sort(), ['a.weight', 'b.weight']);
  assert.match(def.rule, /square 2-D/);
  assert.deepEqual(
    selectLayers(ms, { patterns: ['a.*'] })
      .layers.map((l) => l.name)
      .sort(),
    ['a.bias', 'a.weight'],
  );
  assert.deepEqual(
    selectLayers(ms, { patterns: ['/^(head|b)\\.weight$/'] })
      .layers.map((l) => l.name)
      .sort(),
    ['b.weight', 'head.weight'],
  );
  assert.deepEqual(
    all2dLayers(ms)
      .map((l) => l.name)
      .sort(),
    ['a.weight', 'b.weight', 'head.weight'],
  );
  assertUserError(() => selectLayers(ms, { patterns: ['zzz*'] }), 'zzz*', 'matches no tensor', 'm1');
  assertUserError(() => selectLayers(ms, { patterns: ['emb.*'] }), 'emb.weight', 'not floating point');
  assertUserError(() => layerPattern('/(/'), 'regular expression');
  assert.ok(layerPattern('a?.w*').test('ab.weight'));
  assert.ok(!layerPattern('a.w').test('abw'), 'dots are literal in globs');
  closeSources(ms);
});

test('models that do not share the selected layers are named, not dropped', () => {
  const dir = tempDir();
  model(dir, 'm1');
  writeSafetensors(join(dir, 'm2.safetensors'), { 'a.weight': sq(4) });
  writeSafetensors(join(dir, 'm3.safetensors'), { 'a.weight': sq(4), 'b.weight': sq(5) });
  let ms = openSources([join(dir, 'm1.safetensors'), join(dir, 'm2.safetensors')]);
  assertUserError(() => selectLayers(ms), 'm2', '"b.weight"', 'no layer');
  closeSources(ms);
  ms = openSources([join(dir, 'm1.safetensors'), join(dir, 'm3.safetensors')]);
  assertUserError(() => selectLayers(ms), 'm3', '"b.weight"', '5x5', '4x4');
  closeSources(ms);
  const other = tempDir();
  writeSafetensors(join(other, 'v.safetensors'), { vec: float32([4]) });
  writeSafetensors(join(other, 'w.safetensors'), { vec: float32([4]) });
  ms = openSources([other]);
  assertUserError(() => selectLayers(ms), 'no square 2-D', 'choose layers with layers (');
  closeSources(ms);
});

test('ONNX models are read through their initializers', () => {
  const dir = tempDir();
  for (const seed of [1, 2]) saveModel(createZooModel('mlp', { hidden: [16, 16], input: [1, 4, 4], classes: 3, seed }), join(dir, `mlp${seed}.onnx`));
  const ms = openSources([dir]);
  const sel = selectLayers(ms);
  assert.equal(sel.layers.length, 2, `square layers: ${sel.layers.map((l) => l.name)}`);
  assert.deepEqual(sel.layers[0]!.shape, [16, 16]);
  const a = ms[0]!.read(sel.layers[0]!.name),
    b = ms[1]!.read(sel.layers[0]!.name);
  assert.equal(a.length, 256);
  assert.notDeepEqual([...a], [...b], 'different seeds, different weights');
  closeSources(ms);
});

test('readInto writes a layer into a slice of a shared buffer: float32 read straight in, float16 and ONNX converted, wrong sizes named', () => {
  const dir = tempDir();
  const half = Uint16Array.from([0.5, -2, 3, 0.25], floatToHalf);
  writeSafetensors(join(dir, 'a.safetensors'), { 'w.weight': float32([2, 2], Float32Array.of(1, -2, 3.5, 4)), 'h.weight': tensor('float16', [2, 2], half) });
  saveModel(createZooModel('mlp', { hidden: [4], input: [1, 2, 2], classes: 2, seed: 3 }), join(dir, 'b.onnx'));
  const [a, b] = openSources([join(dir, 'a.safetensors'), join(dir, 'b.onnx')]);
  const buffer = new Float32Array(new SharedArrayBuffer(4 * 10)).fill(9);
  a!.readInto('w.weight', buffer.subarray(3, 7));
  assert.deepEqual([...buffer], [9, 9, 9, 1, -2, 3.5, 4, 9, 9, 9], 'only the slice is written');
  a!.readInto('h.weight', buffer.subarray(0, 4));
  assert.deepEqual([...buffer.subarray(0, 4)], [0.5, -2, 3, 0.25]);
  assertUserError(() => a!.readInto('w.weight', buffer.subarray(0, 5)), 'layer "w.weight" of a holds 4 values, expected 5');
  const layer = b!.layers().find((l) => l.shape.length === 2)!;
  const size = layer.shape[0]! * layer.shape[1]!;
  const onnx = new Float32Array(size);
  b!.readInto(layer.name, onnx);
  assert.deepEqual(onnx, b!.read(layer.name));
  assertUserError(() => b!.readInto(layer.name, new Float32Array(size + 1)), `of b holds ${size} values`);
  closeSources([a!, b!]);
});
