/**
 * Channel analysis (src/lego/channels.ts, operators.ts): how channels are followed through
 * shuffles, channels-last and token tensors, normalisations, grouped convolutions and
 * attention, and what is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Model } from '../../src/onnx/types.js';
import { int, ints } from '../../src/onnx/graph.js';
import { int64 } from '../../src/onnx/tensor.js';
import { loadModel } from '../../src/onnx/proto.js';
import { validateModel } from '../../src/onnx/validate.js';
import { createZooModel } from '../../src/nn/zoo.js';
import { Rng } from '../../src/util/random.js';
import { analyzeChannels, closeKeep, findSpace, indicesOf, maskOf, type ChannelGraph, type SpaceMasks } from '../../src/lego/channels.js';
import { reshapeBlocks } from '../../src/lego/operators.js';
import { maskedOriginal, pruneModel } from '../../src/lego/prune.js';
import { assertUserError } from '../helpers/assertions.js';
import { buildModel, node, randn, vi } from '../helpers/graphs.js';
import { logitsOf, maxRelDiff, randomBatch } from './disassemble-helpers.js';
import { nameOf, randomKeep, splitNet, TV_FIXTURES } from './families-helpers.js';

const tv = (name: string): Model => loadModel(TV_FIXTURES.find((f) => nameOf(f) === name)!);
const fixed = (cg: ChannelGraph, tensor: string): boolean => {
  const r = cg.refs.get(tensor)!;
  return r.kind === 'space' && cg.spaces[findSpace(cg, r.id)]!.fixed;
};

async function assertPrunesConsistently(model: Model, seed = 1): Promise<void> {
  const cg = analyzeChannels(model);
  const keep = randomKeep(cg, seed);
  const pruned = pruneModel(cg, keep);
  validateModel(pruned);
  const batch = randomBatch(2, model.graph.inputs[0]!.shape!.slice(1) as number[], seed);
  const d = maxRelDiff(await logitsOf(pruned, batch), await logitsOf(maskedOriginal(cg, keep), batch));
  assert.ok(d < 1e-5, `max difference ${d}`);
}

test('reshape blocks: symbolic batch alone, split and merged axes, trailing ones', () => {
  const b = (from: number[], to: number[]) => ({ from, to });
  assert.deepEqual(reshapeBlocks(['N', 16, 4, 4], ['N', 2, 8, 4, 4]), [b([0], [0]), b([1], [1, 2]), b([2], [3]), b([3], [4])]);
  assert.deepEqual(reshapeBlocks(['N', 8, 2, 4, 4], ['N', 16, 4, 4]), [b([0], [0]), b([1, 2], [1]), b([3], [2]), b([4], [3])]);
  assert.deepEqual(reshapeBlocks(['N', 32, 4, 4], ['N', 32, 16]), [
    { from: [0], to: [0] },
    { from: [1], to: [1] },
    { from: [2, 3], to: [2] },
  ]);
  assert.deepEqual(reshapeBlocks(['N', 8, 1, 1], ['N', 8]), [
    { from: [0], to: [0] },
    { from: [1, 2, 3], to: [1] },
  ]);
  assert.equal(reshapeBlocks([17, 'N', 32], [17, null, 16]), undefined, 'an unknown dimension cannot be matched');
  assert.equal(reshapeBlocks(['N', 6], ['N', 4]), undefined);
});

/** input [N,3,4,4] -> 1x1 conv to 8 -> channel shuffle with `groups` groups (constant targets) -> 1x1 conv -> GAP -> Gemm -> logits [N,5]. */
function shuffleNet(groups: number, seed = 1): Model {
  const rng = new Rng(seed);
  return buildModel({
    inputs: [vi('input', ['N', 3, 4, 4])],
    outputs: ['logits'],
    initializers: {
      w1: randn(rng, [8, 3, 1, 1]),
      b1: randn(rng, [8]),
      w2: randn(rng, [6, 8, 1, 1]),
      fc: randn(rng, [5, 6]),
      split: int64([5], [0, groups, 8 / groups, 4, 4]),
      merge: int64([4], [0, 8, 4, 4]),
    },
    nodes: [
      node('Conv', ['input', 'w1', 'b1'], ['c1'], { kernel_shape: ints([1, 1]) }, 'c1'),
      node('Relu', ['c1'], ['r1'], {}, 'r1'),
      node('Reshape', ['r1', 'split'], ['s'], {}, 'split'),
      node('Transpose', ['s'], ['t'], { perm: ints([0, 2, 1, 3, 4]) }, 'swap'),
      node('Reshape', ['t', 'merge'], ['shuffled'], {}, 'merge'),
      node('Conv', ['shuffled', 'w2'], ['c2'], { kernel_shape: ints([1, 1]) }, 'c2'),
      node('GlobalAveragePool', ['c2'], ['gap'], {}, 'gap'),
      node('Flatten', ['gap'], ['flat'], { axis: int(1) }, 'flat'),
      node('Gemm', ['flat', 'fc'], ['logits'], { transB: int(1) }, 'fc'),
    ],
  });
}

