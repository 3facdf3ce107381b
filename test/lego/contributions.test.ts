import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Conv2dWindow, Layer } from '../../src/lego/channels.js';
import { analyzeChannels } from '../../src/lego/channels.js';
import { accumulateContributions, addConvContributions, addLinearContributions, convPlan, maskedLayers, windowSums } from '../../src/lego/contributions.js';
import { createZooModel } from '../../src/nn/zoo.js';
import { openDataset } from '../../src/data/resolve.js';
import { windowOutput } from '../../src/onnx/dims.js';
import { Rng } from '../../src/util/random.js';

/** Channel refs of a hand-made layer (they matter only to graph analysis). */
const refs = { inRef: { kind: 'space', id: 0 }, outRef: { kind: 'space', id: 1 }, inAxis: 1, batchAxis: 0 } as const;

interface Spec {
  cin: number;
  cout: number;
  k: [number, number];
  stride: [number, number];
  pad: [number, number];
  dilation: [number, number];
  groups: number;
  hw: [number, number];
}

function convLayer(s: Spec, rng: Rng): Layer {
  const gi = s.cin / s.groups;
  const outHW: [number, number] = [0, 1].map(
    (a) => windowOutput(s.hw[a]!, { kernel: s.k[a]!, stride: s.stride[a]!, dilation: s.dilation[a]!, padBegin: s.pad[a]!, padEnd: s.pad[a]! }) as number,
  ) as [number, number];
  const conv: Conv2dWindow = { kernel: s.k, stride: s.stride, dilation: s.dilation, pad: s.pad, inHW: s.hw, outHW, groups: s.groups };
  const w = Float32Array.from({ length: s.cout * gi * s.k[0] * s.k[1] }, () => rng.normal());
  return {
    node: { name: 'c', opType: 'Conv', inputs: [], outputs: [], attributes: {} },
    kind: 'conv',
    input: 'x',
    output: 'y',
    weight: 'w',
    outChannels: s.cout,
    inChannels: s.cin,
    groupIn: gi,
    w,
    k: s.k[0] * s.k[1],
    conv,
    ...refs,
  };
}

/** The definition: relu of the sum over output positions and kernel offsets of unfold(x) * W. */
function direct(x: Float32Array, layer: Layer): Float64Array {
  const g = layer.conv!;
  const [h, w] = g.inHW;
  const [kh, kw] = g.kernel;
  const og = layer.outChannels / g.groups;
  const v = new Float64Array(layer.outChannels * layer.groupIn);
  for (let o = 0; o < layer.outChannels; o++) {
    const grp = Math.floor(o / og);
    for (let il = 0; il < layer.groupIn; il++) {
      const i = grp * layer.groupIn + il;
      let s = 0;
      for (let oh = 0; oh < g.outHW[0]; oh++)
        for (let ow = 0; ow < g.outHW[1]; ow++) {
          for (let a = 0; a < kh; a++)
            for (let b = 0; b < kw; b++) {
              const ih = oh * g.stride[0] - g.pad[0] + a * g.dilation[0];
              const iw = ow * g.stride[1] - g.pad[1] + b * g.dilation[1];
              if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
              s += x[(i * h + ih) * w + iw]! * layer.w[((o * layer.groupIn + il) * kh + a) * kw + b]!;
            }
        }
      v[o * layer.groupIn + il] = Math.max(0, s);
    }
  }
  return v;
}

const specs: [string, Spec][] = [
  ['3x3 pad 1', { cin: 3, cout: 4, k: [3, 3], stride: [1, 1], pad: [1, 1], dilation: [1, 1], groups: 1, hw: [6, 5] }],
  ['3x3 stride 2 pad 1', { cin: 2, cout: 5, k: [3, 3], stride: [2, 2], pad: [1, 1], dilation: [1, 1], groups: 1, hw: [7, 8] }],
  ['3x2 dilation 2, no pad', { cin: 3, cout: 2, k: [3, 2], stride: [1, 2], pad: [0, 0], dilation: [2, 2], groups: 1, hw: [9, 7] }],
  ['grouped (2 groups) 3x3 stride 2 pad 2', { cin: 4, cout: 6, k: [3, 3], stride: [2, 2], pad: [2, 2], dilation: [1, 1], groups: 2, hw: [6, 6] }],
  ['depthwise 3x3', { cin: 4, cout: 4, k: [3, 3], stride: [1, 1], pad: [1, 1], dilation: [1, 1], groups: 4, hw: [5, 5] }],
  ['1x1 stride 2', { cin: 5, cout: 3, k: [1, 1], stride: [2, 2], pad: [0, 0], dilation: [1, 1], groups: 1, hw: [5, 5] }],
];

