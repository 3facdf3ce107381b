/**
 * Convolution gradients through ONNX Runtime: the forward (weights as initializer, and as
 * graph input as the training graph feeds them), every input- and weight-gradient
 * formulation of src/autodiff/rules/conv.ts as a ratio to the forward, and which ones
 * the rule picks; then MaxPool and BatchNorm backward next to their forward.
 * `node dist/bench/conv-grad.js [--quick] [--json] [--threads N] [--batch B] [--cases 0,3]`
 * (--cases: indices into ALL_CASES).
 */
import type { Attribute, Graph, Tensor } from '../src/onnx/types.js';
import { createModel, emptyGraph, float, int, ints, uniqueName } from '../src/onnx/graph.js';
import { maxPoolGrad } from '../src/autodiff/rules/pool.js';
import type { Emitter } from '../src/autodiff/types.js';
import { batchNormGrad } from '../src/autodiff/rules/norm.js';
import { float32, int64, numel } from '../src/onnx/tensor.js';
import { ModelSession } from '../src/runtime/session.js';
import {
  chooseInputGradMethod,
  chooseWeightGradMethod,
  convInputGrad,
  convWeightGrad,
  type ConvGeometry,
  INPUT_GRAD_METHODS,
  splitShiftApplies,
  WEIGHT_GRAD_METHODS,
} from '../src/autodiff/rules/conv.js';
import { machine, matmulPeak, randomInput, time } from './common.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const json = args.includes('--json');
const option = (name: string, fallback: number): number => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) || fallback : fallback);
const threads = option('--threads', 2);
const batch = option('--batch', 128);
const seconds = quick ? 0.3 : 1;

interface Case {
  name: string;
  cin: number;
  cout: number;
  size: number;
  kernel: number;
  stride: number;
  pad: number;
}

const conv3 = (cin: number, cout: number, size: number, stride = 1): Case => ({
  name: `3x3 ${cin}->${cout} @${size}${stride > 1 ? ' s2' : ''}`,
  cin,
  cout,
  size,
  kernel: 3,
  stride,
  pad: 1,
});
const conv1 = (cin: number, cout: number, size: number, stride = 1): Case => ({
  name: `1x1 ${cin}->${cout} @${size}${stride > 1 ? ' s2' : ''}`,
  cin,
  cout,
  size,
  kernel: 1,
  stride,
  pad: 0,
});

const ALL_CASES: Case[] = [
  conv3(16, 16, 28),
  conv3(32, 32, 14),
  conv3(64, 64, 7),
  conv3(64, 64, 32),
  conv3(128, 128, 16),
  conv3(128, 128, 8),
  conv3(16, 32, 28, 2),
  conv3(64, 128, 32, 2),
  conv1(64, 128, 32, 2),
  conv1(64, 64, 16),
  // the deep layers of VGG-11 / ResNet-18 at width 1 on 32x32 inputs
  conv3(256, 256, 8),
  conv3(512, 512, 4),
  conv3(512, 512, 2),
  // the split-shift weight gradient's range (chooseWeightGradMethod)
  conv3(64, 64, 16),
  conv3(32, 32, 28),
  conv3(16, 16, 14),
  conv3(256, 256, 16),
  // strided input gradients on small maps (stacked-conv-transpose): ResNet-18's layer3/layer4 entries, ResNet(1,1,1,1) w0.25's
  conv3(128, 256, 16, 2),
  conv3(256, 512, 8, 2),
  conv1(256, 512, 8, 2),
  conv3(32, 64, 14, 2),
  conv3(64, 128, 7, 2),
  conv1(64, 128, 7, 2),
  conv3(256, 512, 4, 2),
];

const only = args.includes('--cases') ? args[args.indexOf('--cases') + 1]!.split(',').map(Number) : undefined;
const CASES = only ? ALL_CASES.filter((_, i) => only.includes(i)) : ALL_CASES;

/** Builds a graph through the same Emitter interface the gradient rules write to. */
class GraphEmitter implements Emitter {
  readonly graph: Graph = emptyGraph('bench');
  emit(opType: string, inputs: readonly string[], attributes: Record<string, Attribute> = {}, outputs = 1, hint = opType): string[] {
    const names = Array.from({ length: outputs }, (_, i) => this.fresh(`${hint}${i ? `_${i}` : ''}`));
    this.graph.nodes.push({ name: this.fresh(`${hint}_node`), opType, inputs: [...inputs], outputs: names, attributes });
    return names;
  }
  addConstant(value: Tensor, hint: string): string {
    const name = this.fresh(hint);
    this.graph.initializers.set(name, value);
    return name;
  }
  input(name: string, shape: number[]): string {
    this.graph.inputs.push({ name, dtype: 'float32', shape });
    return name;
  }
  /** Outputs one element of `name`: copying a large result back to JS would be timed too. */
  output(name: string): void {
    const flat = this.emit('Reshape', [name, this.addConstant(int64([1], [-1]), 'flat_shape')], {}, 1, `${name}_flat`)[0]!;
    const one = (v: number): string => this.addConstant(int64([1], [v]), 'one_index');
    const [first] = this.emit('Slice', [flat, one(0), one(1)], {}, 1, `${name}_first`);
    this.graph.outputs.push({ name: first!, dtype: 'float32' });
  }
  private fresh(base: string): string {
    return uniqueName(this.graph, base);
  }
}