for (const groups of [2, 4]) {
  test(`a channel shuffle with ${groups} groups is a fixed permutation; the component gathers the kept channels in that order`, async () => {
    const model = shuffleNet(groups);
    const cg = analyzeChannels(model);
    const g = cg.gathers.get('shuffled')!;
    const per = 8 / groups;
    // channel_shuffle: output j = k * groups + group reads input group * per + k
    assert.deepEqual(
      g.index,
      Array.from({ length: 8 }, (_, j) => (j % groups) * per + Math.floor(j / groups)),
    );
    assert.equal(g.source, 'r1');
    await assertPrunesConsistently(model, 3);
    const pruned = pruneModel(cg, randomKeep(cg, 3));
    assert.ok(!pruned.graph.nodes.some((n) => n.opType === 'Transpose'), 'the shuffle became one Gather');
  });
}

for (const sizes of [[3, 5], undefined]) {
  test(`Split on the channel axis (${sizes ? `sizes ${sizes.join('+')}` : 'equal parts'}) picks channel ranges; the component gathers the kept ones`, async () => {
    const model = splitNet(sizes);
    const cg = analyzeChannels(model);
    const [a, b] = [cg.gathers.get('part0')!, cg.gathers.get('part1')!];
    const n0 = sizes?.[0] ?? 4;
    assert.deepEqual(
      a.index,
      Array.from({ length: n0 }, (_, k) => k),
    );
    assert.deepEqual(
      b.index,
      Array.from({ length: 8 - n0 }, (_, k) => n0 + k),
    );
    await assertPrunesConsistently(model, 6);
    assert.ok(!pruneModel(cg, randomKeep(cg, 6)).graph.nodes.some((n) => n.opType === 'Split'));
  });
}

test('ShuffleNetV2: every shuffle interleaves the two branches and every chunk takes a half', () => {
  const cg = analyzeChannels(tv('tv_shufflenet_v2'));
  const gathers = [...cg.gathers.values()];
  const shuffles = gathers.filter((g) => g.always);
  const chunks = gathers.filter((g) => !g.always);
  assert.ok(shuffles.length >= 3 && chunks.length >= 2);
  for (const s of shuffles) {
    const half = s.index.length / 2;
    assert.deepEqual(
      s.index,
      s.index.map((_, j) => (j % 2) * half + Math.floor(j / 2)),
    );
  }
  for (const c of chunks) {
    const n = c.index.length;
    assert.ok(c.index[0] === 0 || c.index[0] === n, 'first or second half');
    assert.deepEqual(
      c.index,
      c.index.map((_, j) => c.index[0]! + j),
    );
  }
});

