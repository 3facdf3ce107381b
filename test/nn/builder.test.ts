import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder, poolOutput } from '../../src/nn/builder.js';
import { topoSort } from '../../src/onnx/graph.js';
import { UserError } from '../../src/util/errors.js';
import { randomInput, recordedShapes, runModel } from './run-model.js';

test("every builder op runs, and the tracked shapes match the runtime's", async () => {
  const b = new GraphBuilder({ seed: 1 });
  const x = b.input('input', [4, 8, 12]);
  const c1 = b.conv(x, { out: 6, kernel: 3, stride: 2, pad: 1, bias: false }, 'c1');
  const c2 = b.conv(x, { out: 6, kernel: 3, dilation: 2, groups: 2, pad: 2, stride: 2 }, 'c2');
  const s = b.relu(b.add(b.batchNorm(c1, 'bn'), c2, 'sum'), 'sum.relu');
  const mp = b.maxPool(s, { kernel: 2, stride: 2, pad: 1, ceil: true }, 'mp');
  const ap = b.avgPool(s, { kernel: 3, stride: 2, ceil: true });
  const up = b.resize(ap, 2, 'up');
  const cat = b.concat([s, b.dropout(up, 0.5)], 1, 'cat');
  const f = b.concat([b.flatten(b.globalAvgPool(cat, 'gap'), 'flat'), b.flatten(mp)], 1, 'features');
  b.output(b.linear(b.relu(b.linear(f, 8, 'fc1')), 3, 'fc2', { init: 'uniform' }), 'logits');
  const model = b.build();
  assert.equal(topoSort(model.graph).length, model.graph.nodes.length);

  const shapes = recordedShapes(model, 2);
  assert.deepEqual(shapes.get('mp'), [2, 6, 3, 4]);
  assert.deepEqual(shapes.get('cat'), [2, 12, 4, 6]);
  assert.deepEqual(shapes.get('features'), [2, 12 + 6 * 3 * 4]);
  assert.deepEqual(shapes.get('logits'), [2, 3]);
  const input = randomInput(2 * 4 * 8 * 12);
  const { outputs } = await runModel(model, { input: { dims: [2, 4, 8, 12], data: input } }, [...shapes.keys()]);
  for (const [name, dims] of shapes) assert.deepEqual(outputs.get(name)?.dims, dims, `shape of ${name}`);

  // Resize is nearest with integer scale: output (i, j) reads input (i/2, j/2) rounded down.
  const a = outputs.get(ap.name)!,
    u = outputs.get('up')!;
  const [, C, H, W] = a.dims as [number, number, number, number];
  for (let c = 0; c < 2 * C; c++) {
    for (let i = 0; i < 2 * H; i++)
      for (let j = 0; j < 2 * W; j++) {
        assert.equal(u.data[(c * 2 * H + i) * 2 * W + j], a.data[(c * H + (i >> 1)) * W + (j >> 1)]);
      }
  }
  // Dropout is the identity at inference: the concatenated tail equals the upsampled tensor.
  const catT = outputs.get('cat')!;
  const per = 6 * 4 * 6;
  assert.deepEqual(catT.data.slice(per, 2 * per), u.data.slice(0, per));
});

test('linear is Gemm with a [out, in] weight, as PyTorch', async () => {
  const b = new GraphBuilder({ seed: 4 });
  const x = b.input('input', [3]);
  b.output(b.linear(x, 2, 'fc', { init: 'uniform' }), 'y');
  const model = b.build();
  const w = model.graph.initializers.get('fc.weight')!;
  const bias = model.graph.initializers.get('fc.bias')!.data as Float32Array;
  assert.deepEqual(w.dims, [2, 3]);
  const { outputs } = await runModel(model, { input: { dims: [1, 3], data: new Float32Array([1, 2, 3]) } });
  const wd = w.data as Float32Array;
  for (let o = 0; o < 2; o++) {
    const expected = wd[o * 3]! + 2 * wd[o * 3 + 1]! + 3 * wd[o * 3 + 2]! + bias[o]!;
    assert.ok(Math.abs(outputs.get('y')!.data[o]! - expected) < 1e-5);
  }
});

test('pool output sizes agree with the runtime, ceil mode included', async () => {
  const cases: [n: number, k: number, s: number, p: number, ceil: boolean][] = [
    [5, 2, 2, 1, true],
    [7, 2, 2, 0, true],
    [7, 3, 2, 1, true],
    [6, 3, 3, 1, true],
    [28, 2, 2, 0, false],
    [3, 2, 2, 0, false],
    [8, 3, 2, 1, false],
  ];
  for (const [n, k, s, p, ceil] of cases) {
    const b = new GraphBuilder();
    const x = b.input('input', [1, n, n]);
    const y = b.output(b.maxPool(x, { kernel: k, stride: s, pad: p, ceil }), 'y');
    assert.equal(y.shape[1], poolOutput(n, k, s, p, ceil));
    const { outputs } = await runModel(b.build(), { input: { dims: [1, 1, n, n], data: randomInput(n * n) } });
    assert.deepEqual(outputs.get('y')!.dims, [1, 1, ...y.shape.slice(1)], `n=${n} k=${k} s=${s} p=${p} ceil=${ceil}`);
  }
  assert.equal(poolOutput(5, 2, 2, 1, true), 3, 'a last window starting in the padding is dropped');
});

