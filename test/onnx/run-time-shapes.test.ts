/**
 * Shapes the graph computes at run time from a symbolic batch (torchvision's Swin
 * Transformer partitions windows with Reshape targets built by Shape -> Gather -> Mul/Div
 * -> Concat; its ViT expands the class token through Equal/Where): inference resolves
 * them to products of the batch symbol ("N*9") and fixed sizes, and every inferred shape
 * and shape value agrees with what ONNX Runtime computes at concrete batch sizes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Dim, Model, Tensor } from '../../src/onnx/types.js';
import { analyzeShapes } from '../../src/onnx/shapes.js';
import { DIM_ARITHMETIC, monomial } from '../../src/onnx/dims.js';
import { evaluate } from '../../src/onnx/evaluate.js';
import { channelAxes } from '../../src/onnx/channel-axes.js';
import { loadModel } from '../../src/onnx/proto.js';
import { extractCut } from '../../src/onnx/cuts.js';
import { int, ints } from '../../src/onnx/graph.js';
import { float32, int64, numel, toNumbers } from '../../src/onnx/tensor.js';
import { Rng } from '../../src/util/random.js';
import { buildModel, node, randn, runOrt, vi } from '../helpers/graphs.js';
import { fixture } from '../helpers/paths.js';

const SWIN = fixture('torchvision', 'tv_swin.onnx');

test('dim arithmetic keeps products of the batch symbol and refuses what is not a size', () => {
  const { add, sub, mul, intDiv, mod } = DIM_ARITHMETIC;
  const cases: [Dim, Dim][] = [
    [mul('N', 4), 'N*4'],
    [mul(mul('N', 3), 3), 'N*9'],
    [intDiv('N*9', 9), 'N'],
    [intDiv('N*12', 4), 'N*3'],
    [intDiv('N*9', 'N'), 9],
    [intDiv('N', 2), null],
    [mod('N*49', 7), 0],
    [mod('N*7', 2), null],
    [sub('N*8', 'N*4'), 'N*4'],
    [add('N*4', 'N*2'), 'N*6'],
    [sub('N*4', 'N*8'), null],
    [add('N', 1), null],
    [mul('N', -1), null],
    [mod(-7, 3), 2],
    [intDiv(-7, 2), -3],
    [mul(null, 2), null],
  ];
  cases.forEach(([got, want], i) => assert.equal(got, want, `case ${i}`));
  assert.deepEqual(monomial(['N*4', 3, 'M']), { coef: 12, syms: ['M', 'N'] });
});

test('folding evaluates Mod with the divisor sign (fmod=0) or the dividend sign (fmod=1), and ScatterND', () => {
  const mod = (fmod: number): number[] =>
    toNumbers(evaluate(node('Mod', ['a', 'b'], ['y'], { fmod: int(fmod) }), [int64([4], [7, -7, 7, -7]), int64([4], [3, 3, -3, -3])], [[4]], ['int64'])![0]!);
  assert.deepEqual(mod(0), [1, 2, -2, -1]);
  assert.deepEqual(mod(1), [1, -1, 1, -1]);
  const data = int64([3, 2], [0, 0, 0, 0, 0, 0]);
  const out = evaluate(node('ScatterND', ['d', 'i', 'u'], ['y']), [data, int64([2, 1], [2, -3]), int64([2, 2], [5, 6, 7, 8])], [[3, 2]], ['int64'])![0]!;
  assert.deepEqual(toNumbers(out), [7, 8, 0, 0, 5, 6]);
});

/**
 * A window partition and its inverse as exporters write them: x [N,8,8,4] channels-last,
 * Reshape to [N*4, 16, 4] with the target computed from Shape(x)[0] * 4, a Linear per
 * window, back to [N, 8, 8, 4] by Shape(w)[0] / 4; the padding of a size by Mod;
 * x.numel() as ReduceProd(Shape(x)); and a class token expanded to the batch by
 * Where(Concat(N, -1, -1) == -1, 1, ...), as torchvision's ViT does.
 */