/** Patches -> tokens [N, 4, 8] -> residual MLP over the last axis (optionally LayerNorm'd) -> mean over tokens -> Gemm. */
function tokenMlp(layerNorm: boolean, seed = 2): Model {
  const rng = new Rng(seed);
  const norm = layerNorm ? [node('LayerNormalization', ['tokens', 'ln_w', 'ln_b'], ['normed'], { axis: int(-1) }, 'ln')] : [];
  return buildModel({
    inputs: [vi('input', ['N', 3, 4, 4])],
    outputs: ['logits'],
    initializers: {
      patch: randn(rng, [8, 3, 2, 2]),
      target: int64([3], [0, 8, 4]),
      pos: randn(rng, [1, 4, 8]),
      ln_w: randn(rng, [8]),
      ln_b: randn(rng, [8]),
      w1: randn(rng, [8, 16]),
      b1: randn(rng, [16]),
      w2: randn(rng, [16, 8]),
      b2: randn(rng, [8]),
      fc: randn(rng, [5, 8]),
      fc_b: randn(rng, [5]),
    },
    nodes: [
      node('Conv', ['input', 'patch'], ['p'], { kernel_shape: ints([2, 2]), strides: ints([2, 2]) }, 'patch'),
      node('Reshape', ['p', 'target'], ['flat'], {}, 'to_tokens'),
      node('Transpose', ['flat'], ['t'], { perm: ints([0, 2, 1]) }, 'channels_last'),
      node('Add', ['t', 'pos'], ['tokens'], {}, 'pos_embed'),
      ...norm,
      node('MatMul', [layerNorm ? 'normed' : 'tokens', 'w1'], ['h'], {}, 'mlp.0'),
      node('Add', ['b1', 'h'], ['hb'], {}, 'mlp.0.bias'),
      node('Relu', ['hb'], ['hr'], {}, 'mlp.1'),
      node('MatMul', ['hr', 'w2'], ['o'], {}, 'mlp.2'),
      node('Add', ['o', 'b2'], ['ob'], {}, 'mlp.2.bias'),
      node('Add', ['ob', 'tokens'], ['res'], {}, 'residual'),
      node('ReduceMean', ['res'], ['pooled'], { axes: ints([1]), keepdims: int(0) }, 'pool'),
      node('Gemm', ['pooled', 'fc', 'fc_b'], ['logits'], { transB: int(1) }, 'head'),
    ],
  });
}

test('token tensors: channels on the last axis are pruned through MatMuls, biases, position embeddings and a residual', async () => {
  const model = tokenMlp(false);
  const cg = analyzeChannels(model);
  const tokens = cg.acts.get('tokens')!;
  assert.ok(tokens.kind === 'tracked' && tokens.axis === 2, 'channels last');
  assert.ok(!fixed(cg, 'res'), 'without a LayerNorm the residual stream may be pruned');
  const mlp0 = cg.layers.find((l) => l.node.name === 'mlp.0')!;
  assert.equal(mlp0.inAxis, 2);
  assert.equal(mlp0.positions, 4, 'four tokens per image');
  await assertPrunesConsistently(model, 4);
});

test('a LayerNorm over the channels keeps that channel set whole (it would change the others), the MLP hidden units stay prunable', async () => {
  const model = tokenMlp(true);
  const cg = analyzeChannels(model);
  assert.ok(fixed(cg, 'tokens'));
  const r = cg.refs.get('tokens')!;
  assert.match(cg.spaces[findSpace(cg, (r as { id: number }).id)]!.reason!, /normalises across these channels/);
  assert.ok(!fixed(cg, 'h'));
  await assertPrunesConsistently(model, 5);
});

test("ConvNeXt: the LayerNorm'd streams are kept whole, the MLP hidden layers and the classes may be pruned", () => {
  const cg = analyzeChannels(tv('tv_convnext'));
  const mlp = cg.layers.filter((l) => l.node.opType === 'MatMul');
  assert.ok(mlp.length >= 4);
  for (const l of mlp) {
    const out = cg.spaces[findSpace(cg, (l.outRef as { id: number }).id)]!;
    const expands = l.outChannels > l.inChannels;
    assert.equal(out.fixed, !expands, `${l.node.name}: hidden units prunable, stream (residual) fixed`);
  }
  assert.ok(!fixed(cg, cg.logits));
});

