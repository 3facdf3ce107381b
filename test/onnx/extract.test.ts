import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addOutputs, extractSubgraph } from '../../src/onnx/extract.js';
import { validateModel } from '../../src/onnx/validate.js';
import { setArch, getArch } from '../../src/onnx/metadata.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/random.js';
import { randn, residualNet, runOrt, tinyConvNet } from '../helpers/graphs.js';

test("the middle part, run on a tapped intermediate tensor, gives the whole model's output", async () => {
  const m = tinyConvNet();
  setArch(m, { name: 'tiny' });
  const tapped = addOutputs(m, ['relu1']);
  assert.deepEqual(
    tapped.graph.outputs.map((o) => o.name),
    ['logits', 'relu1'],
  );
  assert.deepEqual(tapped.graph.outputs[1], { name: 'relu1', dtype: 'float32', shape: ['N', 4, 8, 8] });

  const mid = extractSubgraph(m, ['relu1'], ['logits']);
  assert.deepEqual(
    mid.graph.nodes.map((n) => n.name),
    ['pool1', 'flatten', 'fc'],
  );
  assert.deepEqual(mid.graph.inputs, [{ name: 'relu1', dtype: 'float32', shape: ['N', 4, 8, 8] }]);
  assert.deepEqual([...mid.graph.initializers.keys()].sort(), ['fc_b', 'fc_w']);
  assert.deepEqual(getArch(mid), { name: 'tiny' });
  assert.deepEqual(mid.opsets, m.opsets);
  validateModel(mid);

  const x = randn(new Rng(7), [2, 3, 8, 8], 1);
  const whole = await runOrt(tapped, { input: x });
  const relu1 = whole['relu1']!;
  const part = await runOrt(mid, { relu1: { dtype: 'float32', dims: relu1.dims, data: relu1.data as Float32Array } });
  assert.deepEqual(Array.from(part['logits']!.data as Float32Array), Array.from(whole['logits']!.data as Float32Array));
});

test("a residual block cut in the middle needs both branches' inputs", async () => {
  const m = residualNet();
  assert.throws(
    () => extractSubgraph(m, ['r'], ['out']),
    (e: unknown) => e instanceof UserError && /output "out" depends on tensor "input", which is not among the given inputs \[r\]/.test(e.message),
  );
  const tail = extractSubgraph(m, ['r', 'input'], ['out']);
  assert.deepEqual(
    tail.graph.nodes.map((n) => n.opType),
    ['Add', 'Relu', 'GlobalAveragePool', 'Flatten', 'Gemm'],
  );
  const head = extractSubgraph(m, ['input'], ['r']);
  assert.deepEqual(head.graph.outputs, [{ name: 'r', dtype: 'float32', shape: ['N', 2, 6, 6] }]);
  const x = randn(new Rng(1), [1, 2, 6, 6], 1);
  const r = (await runOrt(head, { input: x }))['r']!;
  const viaParts = await runOrt(tail, { r: { dtype: 'float32', dims: r.dims, data: r.data as Float32Array }, input: x });
  const whole = await runOrt(m, { input: x });
  assert.deepEqual(Array.from(viaParts['out']!.data as Float32Array), Array.from(whole['out']!.data as Float32Array));
});

test('an unknown tensor name is refused with nearby names', () => {
  const m = tinyConvNet();
  assert.throws(
    () => extractSubgraph(m, ['relu_1'], ['logits']),
    (e: unknown) => e instanceof UserError && /tensor "relu_1" does not exist in model; nearby names: relu1/.test(e.message),
  );
  assert.throws(() => addOutputs(m, ['nope']), /tensor "nope" does not exist in model/);
});