function geometry(c: Case): ConvGeometry {
  const out = Math.floor((c.size + 2 * c.pad - c.kernel) / c.stride) + 1;
  return {
    x: [batch, c.cin, c.size, c.size],
    w: [c.cout, c.cin, c.kernel, c.kernel],
    y: [batch, c.cout, out, out],
    group: 1,
    strides: [c.stride, c.stride],
    dilations: [1, 1],
    padsBegin: [c.pad, c.pad],
    padsEnd: [c.pad, c.pad],
  };
}

type Feeds = Record<string, { dims: number[]; data: Float32Array }>;
const feed = (dims: number[], seed: number): { dims: number[]; data: Float32Array } => ({ dims, data: randomInput(numel(dims), seed) });

function forwardGraph(g: ConvGeometry, weightAsInput: boolean): GraphEmitter {
  const e = new GraphEmitter();
  const w = weightAsInput ? e.input('w', g.w) : e.addConstant(float32(g.w, randomInput(numel(g.w), 3)), 'w');
  const [y] = e.emit(
    'Conv',
    [e.input('x', g.x), w],
    {
      kernel_shape: ints(g.w.slice(2)),
      strides: ints(g.strides),
      pads: ints([...g.padsBegin, ...g.padsEnd]),
      group: int(1),
    },
    1,
    'y',
  );
  e.output(y!);
  return e;
}

interface Variant {
  name: string;
  graph: GraphEmitter;
  feeds: Feeds;
}

function variants(g: ConvGeometry): Variant[] {
  const x = feed(g.x, 1);
  const w = feed(g.w, 2);
  const dy = feed(g.y, 4);
  const out: Variant[] = [
    { name: 'forward (weights initializer)', graph: forwardGraph(g, false), feeds: { x } },
    { name: 'forward', graph: forwardGraph(g, true), feeds: { x, w } },
  ];
  for (const m of INPUT_GRAD_METHODS) {
    if (m === 'flipped-conv' && g.strides.some((s) => s !== 1)) continue;
    const e = new GraphEmitter();
    e.output(convInputGrad(e, g, e.input('dy', g.y), e.input('w', g.w), m));
    out.push({ name: `dX ${m}`, graph: e, feeds: { dy, w } });
  }
  for (const m of WEIGHT_GRAD_METHODS) {
    if (m === 'split-shift' && !splitShiftApplies(g)) continue;
    const e = new GraphEmitter();
    e.output(convWeightGrad(e, g, e.input('x', g.x), e.input('dy', g.y), m));
    out.push({ name: `dW ${m}`, graph: e, feeds: { x, dy } });
  }
  return out;
}

/**
 * Median ms per variant. The variants run round-robin, one call each per round, so that
 * load from other processes on this shared machine falls on all of them alike.
 */
