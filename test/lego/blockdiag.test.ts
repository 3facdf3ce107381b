/**
 * Block-diagonal merge (src/lego/blockdiag.ts) on the torchvision families: the layers
 * really are merged (one Conv/MatMul per layer, grouped convolutions with the groups of
 * all components), and only what mixes a component's own channels (a LayerNorm over
 * channels, attention) runs once per component. Exactness is asserted in families.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Model, Node } from '../../src/onnx/types.js';
import { attrInt } from '../../src/onnx/graph.js';
import { loadModel } from '../../src/onnx/proto.js';
import { analyzeChannels } from '../../src/lego/channels.js';
import { pruneModel } from '../../src/lego/prune.js';
import { mergeBlockDiagonal } from '../../src/lego/blockdiag.js';
import { toFloat32 } from '../../src/onnx/tensor.js';
import { nameOf, randomKeep, splitNet, TV_FIXTURES } from './families-helpers.js';
import { logitsOf, maxRelDiff, randomBatch } from './disassemble-helpers.js';

function mergedPair(name: string): { parts: Model[]; merged: Model } {
  const cg = analyzeChannels(loadModel(TV_FIXTURES.find((f) => nameOf(f) === name)!));
  const parts = [1, 2].map((seed) => pruneModel(cg, randomKeep(cg, seed)));
  const r = mergeBlockDiagonal(parts);
  assert.ok('model' in r, 'reason' in r ? r.reason : '');
  return { parts, merged: r.model };
}

/** Nodes the merge emitted once per component (named <node>.c<k>). */
const perComponent = (m: Model): Node[] => m.graph.nodes.filter((n) => /\.c\d+$/.test(n.name));

// ConvNeXt, the ViT and Swin normalise over channels (and attend): those nodes run per component (tested below)
for (const name of TV_FIXTURES.map(nameOf).filter((n) => !['tv_convnext', 'tv_vit', 'tv_swin'].includes(n))) {
  test(`${name}: every node of the merged model serves all components at once`, () => {
    const { parts, merged } = mergedPair(name);
    assert.deepEqual(
      perComponent(merged).map((n) => n.name),
      [],
    );
    const layers = (m: Model): number => m.graph.nodes.filter((n) => n.opType === 'Conv' || n.opType === 'Gemm' || n.opType === 'MatMul').length;
    assert.equal(layers(merged), layers(parts[0]!), 'one merged node per layer');
  });
}

test("grouped and depthwise convolutions merge into one convolution holding every component's groups", () => {
  for (const name of ['tv_regnet_x', 'tv_mobilenet_v2', 'tv_shufflenet_v2']) {
    const { parts, merged } = mergedPair(name);
    const grouped = (m: Model): Node[] => m.graph.nodes.filter((n) => n.opType === 'Conv' && attrInt(n, 'group', 1) > 1);
    const [a, b] = parts.map(grouped);
    const g = grouped(merged);
    assert.ok(g.length > 0 && g.length === a!.length, name);
    g.forEach((n, k) => assert.equal(attrInt(n, 'group', 1), attrInt(a![k]!, 'group', 1) + attrInt(b![k]!, 'group', 1), `${name} ${n.name}`));
  }
});

test('ConvNeXt: only the LayerNorms over channels run per component; the MLP MatMuls are block-diagonal', () => {
  const { parts, merged } = mergedPair('tv_convnext');
  assert.deepEqual([...new Set(perComponent(merged).map((n) => n.opType))].sort(), ['Gather', 'LayerNormalization']);
  const mm = merged.graph.nodes.filter((n) => n.opType === 'MatMul');
  assert.equal(mm.length, parts[0]!.graph.nodes.filter((n) => n.opType === 'MatMul').length);
  // the first MLP expansion: [C_a + C_b, H_a + H_b] with zero off-diagonal blocks
  const firstMatMul = (m: Model) => m.graph.initializers.get(m.graph.nodes.find((n) => n.opType === 'MatMul')!.inputs[1]!)!;
  const [wa, wb, wm] = [firstMatMul(parts[0]!), firstMatMul(parts[1]!), firstMatMul(merged)];
  assert.deepEqual(wm.dims, [wa.dims[0]! + wb.dims[0]!, wa.dims[1]! + wb.dims[1]!]);
  const data = toFloat32(wm);
  const cols = wm.dims[1]!;
  for (let i = 0; i < wa.dims[0]!; i++) for (let j = wa.dims[1]!; j < cols; j++) assert.equal(data[i * cols + j], 0);
});

test('ViT: attention runs per component, the MLPs and the head are merged', () => {
  const { parts, merged } = mergedPair('tv_vit');
  const ops = new Set(perComponent(merged).map((n) => n.opType));
  assert.ok(ops.has('Softmax') && ops.has('LayerNormalization'));
  const mlp = (m: Model): Node[] => m.graph.nodes.filter((n) => n.opType === 'MatMul' && /mlp/.test(n.name) && !/\.c\d+$/.test(n.name));
  assert.equal(mlp(merged).length, mlp(parts[0]!).length, 'one merged MatMul per MLP layer');
  assert.ok(merged.graph.nodes.some((n) => n.opType === 'Gemm' && /head/.test(n.name) && !/\.c\d+$/.test(n.name)));
});

test('channel selections (a Split, pruned into Gathers) merge into one Gather per part and stay exact', async () => {
  const cg = analyzeChannels(splitNet([3, 5]));
  const parts = [7, 8].map((seed) => pruneModel(cg, randomKeep(cg, seed)));
  const r = mergeBlockDiagonal(parts);
  assert.ok('model' in r, 'reason' in r ? r.reason : '');
  assert.deepEqual(
    perComponent(r.model).map((n) => n.name),
    [],
  );
  const batch = randomBatch(2, [3, 4, 4], 9);
  const [a, b, m] = await Promise.all([...parts, r.model].map((x) => logitsOf(x, batch)));
  const ka = a!.length / 2,
    kb = b!.length / 2;
  const want = Float32Array.from({ length: 2 * (ka + kb) }, (_, p) => {
    const i = Math.floor(p / (ka + kb)),
      c = p % (ka + kb);
    return c < ka ? a![i * ka + c]! : b![i * kb + c - ka]!;
  });
  assert.ok(maxRelDiff(m!, want) < 1e-5);
});
