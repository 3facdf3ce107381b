/**
 * Cuts on any graph: which tensors every input-to-output path passes through, the
 * reasons others are refused, the block-level default cuts and their names for the
 * torchvision families, batch axes, and splitting a model at a cut.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openModel } from '../../src/onnx/open.js';
import { blockCuts } from '../../src/onnx/blocks.js';
import { batchLayouts, cutProblem, dataFlow } from '../../src/onnx/dominators.js';
import { detachShapeReads, extractCut, resolveCut } from '../../src/onnx/cuts.js';
import { extractSubgraph } from '../../src/onnx/extract.js';
import { float32 } from '../../src/onnx/tensor.js';
import { int, ints } from '../../src/onnx/graph.js';
import { Rng } from '../../src/util/random.js';
import { assertUserError } from '../helpers/assertions.js';
import { buildModel, node, randn, residualNet, runOrt, vi } from '../helpers/graphs.js';
import { fixture } from '../helpers/paths.js';
import { tvIo } from '../helpers/fixtures.js';

const tv = (name: string): string => fixture('torchvision', `tv_${name}.onnx`);

test('the dominator chain of a residual net skips the tensors the skip connection bypasses', () => {
  const m = residualNet();
  assert.deepEqual(dataFlow(m).chain, ['input', 'sum', 'block', 'gap', 'flat', 'out']);
  assert.equal(cutProblem(m, 'block'), undefined);
  assert.match(cutProblem(m, 'r')!, /inside a block: the path into node "add" \(Add\) bypasses it/);
  assert.match(cutProblem(m, 'w')!, /weight/);
  assertUserError(() => resolveCut(m, 'r', 'res.onnx'), 'tensor "r" of res.onnx is not a cut point', 'inside a block', 'node "add"');
});

test('a tensor inside a torchvision residual block is refused with the bypassing node and the cuts around it', () => {
  const m = openModel(tv('resnet18'));
  assertUserError(
    () => resolveCut(m, '/layer1/layer1.0/relu/Relu_output_0', 'r18.onnx'),
    'tensor "/layer1/layer1.0/relu/Relu_output_0" of r18.onnx is not a cut point: it is inside a block: the path into node "/layer1/layer1.0/Add" (Add) bypasses it',
    '"stem" (/maxpool/MaxPool_output_0)',
  );
  assert.equal(resolveCut(m, 'layer2.1'), '/layer2/layer2.1/relu_1/Relu_output_0');
  assert.equal(resolveCut(m, '/layer2/layer2.1/Add_output_0'), '/layer2/layer2.1/Add_output_0');
});

test("shape arithmetic is never a cut (ShuffleNet's channel-split sizes)", () => {
  const m = openModel(tv('shufflenet_v2'));
  assert.match(cutProblem(m, '/stage2/stage2.1/Add_output_0')!, /does not depend on the values of the input "input" \(it is a constant or shape arithmetic\)/);
  for (const c of blockCuts(m)) assert.ok(dataFlow(m).chainSet.has(c.tensor), c.name);
});

/** The default cut names of each family's fixture: stem, blocks/layers by module name, pooled features. */
const EXPECTED: Record<string, string[]> = {
  resnet18: ['stem', 'layer1.0', 'layer1.1', 'layer2.0', 'layer2.1', 'layer3.0', 'layer3.1', 'layer4.0', 'layer4.1', 'features'],
  resnet50: ['stem', 'layer1', 'layer2.0', 'layer2.1', 'layer3', 'layer4', 'features'],
  mobilenet_v2: ['stem', 'features.1', 'features.2', 'features.3', 'features.4', 'features.5', 'features.6', 'features.7', 'features'],
  mobilenet_v3_small: ['stem', ...Array.from({ length: 12 }, (_, i) => `features.${i + 1}`), 'features'],
  efficientnet_b0: ['stem', ...Array.from({ length: 8 }, (_, i) => `features.${i + 1}`), 'features'],
  densenet: ['stem', 'denseblock1', 'transition1', 'denseblock2', 'transition2', 'denseblock3', 'features'],
  convnext: ['stem', 'features.1', 'features.2', 'features.3.0', 'features.3.1', 'features.4', 'features.5', 'features'],
  googlenet: ['stem', 'inception3a', 'inception3b', 'inception4a', 'features'],
  regnet_x: ['stem', 'block1', 'block2', 'block3-0', 'block3-1', 'features'],
  shufflenet_v2: ['stem', 'stage2.0', 'stage2.1', 'stage3.0', 'stage3.1', 'stage4.0', 'stage4.1', 'conv5', 'features'],
  squeezenet: ['stem', 'features.3', 'features.4', 'features.6', 'classifier'],
  vgg_bn: ['stem', 'features.4', 'features.8', 'features.11', 'features'],
  vit: ['stem', 'encoder_layer_0', 'encoder_layer_1', 'features'],
};