async function measureInterleaved(vs: Variant[]): Promise<Record<string, number>> {
  const sessions = await Promise.all(vs.map((v) => ModelSession.create(createModel(v.graph.graph), { threads })));
  const times: number[][] = vs.map(() => []);
  try {
    for (let i = 0; i < vs.length; i++) await sessions[i]!.run(vs[i]!.feeds);
    const start = performance.now();
    for (let round = 0; round < 5 || (performance.now() - start) / 1000 < seconds * vs.length; round++) {
      for (let i = 0; i < vs.length; i++) {
        const t = await time(() => sessions[i]!.run(vs[i]!.feeds), 0, 0);
        times[i]!.push(t.median * 1000);
      }
    }
  } finally {
    for (const s of sessions) await s.release();
  }
  return Object.fromEntries(vs.map((v, i) => [v.name, median(times[i]!)]));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const results: Record<string, unknown>[] = [];
const log = (s: string): void => {
  if (!json) console.log(s);
};
const peak = await matmulPeak(threads, seconds);
log(`machine: ${machine()}, ONNX Runtime intra-op threads: ${threads}, batch ${batch}`);
log(`reference: MatMul 2048x2048 peak ${peak.toFixed(1)} GFLOP/s`);
log('median ms of interleaved runs; (ratio) = time / forward with weights as graph input, as in training');
for (const c of CASES) {
  const g = geometry(c);
  const ms = await measureInterleaved(variants(g));
  const fwd = ms.forward!;
  const gflop = (2 * numel(g.y) * numel(g.w.slice(1))) / 1e9;
  const chosen = { input: chooseInputGradMethod(g), weight: chooseWeightGradMethod(g) };
  results.push({ case: c.name, batch, gflop, ms, chosen });
  const rest = Object.entries(ms)
    .filter(([k]) => !k.startsWith('forward'))
    .map(([k, t]) => `${k} ${t.toFixed(1)} (${(t / fwd).toFixed(2)})`)
    .join(', ');
  log(
    `${c.name}: forward ${fwd.toFixed(1)} [${(gflop / (fwd / 1000)).toFixed(0)} GFLOP/s], with weights as initializer ${ms['forward (weights initializer)']!.toFixed(1)} (${(ms['forward (weights initializer)']! / fwd).toFixed(2)}); ${rest}; rule: dX ${chosen.input}, dW ${chosen.weight}`,
  );
}

/** Pooling and BatchNorm backward next to their forward, on a ResNet/VGG-sized activation. */
function otherVariants(): Variant[] {
  const shape = [batch, 64, 32, 32];
  const x = feed(shape, 5);
  const out: Variant[] = [];
  const pool = (name: string, k: number, s: number, p: number): void => {
    const o = Math.floor((32 + 2 * p - k) / s) + 1;
    const attrs = { kernel_shape: ints([k, k]), strides: ints([s, s]), pads: ints([p, p, p, p]) };
    const fwd = new GraphEmitter();
    fwd.output(fwd.emit('MaxPool', [fwd.input('x', shape)], attrs, 1, 'y')[0]!);
    out.push({ name: `MaxPool ${name} forward`, graph: fwd, feeds: { x } });
    const withIndices = new GraphEmitter();
    withIndices.output(withIndices.emit('MaxPool', [withIndices.input('x', shape)], attrs, 2, 'y')[0]!);
    out.push({ name: `MaxPool ${name} forward with Indices`, graph: withIndices, feeds: { x } });
    const bwd = new GraphEmitter();
    const argmax = bwd.emit('MaxPool', [bwd.input('x', shape)], attrs, 2, 'y')[1]!;
    const g = { x: shape, y: [batch, 64, o, o], kernel: [k, k], strides: [s, s], dilations: [1, 1], padsBegin: [p, p], padsEnd: [p, p] };
    bwd.output(maxPoolGrad(bwd, g, bwd.input('dy', g.y), argmax, 'float32'));
    out.push({ name: `MaxPool ${name} forward+backward`, graph: bwd, feeds: { x, dy: feed([batch, 64, o, o], 6) } });
  };
  pool('k2 s2', 2, 2, 0);
  pool('k3 s2 p1', 3, 2, 1);
  const c = 64;
  const bnFwd = new GraphEmitter();
  const stats = (e: GraphEmitter, names: string[]): string[] =>
    names.map((n) => e.addConstant(float32([c], new Array<number>(c).fill(n === 'var' ? 1 : 0.5)), n));
  bnFwd.output(
    bnFwd.emit('BatchNormalization', [bnFwd.input('x', shape), ...stats(bnFwd, ['scale', 'bias', 'mean', 'var'])], { epsilon: float(1e-5) }, 1, 'y')[0]!,
  );
  out.push({ name: 'BatchNorm forward (inference form)', graph: bnFwd, feeds: { x } });
  const bnBwd = new GraphEmitter();
  const [scale, mean, variance] = stats(bnBwd, ['scale', 'mean', 'var']);
  const g = batchNormGrad(
    bnBwd,
    { x: bnBwd.input('x', shape), scale: scale!, mean: mean!, variance: variance!, shape, epsilon: 1e-5, dtype: 'float32' },
    bnBwd.input('dy', shape),
    true,
    { dx: true, dScale: true, dBias: true },
  );
  for (const t of [g.dx, g.dScale, g.dBias]) bnBwd.output(t!);
  out.push({ name: 'BatchNorm train backward', graph: bnBwd, feeds: { x, dy: feed(shape, 7) } });
  return out;
}

const others = await measureInterleaved(otherVariants());
results.push({ case: `pooling and BatchNorm on [${batch}, 64, 32, 32]`, ms: others });
log(
  `pooling and BatchNorm on [${batch},64,32,32]: ${Object.entries(others)
    .map(([k, t]) => `${k} ${t.toFixed(1)}`)
    .join(', ')}`,
);
if (json) console.log(JSON.stringify({ machine: machine(), threads, batch, matmulPeakGflops: peak, results }, null, 2));