for (const [name, spec] of specs) {
  test(`conv contributions from window sums equal the unfolded definition: ${name}`, () => {
    const rng = new Rng(11);
    const layer = convLayer(spec, rng);
    const x = Float32Array.from({ length: 2 * spec.cin * spec.hw[0] * spec.hw[1] }, () => rng.normal());
    const per = spec.cin * spec.hw[0] * spec.hw[1];
    const plan = convPlan(layer.conv!);
    const v = new Float64Array(layer.outChannels * layer.groupIn);
    const want = new Float64Array(v.length);
    for (let b = 0; b < 2; b++) {
      addConvContributions(windowSums(x, b * per, spec.cin, plan), layer, v);
      const d = direct(x.subarray(b * per), layer);
      for (let i = 0; i < d.length; i++) want[i]! += d[i]!;
    }
    assert.ok(want.some((z) => z > 0) && want.some((z) => z === 0), 'the relu matters in this case');
    for (let i = 0; i < v.length; i++) assert.ok(Math.abs(v[i]! - want[i]!) < 1e-9 * Math.max(1, Math.abs(want[i]!)), `entry ${i}: ${v[i]} vs ${want[i]}`);
  });
}

test('linear contributions are relu(x_i * W_oi), summed over samples', () => {
  const layer: Layer = {
    node: { name: 'fc', opType: 'Gemm', inputs: [], outputs: [], attributes: {} },
    kind: 'linear',
    input: 'x',
    output: 'y',
    weight: 'w',
    outChannels: 2,
    inChannels: 3,
    groupIn: 3,
    w: Float32Array.from([1, -2, 3, -1, 0.5, 2]),
    k: 1,
    ...refs,
  };
  const v = new Float64Array(6);
  addLinearContributions(Float32Array.from([1, 2, -1, 0, 2, 1]), 0, layer, v);
  addLinearContributions(Float32Array.from([1, 2, -1, 0, 2, 1]), 3, layer, v);
  // sample 1: x = [1, 2, -1] -> [1, 0, 0 | 0, 1, 0]; sample 2: x = [0, 2, 1] -> [0, 0, 3 | 0, 1, 2]
  assert.deepEqual(Array.from(v), [1, 0, 3, 0, 2, 2]);
});

test('contributions do not depend on the batch size (batch 7 vs 64)', async () => {
  const ds = await openDataset('fashion-mnist-sample', 'train');
  const model = createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.125, seed: 2 });
  const cg = analyzeChannels(model);
  const samples: [number, number][] = [];
  for (let i = 0; samples.length < 40 && i < ds.size; i++) if (ds.label(i) === 2 || ds.label(i) === 6) samples.push([i, ds.label(i)]);
  const norm = { mean: [0.286], std: [0.353] };
  const a = await accumulateContributions(cg, ds, samples, { classes: [2, 6], normalization: norm, batchSize: 7 });
  const b = await accumulateContributions(cg, ds, samples, { classes: [2, 6], normalization: norm, batchSize: 64 });
  assert.equal(a.size, maskedLayers(cg).length);
  for (const [name, ca] of a) {
    const cb = b.get(name)!;
    assert.deepEqual(
      ca.samples,
      [2, 6].map((c) => samples.filter(([, l]) => l === c).length),
    );
    for (let c = 0; c < 2; c++) {
      const va = ca.values[c]!;
      const vb = cb.values[c]!;
      let scale = 0;
      for (const x of vb) scale = Math.max(scale, Math.abs(x));
      assert.ok(scale > 0, `${name} has contributions`);
      for (let i = 0; i < va.length; i++) assert.ok(Math.abs(va[i]! - vb[i]!) <= 1e-5 * scale, `${name}[${c}][${i}]: ${va[i]} vs ${vb[i]}`);
    }
  }
});

test("position sums: a linear layer over tokens or pixels sees each feature summed over one image's positions, any batch axis", async () => {
  const { positionSums } = await import('../../src/lego/contributions.js');
  // sequence-first [T=2, N=3, D=4]: x[t, n, d] = 100 t + 10 n + d
  const seq = Float32Array.from({ length: 24 }, (_, f) => 100 * Math.floor(f / 12) + 10 * (Math.floor(f / 4) % 3) + (f % 4));
  const out = new Float64Array(4);
  assert.deepEqual(
    Array.from(positionSums(seq, [2, 3, 4], 1, 2, 2, out)),
    [0, 1, 2, 3].map((d) => 0 + 20 + d + (100 + 20 + d)),
  );
  // channels-last [N=2, H=1, W=2, C=3]: x[n, 0, w, c] = 10 n + 3 w + c
  const nhwc = Float32Array.from({ length: 12 }, (_, f) => 10 * Math.floor(f / 6) + 3 * (Math.floor(f / 3) % 2) + (f % 3));
  assert.deepEqual(
    Array.from(positionSums(nhwc, [2, 1, 2, 3], 0, 3, 1, new Float64Array(3))),
    [0, 1, 2].map((c) => 10 + c + (13 + c)),
  );
});