for (const [family, names] of Object.entries(EXPECTED)) {
  test(`default block-level cuts of the ${family} fixture: ${names.join(', ')}`, () => {
    const m = openModel(tv(family));
    const cuts = blockCuts(m);
    assert.deepEqual(
      cuts.map((c) => c.name),
      names,
    );
    assert.equal(cuts[0]!.kind, 'stem');
    const flow = dataFlow(m);
    for (const c of cuts) assert.ok(flow.chainSet.has(c.tensor), `${c.name} (${c.tensor}) is on every path`);
    if (names.includes('features')) {
      const f = batchLayouts(m).get(cuts.find((c) => c.name === 'features')!.tensor);
      assert.ok(typeof f === 'object' && f.shape.length === 1, 'the pooled features are a vector');
    }
  });
}

test("block cuts of a ResNet end after the block's ReLU, and the stem after the max pool", () => {
  const cuts = blockCuts(openModel(tv('resnet18')));
  assert.equal(cuts.find((c) => c.name === 'stem')!.tensor, '/maxpool/MaxPool_output_0');
  assert.equal(cuts.find((c) => c.name === 'layer1.0')!.tensor, '/layer1/layer1.0/relu_1/Relu_output_0');
  assert.equal(cuts.find((c) => c.name === 'features')!.tensor, '/Flatten_output_0');
});

test('ViT cuts are token tensors [tokens, hidden], batch-first at block outputs and sequence-first inside attention', () => {
  const m = openModel(tv('vit'));
  const layouts = batchLayouts(m);
  const cuts = blockCuts(m);
  const at = (name: string): unknown => layouts.get(cuts.find((c) => c.name === name)!.tensor);
  // 32x32 input, 8x8 patches: a 4x4 grid and the class token, hidden size 32
  assert.deepEqual(at('stem'), { batchAxis: 0, shape: [17, 32] });
  assert.equal(cuts.find((c) => c.name === 'stem')!.tensor, '/encoder/Add_output_0');
  assert.deepEqual(at('encoder_layer_1'), { batchAxis: 0, shape: [17, 32] });
  assert.deepEqual(at('features'), { batchAxis: 0, shape: [32] });
  const inner = '/encoder/layers/encoder_layer_0/self_attention/Transpose_output_0';
  assert.deepEqual(layouts.get(inner), { batchAxis: 1, shape: [17, 32] });
  assert.match(cutProblem(m, inner)!, /inside a block/);
});

/**
 * input [N,3,8,8] -> patch conv (4x4, D=6) -> [N,6,4] -> Transpose -> tokens [4, N, 6]
 * (sequence-first) -> two residual blocks `/enc/layer0`, `/enc/layer1` (x + relu(x W)) ->
 * mean over the tokens -> `/head/Gemm` -> logits [N, 5].
 */
function sequenceFirstNet(seed = 4): ReturnType<typeof buildModel> {
  const rng = new Rng(seed);
  const block = (k: number, x: string): ReturnType<typeof node>[] => [
    node('MatMul', [x, `w${k}`], [`/enc/layer${k}/mm`], {}, `/enc/layer${k}/MatMul`),
    node('Relu', [`/enc/layer${k}/mm`], [`/enc/layer${k}/relu`], {}, `/enc/layer${k}/Relu`),
    node('Add', [x, `/enc/layer${k}/relu`], [`/enc/layer${k}/out`], {}, `/enc/layer${k}/Add`),
  ];
  return buildModel({
    inputs: [vi('input', ['N', 3, 8, 8])],
    outputs: ['logits'],
    initializers: {
      pw: randn(rng, [6, 3, 4, 4]),
      w0: randn(rng, [6, 6]),
      w1: randn(rng, [6, 6]),
      fc_w: randn(rng, [5, 6]),
      fc_b: randn(rng, [5]),
      shape: { dtype: 'int64', dims: [3], data: BigInt64Array.from([0n, 6n, -1n]) },
    },
    nodes: [
      node('Conv', ['input', 'pw'], ['/patch/conv'], { kernel_shape: ints([4, 4]), strides: ints([4, 4]) }, '/patch/Conv'),
      node('Reshape', ['/patch/conv', 'shape'], ['/patch/flat'], {}, '/patch/Reshape'),
      node('Transpose', ['/patch/flat'], ['/patch/tokens'], { perm: ints([2, 0, 1]) }, '/patch/Transpose'),
      ...block(0, '/patch/tokens'),
      ...block(1, '/enc/layer0/out'),
      node('ReduceMean', ['/enc/layer1/out'], ['/pool'], { axes: ints([0]), keepdims: int(0) }, '/ReduceMean'),
      node('Gemm', ['/pool', 'fc_w', 'fc_b'], ['logits'], { transB: int(1) }, '/head/Gemm'),
    ],
  });
}

