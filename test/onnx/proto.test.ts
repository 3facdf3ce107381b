import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Model } from '../../src/onnx/types.js';
import { decodeModel, encodeModel, loadModel, saveModel } from '../../src/onnx/proto.js';
import { float, int, ints, str } from '../../src/onnx/graph.js';
import { float32, floatToHalf, int64, tensor } from '../../src/onnx/tensor.js';
import { buildModel, node, vi } from '../helpers/graphs.js';
import { tempDir } from '../helpers/paths.js';

function sampleModel(): Model {
  const m = buildModel({
    inputs: [vi('x', ['N', 4]), vi('ids', [3], 'int64')],
    outputs: [vi('y', ['N', 4])],
    initializers: {
      w: float32([2, 2], [1.5, -2, 0.25, 3]),
      shape: int64([2], [-1, 4]),
      half: tensor('float16', [3], Uint16Array.from([1, -0.5, 65504].map(floatToHalf))),
      big: int64([1], [Number.MAX_SAFE_INTEGER]),
    },
    nodes: [
      node(
        'Custom',
        ['x', 'w', ''],
        ['y', ''],
        {
          i: int(-7),
          f: float(0.5),
          s: str('héllo'),
          is: ints([1, -2, 3]),
          fs: { kind: 'floats', value: [0.25, -1] },
          ss: { kind: 'strings', value: ['a', 'b c'] },
          t: { kind: 'tensor', value: int64([2], [5, -6]) },
        },
        'custom_node',
      ),
    ],
  });
  m.metadata = { 'modelsmith.arch': '{"name":"test"}', note: 'ünïcode' };
  m.graph.valueInfo.set('mid', vi('mid', [null, 'K', 3]));
  return m;
}

function assertSameModel(a: Model, b: Model): void {
  assert.deepEqual(b.graph.nodes, a.graph.nodes);
  assert.deepEqual([...b.graph.initializers.keys()], [...a.graph.initializers.keys()]);
  for (const [k, t] of a.graph.initializers) {
    const u = b.graph.initializers.get(k)!;
    assert.equal(u.dtype, t.dtype, k);
    assert.deepEqual(u.dims, t.dims, k);
    assert.deepEqual(Array.from(u.data as ArrayLike<number>), Array.from(t.data as ArrayLike<number>), k);
  }
  assert.deepEqual(b.graph.inputs, a.graph.inputs);
  assert.deepEqual(b.graph.outputs, a.graph.outputs);
  assert.deepEqual([...b.graph.valueInfo], [...a.graph.valueInfo]);
  assert.deepEqual(b.metadata, a.metadata);
  assert.deepEqual(b.opsets, a.opsets);
  assert.equal(b.irVersion, a.irVersion);
}

test('encodeModel/decodeModel round-trips nodes, every attribute kind, initializers and metadata', () => {
  const m = sampleModel();
  const back = decodeModel(encodeModel(m));
  assertSameModel(m, back);
  assert.equal(back.graph.initializers.get('big')!.data[0], BigInt(Number.MAX_SAFE_INTEGER));
  assert.deepEqual(Array.from(back.graph.initializers.get('half')!.data as Uint16Array), [0x3c00, 0xb800, 0x7bff]);
});

test('saveModel + loadModel through a file gives the same model', () => {
  const path = join(tempDir(), 'm.onnx');
  const m = sampleModel();
  saveModel(m, path);
  assertSameModel(m, loadModel(path));
});