test('builder names: node name = output tensor; parameters <layer>.weight/.bias; unnamed layers get unique names', () => {
  const b = new GraphBuilder();
  const x = b.input('input', [1, 4, 4]);
  const r1 = b.relu(b.conv(x, { out: 2, kernel: 1 }, 'conv'));
  const r2 = b.relu(r1);
  assert.equal(r1.name, 'conv.relu');
  assert.notEqual(r2.name, r1.name);
  b.output(r2, 'out');
  const g = b.build().graph;
  assert.deepEqual([...g.initializers.keys()], ['conv.weight', 'conv.bias']);
  for (const n of g.nodes) assert.deepEqual(n.outputs, [n.name]);
  assert.equal(g.nodes.at(-1)!.name, 'out', 'the output is renamed, not copied by an Identity');
  assert.ok(!g.nodes.some((n) => n.opType === 'Identity'));
});

test('builder errors name the layer and what was expected', () => {
  const b = new GraphBuilder();
  const x = b.input('input', [3, 4, 4]);
  const expect = (f: () => unknown, re: RegExp): void => assert.throws(f, (e: unknown) => e instanceof UserError && re.test(e.message));
  expect(() => b.conv(x, { out: 2, kernel: 5 }, 'big'), /big: input 4x4 is too small/);
  expect(() => b.conv(x, { out: 4, kernel: 1, groups: 2 }, 'g'), /g: groups=2 must divide/);
  expect(() => b.linear(x, 3, 'fc'), /fc: linear needs a flat input/);
  const c = b.conv(x, { out: 2, kernel: 1 }, 'c');
  expect(() => b.conv(x, { out: 2, kernel: 1 }, 'c'), /"c" is already used/);
  expect(() => b.add(c, x, 'sum'), /sum: cannot add/);
  expect(() => b.concat([c, x], 0), /axis must be in 1\.\.3/);
  expect(() => b.concat([c, b.maxPool(x, { kernel: 2 })], 1), /cannot concatenate/);
  expect(() => b.dropout(c, 1), /ratio/);
  expect(() => b.build(), /no output/);
});

test('token layers: gelu equals the exact erf form, a prepended token sits at position 0, select takes it back', async () => {
  const b = new GraphBuilder({ seed: 2 });
  const x = b.input('input', [3, 4]);
  const g = b.gelu(x, 'g');
  const t = b.prependToken(x, 'tok', { kind: 'normal', std: 1 }, 'with_tok');
  const first = b.select(t, 0, 0, 'first');
  b.output(g, 'gelu');
  b.output(first, 'first_out');
  b.output(b.softmax(b.matmul(t, b.transpose(t, [1, 0], 'tt'), 'gram'), -1, 'attn'), 'attn_out');
  const model = b.build();
  const data = Float32Array.from({ length: 2 * 12 }, (_, i) => (i - 12) / 4);
  const { outputs } = await runModel(model, { input: { dims: [2, 3, 4], data } });
  // erf by Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7)
  const erf = (v: number): number => {
    const s = Math.sign(v),
      a = Math.abs(v),
      k = 1 / (1 + 0.3275911 * a);
    return s * (1 - ((((1.061405429 * k - 1.453152027) * k + 1.421413741) * k - 0.284496736) * k + 0.254829592) * k * Math.exp(-a * a));
  };
  outputs.get('gelu')!.data.forEach((v, i) => assert.ok(Math.abs(v - 0.5 * data[i]! * (1 + erf(data[i]! / Math.SQRT2))) < 1e-5));
  const tok = model.graph.initializers.get('tok')!.data as Float32Array;
  assert.deepEqual(outputs.get('first_out')!.dims, [2, 4]);
  for (let n = 0; n < 2; n++) for (let j = 0; j < 4; j++) assert.equal(outputs.get('first_out')!.data[n * 4 + j], tok[j]);
  assert.deepEqual(outputs.get('attn_out')!.dims, [2, 4, 4]);
  const row = outputs.get('attn_out')!.data.slice(0, 4);
  assert.ok(Math.abs(row.reduce((s, v) => s + v, 0) - 1) < 1e-6, 'softmax rows sum to 1');
});

test('token layer errors name the layer and what was expected', () => {
  const b = new GraphBuilder();
  const x = b.input('input', [6, 4]);
  const expect = (f: () => unknown, re: RegExp): void => assert.throws(f, (e: unknown) => e instanceof UserError && re.test(e.message));
  expect(() => b.reshape(x, [5, 5], 'r'), /r: cannot reshape \[6,4\] to \[5,5\]/);
  expect(() => b.transpose(x, [0, 0], 't'), /t: perm \[0,0\] is not a permutation/);
  expect(() => b.split(x, -1, [1, 2], ['a', 'b']), /do not add up/);
  expect(() => b.select(x, 0, 6, 's'), /index 6 is outside axis 0/);
  expect(() => b.softmax(x, 2, 'sm'), /axis 2 is outside the 2 per-sample axes/);
  expect(() => b.matmul(x, x, 'mm'), /cannot multiply/);
});