function windowNet(): Model {
  const rng = new Rng(5);
  const c = (name: string, v: number[], dims = [v.length]): [string, Tensor] => [name, int64(dims, v)];
  return buildModel({
    inputs: [vi('x', ['N', 4, 8, 8])],
    outputs: ['y', 'cls_b', 'flat'],
    initializers: {
      ...Object.fromEntries([
        c('zero', [0]),
        c('four', [4], []),
        c('three', [3], []),
        c('one_axis', [1]),
        c('rest', [16, 4]),
        c('hw', [8, 8, 4]),
        c('minus1', [-1]),
        c('m1m1', [-1, -1]),
        c('ones3', [1, 1, 1]),
        c('per_image', [256], []),
      ]),
      w: randn(rng, [4, 4]),
      cls: randn(rng, [1, 1, 4]),
    },
    nodes: [
      node('Transpose', ['x'], ['t'], { perm: ints([0, 2, 3, 1]) }),
      node('Shape', ['t'], ['s']),
      node('Gather', ['s', 'zero'], ['b']),
      node('Gather', ['s', 'one_axis'], ['h']),
      node('Mod', ['h', 'three'], ['h_mod'], { fmod: int(0) }),
      node('Squeeze', ['b', 'zero'], ['b0']),
      node('Mul', ['b0', 'four'], ['bw']),
      node('Unsqueeze', ['bw', 'zero'], ['bw1']),
      node('Concat', ['bw1', 'rest'], ['win_shape'], { axis: int(0) }),
      node('Reshape', ['t', 'win_shape'], ['windows']),
      node('MatMul', ['windows', 'w'], ['mixed']),
      node('Shape', ['mixed'], ['ms']),
      node('Gather', ['ms', 'zero'], ['mb']),
      node('Div', ['mb', 'four'], ['nb']),
      node('Concat', ['nb', 'hw'], ['back_shape'], { axis: int(0) }),
      node('Reshape', ['mixed', 'back_shape'], ['back']),
      node('Add', ['back', 't'], ['y']),
      // x.numel() // 256 images, as a Reshape target
      node('Shape', ['x'], ['xs']),
      node('ReduceProd', ['xs'], ['count'], { keepdims: int(0) }),
      node('Div', ['count', 'per_image'], ['images']),
      node('Unsqueeze', ['images', 'zero'], ['images1']),
      node('Concat', ['images1', 'minus1'], ['flat_shape'], { axis: int(0) }),
      node('Reshape', ['x', 'flat_shape'], ['flat']),
      // torchvision ViT's class-token expand
      node('Concat', ['b', 'm1m1'], ['want'], { axis: int(0) }),
      node('Equal', ['want', 'minus1'], ['is_free']),
      node('Where', ['is_free', 'ones3', 'want'], ['expand_to']),
      node('Expand', ['cls', 'expand_to'], ['cls_b']),
    ],
  });
}

/** A shape with its symbol set to `batch`: 'N*9' at batch 2 is 18. */
function at(shape: readonly Dim[], symbol: string, batch: number): (number | null)[] {
  return shape.map((d) => {
    if (typeof d === 'number') return d;
    const m = d === null ? undefined : monomial([d]);
    if (!m || m.syms.some((s) => s !== symbol)) return null;
    return m.coef * batch ** m.syms.length;
  });
}

/** Every node output's inferred shape (and shape values) equals what ONNX Runtime computes at each batch size. */
async function assertMatchesRuntime(model: Model, input: string, perImage: number[], batches: number[]): Promise<number> {
  const { known, order } = analyzeShapes(model);
  const symbol = model.graph.inputs.find((i) => i.name === input)!.shape![0] as string;
  const names = order.flatMap((n) => n.outputs.filter((o) => o && known.get(o)?.dtype !== 'bool'));
  const tapped: Model = { ...model, graph: { ...model.graph, outputs: names.map((n) => ({ name: n, dtype: known.get(n)!.dtype })) } };
  let checked = 0;
  for (const batch of batches) {
    const dims = [batch, ...perImage];
    const out = await runOrt(tapped, { [input]: float32(dims, new Float32Array(numel(dims)).fill(0.5)) });
    for (const name of names) {
      const k = known.get(name)!;
      assert.ok(k.shape, `${name}: rank unknown`);
      assert.deepEqual(at(k.shape, symbol, batch), out[name]!.dims, `${name} at batch ${batch}: inferred ${JSON.stringify(k.shape)}`);
      if (k.values && k.values.every((v) => v !== null)) {
        assert.deepEqual(at(k.values, symbol, batch), Array.from(out[name]!.data as ArrayLike<number | bigint>, Number), `${name} values at batch ${batch}`);
      }
      checked++;
    }
  }
  return checked;
}

test('window partition, numel and class-token arithmetic on a symbolic batch resolve to N*4, N and fixed sizes, as ONNX Runtime computes them', async () => {
  const m = windowNet();
  const { known } = analyzeShapes(m);
  const shape = (t: string): Dim[] | undefined => known.get(t)?.shape;
  assert.deepEqual(shape('windows'), ['N*4', 16, 4]);
  assert.deepEqual(shape('mixed'), ['N*4', 16, 4]);
  assert.deepEqual(shape('back'), ['N', 8, 8, 4]);
  assert.deepEqual(shape('flat'), ['N', 256]);
  assert.deepEqual(shape('cls_b'), ['N', 1, 4]);
  assert.deepEqual(known.get('h_mod')?.values, [2]);
  assert.ok((await assertMatchesRuntime(m, 'x', [4, 8, 8], [2, 3])) > 40);
});