test('a sequence-first token model: its cuts have batch axis 1 and per-image shape [tokens, hidden]', () => {
  const m = sequenceFirstNet();
  const cuts = blockCuts(m);
  assert.deepEqual(
    cuts.map((c) => c.name),
    ['stem', 'layer0', 'layer1', 'features'],
  );
  assert.deepEqual(batchLayouts(m).get(cuts[1]!.tensor), { batchAxis: 1, shape: [4, 6] });
  assert.match(cutProblem(m, '/enc/layer0/relu')!, /the path into node "\/enc\/layer0\/Add"/);
});

test('splitting a sequence-first model at a token cut and joining the halves gives the model back', async () => {
  const m = sequenceFirstNet();
  const rng = new Rng(9);
  const x = float32(
    [3, 3, 8, 8],
    Array.from({ length: 3 * 192 }, () => rng.normal()),
  );
  const whole = (await runOrt(m, { input: x }))['logits']!.data as Float32Array;
  const cut = '/enc/layer0/out';
  const head = (await runOrt(extractSubgraph(m, ['input'], [cut]), { input: x }))[cut]!;
  assert.deepEqual(head.dims, [4, 3, 6]);
  const tail = (await runOrt(extractCut(m, cut, undefined).model, { [cut]: float32(head.dims, head.data as Float32Array) }))['logits']!.data as Float32Array;
  for (let i = 0; i < whole.length; i++) assert.ok(Math.abs(whole[i]! - tail[i]!) < 1e-5);
});

test("the part of torchvision's ViT after its patch embedding reads the batch size from the cut, not the input image", async () => {
  const m = openModel(tv('vit'));
  const io = tvIo('vit');
  const cut = '/conv_proj/Conv_output_0';
  assertUserError(() => extractSubgraph(m, [cut], ['logits']), 'depends on tensor "input"');
  const head = (await runOrt(extractSubgraph(m, ['input'], [cut]), { input: io.input }))[cut]!;
  const detached = detachShapeReads(m, cut);
  assert.ok(!detached.graph.nodes.some((n) => n.opType === 'Shape' && n.inputs[0] === 'input'), 'no shape read of the input is left');
  const tail = (await runOrt(extractSubgraph(detached, [cut], ['logits']), { [cut]: float32(head.dims, head.data as Float32Array) }))['logits']!
    .data as Float32Array;
  const want = io.logits;
  assert.equal(tail.length, want.length);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(want[i]! - tail[i]!) < 1e-4, `logit ${i}: ${tail[i]} vs ${want[i]}`);
});

for (const family of ['resnet18', 'densenet', 'convnext', 'shufflenet_v2', 'vit', 'swin']) {
  test(`${family}: the model split at every default cut and joined again computes the same logits`, async () => {
    const m = openModel(tv(family));
    const io = tvIo(family);
    const want = io.logits;
    for (const c of blockCuts(m)) {
      const head = (await runOrt(extractCut(m, undefined, c.name).model, { input: io.input }))[c.tensor]!;
      const tail = (await runOrt(extractCut(m, c.name, undefined).model, { [c.tensor]: float32(head.dims, head.data as Float32Array) }))['logits']!
        .data as Float32Array;
      for (let i = 0; i < want.length; i++) assert.ok(Math.abs(want[i]! - tail[i]!) < 1e-4, `${c.name}: logit ${i} ${tail[i]} vs ${want[i]}`);
    }
  });
}

test('extract refuses cuts out of order and names that are no cut', () => {
  const m = openModel(tv('resnet18'));
  assertUserError(() => extractCut(m, 'layer3.0', 'layer1.0', 'r18.onnx'), 'from "layer3.0" of r18.onnx is after to "layer1.0"');
  assertUserError(() => extractCut(m, 'nothing', undefined, 'r18.onnx'), 'cut "nothing" does not exist in r18.onnx', 'layer1.0');
});
