import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeGraphs, prefixNames } from '../../src/onnx/merge.js';
import { extractSubgraph } from '../../src/onnx/extract.js';
import { validateModel } from '../../src/onnx/validate.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/random.js';
import { randn, runOrt, tinyConvNet } from '../helpers/graphs.js';

test('prefixNames renames nodes and tensors except the shared ones', () => {
  const g = prefixNames(tinyConvNet().graph, 'a/', ['input']);
  assert.deepEqual(g.nodes[0]!.inputs, ['input', 'a/w1', 'a/b1']);
  assert.equal(g.nodes[0]!.name, 'a/conv1');
  assert.deepEqual([...g.initializers.keys()].sort(), ['a/b1', 'a/fc_b', 'a/fc_w', 'a/w1']);
  assert.equal(g.inputs[0]!.name, 'input');
  assert.equal(g.outputs[0]!.name, 'a/logits');
});

test("two models side by side on a shared input produce each model's own outputs", async () => {
  const a = tinyConvNet(1);
  const b = tinyConvNet(2);
  const merged = mergeGraphs(
    [
      { model: a, prefix: 'a/' },
      { model: b, prefix: 'b/' },
    ],
    { shared: ['input'] },
  );
  validateModel(merged);
  assert.deepEqual(
    merged.graph.inputs.map((v) => v.name),
    ['input'],
  );
  assert.deepEqual(
    merged.graph.outputs.map((o) => [o.name, o.shape]),
    [
      ['a/logits', ['N', 10]],
      ['b/logits', ['N', 10]],
    ],
  );
  const x = randn(new Rng(3), [2, 3, 8, 8], 1);
  const both = await runOrt(merged, { input: x });
  const ra = await runOrt(a, { input: x });
  const rb = await runOrt(b, { input: x });
  assert.deepEqual(Array.from(both['a/logits']!.data as Float32Array), Array.from(ra['logits']!.data as Float32Array));
  assert.deepEqual(Array.from(both['b/logits']!.data as Float32Array), Array.from(rb['logits']!.data as Float32Array));
  assert.notDeepEqual(Array.from(both['a/logits']!.data as Float32Array), Array.from(both['b/logits']!.data as Float32Array));
});

test("connect chains one model's front into another model's back", async () => {
  const a = tinyConvNet(1);
  const b = tinyConvNet(2);
  const front = extractSubgraph(a, ['input'], ['features']);
  const back = extractSubgraph(b, ['features'], ['logits']);
  const chained = mergeGraphs(
    [
      { model: back, prefix: 'b/' },
      { model: front, prefix: 'a/' },
    ],
    {
      shared: ['input'],
      connect: [{ from: 'a/features', to: 'b/features' }],
    },
  );
  validateModel(chained);
  assert.deepEqual(
    chained.graph.inputs.map((v) => v.name),
    ['input'],
  );
  assert.deepEqual(
    chained.graph.outputs.map((o) => o.name),
    ['b/logits'],
  );
  // b's own front end: the result differs from b, but equals running a's front and b's back in turn.
  const x = randn(new Rng(4), [1, 3, 8, 8], 1);
  const feats = (await runOrt(front, { input: x }))['features']!;
  const expected = await runOrt(back, { features: { dtype: 'float32', dims: feats.dims, data: feats.data as Float32Array } });
  const got = await runOrt(chained, { input: x });
  assert.deepEqual(Array.from(got['b/logits']!.data as Float32Array), Array.from(expected['logits']!.data as Float32Array));
});

test('merging refuses clashing names and connections to non-inputs', () => {
  const a = tinyConvNet(1);
  assert.throws(
    () =>
      mergeGraphs([
        { model: a, prefix: 'x/' },
        { model: a, prefix: 'x/' },
      ]),
    /prefix "x\/" is used by two parts/,
  );
  assert.throws(
    () =>
      mergeGraphs(
        [
          { model: a, prefix: '' },
          { model: a, prefix: 'b/' },
        ],
        { shared: ['input', 'w1'] },
      ),
    (e: unknown) => e instanceof UserError && /tensor "w1" is defined by part 0 and part 1/.test(e.message),
  );
  assert.throws(
    () =>
      mergeGraphs(
        [
          { model: a, prefix: 'a/' },
          { model: a, prefix: 'b/' },
        ],
        { connect: [{ from: 'a/relu1', to: 'b/relu1' }] },
      ),
    /"b\/relu1" is not a graph input/,
  );
});