test('a tiny torchvision Swin Transformer: every tensor has a known shape, block outputs are [N, H, W, C], windows [N*nW, w*w, C], all as ONNX Runtime computes them', async () => {
  const m = loadModel(SWIN);
  const { known } = analyzeShapes(m);
  const unknown = [...known].filter(([, k]) => !k.shape || k.shape.includes(null)).map(([n]) => n);
  assert.deepEqual(unknown, []);
  const shape = (t: string): Dim[] | undefined => known.get(t)?.shape;
  assert.deepEqual(shape('/features/features.1/features.1.1/Add_1_output_0'), ['N', 8, 8, 8]);
  assert.deepEqual(shape('/features/features.2/reduction/MatMul_output_0'), ['N', 4, 4, 16]);
  assert.deepEqual(shape('/features/features.3/features.3.1/Add_1_output_0'), ['N', 4, 4, 16]);
  // 8x8 tokens padded to 9x9 make 9 windows of 3x3 per image; 4x4 padded to 6x6 make 4
  assert.deepEqual(shape('/features/features.1/features.1.0/attn/Reshape_3_output_0'), ['N*9', 9, 8]);
  assert.deepEqual(shape('/features/features.3/features.3.1/attn/Reshape_3_output_0'), ['N*4', 9, 16]);
  assert.deepEqual(shape('logits'), ['N', 10]);
  assert.ok((await assertMatchesRuntime(m, 'input', [3, 32, 32], [3])) > 2000);
});

test('the part after a cut that reads the size of windows before it ([N*4, 16, 4]) gets it rebuilt from the cut as 4 times its batch', async () => {
  // windowNet's "y" [N,8,8,4] is followed by a Reshape to [Shape(windows)[0], 64]: N*4 rows read from before the cut
  const base = windowNet();
  const g = base.graph;
  g.initializers.set('sixty_four', int64([1], [64]));
  g.nodes.push(
    node('Shape', ['windows'], ['ws2']),
    node('Gather', ['ws2', 'zero'], ['rows']),
    node('Concat', ['rows', 'sixty_four'], ['rows_shape'], { axis: int(0) }),
    node('Reshape', ['y', 'rows_shape'], ['per_window']),
  );
  g.outputs = [vi('per_window')];
  assert.deepEqual(analyzeShapes(base).known.get('per_window')?.shape, ['N*4', 64]);
  const x = float32(
    [2, 4, 8, 8],
    Array.from({ length: 512 }, (_, i) => Math.cos(i)),
  );
  const whole = (await runOrt(base, { x }))['per_window']!;
  const head = (await runOrt({ ...base, graph: { ...g, outputs: [vi('y')] } }, { x }))['y']!;
  const { model: tail } = extractCut(base, 'y', undefined);
  assert.ok(!tail.graph.nodes.some((n) => n.opType === 'Shape' && n.inputs[0] === 'windows'));
  const out = (await runOrt(tail, { y: float32(head.dims, head.data as Float32Array) }))['per_window']!;
  assert.deepEqual(out.dims, [8, 64]);
  assert.deepEqual(Array.from(out.data as Float32Array), Array.from(whole.data as Float32Array));
});

test("channel axes follow the operators: convolutions' axis 1, a Linear's or a last-axis LayerNorm's last axis, moved by Transpose", () => {
  const swin = channelAxes(loadModel(SWIN));
  assert.equal(swin.get('/features/features.0/features.0.0/Conv_output_0'), 1);
  assert.equal(swin.get('/features/features.0/features.0.1/Transpose_output_0'), 3);
  assert.equal(swin.get('/features/features.1/features.1.1/Add_1_output_0'), 3);
  assert.equal(swin.get('/features/features.2/reduction/MatMul_output_0'), 3);
  assert.equal(swin.get('/permute/Transpose_output_0'), 1);
  // the windows [N*9, 9, 8] come out of a Reshape: nothing says where their channels are
  assert.equal(swin.get('/features/features.1/features.1.0/attn/Reshape_3_output_0'), undefined);
  const resnet = channelAxes(loadModel(fixture('torchvision', 'tv_resnet18.onnx')));
  for (const [t, a] of resnet) assert.equal(a, 1, t);
  const win = channelAxes(windowNet());
  assert.equal(win.get('t'), 3);
  assert.equal(win.get('y'), 3);
  assert.equal(win.get('mixed'), 2);
  assert.equal(win.get('back'), undefined);
});