test('ViT: attention is kept whole (q/k/v, heads folded into the batch), the MLP hidden units and the head rows are pruned', () => {
  const cg = analyzeChannels(tv('tv_vit'));
  const byName = (part: string) => cg.layers.filter((l) => l.node.name.includes(part));
  for (const l of byName('mlp.0')) assert.ok(!cg.spaces[findSpace(cg, (l.outRef as { id: number }).id)]!.fixed, `${l.node.name}: hidden units prunable`);
  for (const l of byName('self_attention/MatMul')) {
    assert.ok(cg.spaces[findSpace(cg, (l.outRef as { id: number }).id)]!.fixed, `${l.node.name}: q/k/v kept whole`);
  }
  const outProj = byName('self_attention/Gemm');
  assert.ok(outProj.length >= 1 && outProj.every((l) => l.inRef.kind === 'untracked'), 'out_proj reads attention output, which is not followed');
  // anything needing out_proj's output needs all of its inputs (an untracked edge)
  for (const l of outProj) assert.ok(cg.edges.some((e) => e.target === l.outRef));
  assert.ok(!fixed(cg, cg.logits));
});

test('grouped convolutions keep or drop whole groups, on both sides', () => {
  const cg = analyzeChannels(tv('tv_regnet_x'));
  assert.ok(cg.ties.length > 0);
  const keep: SpaceMasks = new Map();
  for (const t of cg.ties) {
    const m = new Uint8Array(maskOf(cg, t.output, keep).length);
    m[0] = 1; // one output channel of group 0
    keep.set((t.output as { id: number }).id, m);
  }
  closeKeep(cg, keep);
  for (const t of cg.ties) {
    const group0 = Array.from({ length: t.outBlock }, (_, k) => k);
    assert.deepEqual(indicesOf(maskOf(cg, t.output, keep)).slice(0, t.outBlock), group0, `${t.node}: group 0's outputs`);
    const inputs = indicesOf(maskOf(cg, t.input, keep));
    for (let k = 0; k < t.inBlock; k++) assert.ok(inputs.includes(k), `${t.node}: group 0's inputs`);
  }
});

test('an operator the pruner does not understand is named, before any data is read', () => {
  const m = createZooModel('mlp', { hidden: [16, 8], seed: 1 });
  const g = m.graph;
  const relu = g.nodes.find((n) => n.opType === 'Relu')!;
  const out = relu.outputs[0]!;
  relu.outputs[0] = `${out}.pre`;
  g.initializers.set('odd.repeats', int64([2], [1, 1]));
  g.nodes.splice(g.nodes.indexOf(relu) + 1, 0, { name: 'odd_tile', opType: 'Tile', inputs: [`${out}.pre`, 'odd.repeats'], outputs: [out], attributes: {} });
  assertUserError(() => analyzeChannels(m), 'Tile', 'odd_tile', 'does not understand');
  g.nodes.find((n) => n.name === 'odd_tile')!.domain = 'com.example';
  assertUserError(() => analyzeChannels(m), 'com.example.Tile');
});

test('logits normalised by a Softmax over the classes are refused: a component could not drop classes', () => {
  const m = createZooModel('mlp', { hidden: [16], seed: 1 });
  const g = m.graph;
  const out = g.outputs[0]!.name;
  const last = g.nodes.find((n) => n.outputs.includes(out))!;
  last.outputs = [`${out}.raw`];
  g.nodes.push({ name: 'probs', opType: 'Softmax', inputs: [`${out}.raw`], outputs: [out], attributes: { axis: int(1) } });
  assertUserError(() => analyzeChannels(m), 'cannot lose classes', 'probs');
});
