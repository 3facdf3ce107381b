/**
 * Builds the training graph: one ONNX graph that takes a batch, its targets, the
 * trainable parameters (and BatchNorm running statistics, Dropout masks) as inputs and
 * computes the loss, the logits, every parameter's gradient and the updated running
 * statistics with standard operators (opset 17 or the model's own), so ONNX Runtime runs a whole training
 * step's maths in one call.
 */
import type { Graph, Model, Node } from '../onnx/types.js';
import type { StateTensor, TrainingGraph, TrainingGraphSpec } from './types.js';
import { attrFloat, cloneModel, constantValue, int, opsetVersion, tensorNames, topoSort, uniqueName, isDefaultDomain, freshName } from '../onnx/graph.js';
import { analyzeShapes } from '../onnx/shapes.js';
import { foldConstants } from '../onnx/fold.js';
import { runningStatistics } from '../onnx/parameters.js';
import { isNum } from '../onnx/dims.js';
import { tensor, toNumbers } from '../onnx/tensor.js';
import { removeDeadNodes, removeUnused, usedTensors } from '../onnx/prune.js';
import { UserError } from '../util/errors.js';
import { GraphWriter, differentiate, isFloat } from './grad.js';
import { appendLoss, targetInfo } from './rules/loss.js';
import { GRAD_RULES } from './rules/index.js';

/**
 * Training graphs run at opset 17, or at the model's own opset when newer (up to 20,
 * for Gelu): every node the training graph emits has one meaning across 17-20 (no
 * Reduce* but ReduceSum gets axes, ReduceSum taking them as an input since 13), and
 * models from opset 13 on share opset 17's semantics for the operators differentiated.
 */
const TRAINING_OPSET = 17;
const MIN_OPSET = 13;
const MAX_OPSET = 20;

/**
 * @example
 *   const tg = buildTrainingGraph({ model, trainable: trainableParameters(model.graph), loss: 'cross-entropy', batchSize: 64, batchNorm: 'train' });
 *   const out = await session.run({ [tg.feeds.input]: x, [tg.feeds.target]: y, ...params, ...state });
 *   out[tg.loss]; out[tg.gradients['fc.weight']];
 */
export function buildTrainingGraph(spec: TrainingGraphSpec): TrainingGraph {
  checkSpec(spec);
  const { model, input, masks } = forwardGraph(spec);
  const g = model.graph;
  const w = new GraphWriter(g, analyzeShapes(model).known, opsetVersion(model));
  const logits = logitsOf(g, w);
  const inputGradients = [...(spec.inputGradients ?? [])];
  checkInputGradients(w, inputGradients);
  const norm = spec.batchNorm === 'train' ? batchStatistics(w) : evalBatchNorm(g);
  const state = updateRunningStatistics(w, norm.stats);
  const outputs = reserveOutputNames(w, spec.trainable, inputGradients);
  const targetShape = targetInfo(spec.loss, w.shape(logits));
  const target = addInput(w, 'target', targetShape.dtype, targetShape.shape);
  const { loss, dLogits } = appendLoss(w, spec.loss, logits, target, w.name('loss'));
  const grads = differentiate(w, {
    seeds: new Map([[logits, dLogits]]),
    wrt: [...spec.trainable, ...inputGradients],
    stop: norm.stop,
    view: (n) => norm.views.get(n) ?? n,
    rules: GRAD_RULES,
  });
  for (const [t, name] of outputs) nameGradient(w, grads.get(t)!, name, grads);
  g.outputs = [loss, logits, ...outputs.values(), ...state.map((s) => s.output)].map((name) => ({ name, dtype: w.dtype(name), shape: w.shape(name) }));
  g.valueInfo.clear();
  return {
    model,
    batchSize: spec.batchSize,
    feeds: { input, target },
    masks,
    parameters: [...spec.trainable],
    gradients: Object.fromEntries(spec.trainable.map((p) => [p, outputs.get(p)!])),
    inputGradients: Object.fromEntries(inputGradients.map((t) => [t, outputs.get(t)!])),
    state,
    loss,
    logits,
  };
}

/** A forward graph that normalises with batch statistics and outputs them (see batchStatistics). */
export interface StatisticsGraph {
  model: Model;
  /** the data input (batch axis fixed to the batch size) */
  input: string;
  layers: { runningMean: string; runningVariance: string; mean: string; variance: string; count: number }[];
}

/**
 * The forward model with every BatchNormalization in training mode (batch mean and
 * biased variance over all axes but the channel axis), whose outputs are those
 * statistics, for re-estimating running statistics on data.
 *
 * @example
 *   const sg = buildStatisticsGraph(model, 256);
 *   const out = await session.run({ [sg.input]: x });   // out[sg.layers[0].mean], ...
 */
export function buildStatisticsGraph(source: Model, batchSize: number): StatisticsGraph {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new UserError(`batch size must be a positive integer, got ${batchSize}`);
  const model = cloneModel(source);
  setTrainingOpset(model);
  const input = dataInput(model.graph);
  fixBatch(model.graph, batchSize);
  rewriteDropout(model, false);
  const folded = foldConstants(model);
  folded.graph.nodes = topoSort(folded.graph);
  const w = new GraphWriter(folded.graph, analyzeShapes(folded).known, opsetVersion(folded));
  const { stats } = batchStatistics(w);
  folded.graph.outputs = stats.flatMap((s) => [s.mean, s.variance]).map((name) => ({ name, dtype: 'float32' as const, shape: w.shape(name) }));
  folded.graph.valueInfo.clear();
  removeDeadNodes(folded.graph);
  removeUnused(folded.graph);
  return {
    model: folded,
    input,
    layers: stats.map(({ runningMean, runningVariance, mean, variance, count }) => ({ runningMean, runningVariance, mean, variance, count })),
  };
}

/**
 * The forward graph as training runs it: static batch, trainable parameters and (in
 * training mode) running statistics as inputs, Dropout rewritten, constants folded,
 * nodes in topological order.
 */
function forwardGraph(spec: TrainingGraphSpec): { model: Model; input: string; masks: TrainingGraph['masks'] } {
  const model = cloneModel(spec.model);
  setTrainingOpset(model);
  const input = dataInput(model.graph);
  fixBatch(model.graph, spec.batchSize);
  toInputs(model.graph, spec.trainable);
  if (spec.batchNorm === 'train') toInputs(model.graph, [...runningStatistics(model.graph)]);
  const masks = rewriteDropout(model, spec.dropout ?? spec.batchNorm === 'train');
  const folded = foldConstants(model);
  folded.graph.nodes = topoSort(folded.graph);
  stashOutputs(folded.graph);
  return { model: folded, input, masks };
}

/** Optional outputs that gradient rules read (LayerNormalization's Mean and InvStdDev), by operator and count. */
const STASHED_OUTPUTS: Readonly<Record<string, number>> = { LayerNormalization: 3 };

/** Gives every node in STASHED_OUTPUTS its optional outputs, so its rule reads them instead of recomputing them. */
function stashOutputs(g: Graph): void {
  const taken = tensorNames(g);
  for (const n of g.nodes) {
    const want = Object.hasOwn(STASHED_OUTPUTS, n.opType) && isDefaultDomain(n.domain) ? STASHED_OUTPUTS[n.opType]! : 0;
    for (let i = 0; i < want; i++) {
      if (n.outputs[i]) continue;
      const name = uniqueName(g, `${n.name}/stash_${i}`, taken);
      taken.add(name);
      n.outputs[i] = name;
    }
  }
}

function checkSpec(spec: TrainingGraphSpec): void {
  if (!Number.isInteger(spec.batchSize) || spec.batchSize < 1) throw new UserError(`batch size must be a positive integer, got ${spec.batchSize}`);
  if (spec.batchNorm !== 'train' && spec.batchNorm !== 'eval') throw new UserError(`batchNorm must be "train" or "eval", got "${String(spec.batchNorm)}"`);
  const g = spec.model.graph;
  const stats = runningStatistics(g);
  const seen = new Set<string>();
  for (const p of spec.trainable) {
    const t = g.initializers.get(p);
    if (!t) throw new UserError(`trainable parameter "${p}" is not an initializer of model ${g.name}`);
    if (stats.has(p)) throw new UserError(`"${p}" is a BatchNormalization running statistic, not a trainable parameter`);
    if (t.dtype !== 'float32') throw new UserError(`trainable parameter "${p}" is ${t.dtype}; training needs float32 parameters`);
    if (seen.has(p)) throw new UserError(`trainable parameter "${p}" is listed twice`);
    seen.add(p);
  }
}

function setTrainingOpset(model: Model): void {
  const v = opsetVersion(model);
  if (v < MIN_OPSET || v > MAX_OPSET) {
    throw new UserError(
      `model ${model.graph.name} uses opset ${v}; training supports opsets ${MIN_OPSET} to ${MAX_OPSET} (re-export it with opset_version=17)`,
    );
  }
  model.opsets = [{ domain: '', version: Math.max(v, TRAINING_OPSET) }];
}

function dataInput(g: Graph): string {
  const inputs = g.inputs.filter((v) => !g.initializers.has(v.name));
  if (inputs.length !== 1)
    throw new UserError(`model ${g.name} has ${inputs.length} inputs (${inputs.map((v) => v.name).join(', ')}); training needs exactly one data input`);
  const v = inputs[0]!;
  if (v.dtype !== 'float32') throw new UserError(`input "${v.name}" is ${v.dtype}; training needs a float32 input`);
  return v.name;
}

/** Makes every shape static: the batch axis of inputs and outputs becomes `batch`. */
function fixBatch(g: Graph, batch: number): void {
  g.inputs = g.inputs.map((v) => {
    if (g.initializers.has(v.name)) return v;
    if (!v.shape || v.shape.length === 0) throw new UserError(`input "${v.name}" has no known shape; training needs [batch, ...] with static sizes`);
    const [first, ...rest] = v.shape;
    if (isNum(first) && first !== batch)
      throw new UserError(
        `input "${v.name}" has a fixed batch size of ${first}; build the training graph with batch size ${first} or re-export with a dynamic batch axis`,
      );
    const bad = rest.findIndex((d) => !isNum(d));
    if (bad >= 0) throw new UserError(`input "${v.name}" has a symbolic size at axis ${bad + 1}; training needs static sizes except the batch axis`);
    return { ...v, shape: [batch, ...rest] };
  });
  g.outputs = g.outputs.map((v) => (v.shape && v.shape.length > 0 && !isNum(v.shape[0]) ? { ...v, shape: [batch, ...v.shape.slice(1)] } : v));
  g.valueInfo.clear();
}

/** Initializers that become graph inputs of the same name (fed each step, never folded). */
function toInputs(g: Graph, names: readonly string[]): void {
  for (const name of names) {
    const t = g.initializers.get(name)!;
    g.initializers.delete(name);
    g.inputs.push({ name, dtype: t.dtype, shape: [...t.dims] });
  }
}

/**
 * Active Dropout becomes a product with a fed keep-mask (so that steps are
 * reproducible from the training loop's seeded Rng); inactive Dropout an Identity,
 * which folding removes.
 */
function rewriteDropout(model: Model, active: boolean): TrainingGraph['masks'] {
  const g = model.graph;
  if (!g.nodes.some((n) => n.opType === 'Dropout')) return [];
  const { known } = analyzeShapes(model);
  const used = usedTensors(g);
  const masks: TrainingGraph['masks'] = [];
  g.nodes = g.nodes.map((n): Node => {
    if (n.opType !== 'Dropout') return n;
    if (n.outputs[1] && used.has(n.outputs[1]))
      throw new UserError(`node ${n.name} (Dropout): its mask output is read by the graph; training cannot rewrite it`);
    const ratio = dropoutRatio(g, n);
    const x = n.inputs[0]!;
    if (!active || ratio === 0) return { name: n.name, opType: 'Identity', inputs: [x], outputs: [n.outputs[0]!], attributes: {} };
    const shape = known.get(x)?.shape;
    if (!shape || !shape.every(isNum)) throw new UserError(`node ${n.name} (Dropout): the shape of its input is not static`);
    const mask = freshInputName(g, `mask/${n.name}`);
    g.inputs.push({ name: mask, dtype: 'float32', shape: [...shape] });
    masks.push({ input: mask, shape: [...shape], ratio });
    return { name: n.name, opType: 'Mul', inputs: [x, mask], outputs: [n.outputs[0]!], attributes: {} };
  });
  return masks;
}

function dropoutRatio(g: Graph, n: Node): number {
  if (!n.inputs[1]) return 0.5;
  const t = constantValue(g, n.inputs[1]);
  if (!t) throw new UserError(`node ${n.name} (Dropout): its ratio must be a constant`);
  const r = toNumbers(t)[0]!;
  if (!(r >= 0 && r < 1)) throw new UserError(`node ${n.name} (Dropout): ratio ${r} is outside [0, 1)`);
  return r;
}

function freshInputName(g: Graph, base: string): string {
  const taken = new Set([...g.inputs.map((v) => v.name), ...g.initializers.keys(), ...g.nodes.flatMap((n) => n.outputs)]);
  return freshName(base, (name) => taken.has(name));
}

function logitsOf(g: Graph, w: GraphWriter): string {
  if (g.outputs.length !== 1) throw new UserError(`model ${g.name} has ${g.outputs.length} outputs; training needs exactly one (the logits)`);
  const logits = g.outputs[0]!.name;
  if (w.dtype(logits) !== 'float32') throw new UserError(`output "${logits}" is ${w.dtype(logits)}; training needs float32 logits`);
  w.shape(logits);
  return logits;
}

function checkInputGradients(w: GraphWriter, names: readonly string[]): void {
  for (const t of names) {
    const k = w.known.get(t);
    if (!k) throw new UserError(`inputGradients: tensor "${t}" does not exist in the model (after constant folding)`);
    if (!isFloat(k.dtype)) throw new UserError(`inputGradients: tensor "${t}" is ${k.dtype}, not a float tensor`);
  }
}

interface NormRewrite {
  /** what the BatchNormalization rule sees of each rewritten node */
  views: Map<Node, Node>;
  /** batch statistics: the rule accounts for their gradients itself */
  stop: Set<string>;
  stats: BatchStatistics[];
}

/** One training-mode BatchNormalization's statistics, for the running-statistics update. */
interface BatchStatistics {
  momentum: number;
  runningMean: string;
  runningVariance: string;
  mean: string;
  variance: string;
  /** values per channel in a batch (N x spatial) */
  count: number;
}

/**
 * BatchNormalization in training mode: the batch mean and biased variance over every
 * axis but the channel axis are computed by primitive nodes and fed to an
 * inference-form BatchNormalization (ONNX Runtime's CPU training-mode kernel was about
 * 2x slower and returns a biased running variance). The gradient rule sees the node
 * with training_mode=1 and computes the full input gradient, statistics included.
 */
function batchStatistics(w: GraphWriter): NormRewrite {
  const out: NormRewrite = { views: new Map(), stop: new Set(), stats: [] };
  const used = usedTensors(w.graph);
  for (const node of w.graph.nodes.filter((n) => n.opType === 'BatchNormalization')) {
    const x = node.inputs[0]!;
    const shape = w.shape(x);
    if (shape.length < 2) throw new UserError(`node ${node.name} (BatchNormalization): input "${x}" needs a channel axis, found [${shape.join(',')}]`);
    const channels = shape[1]!;
    const count = shape.reduce((a, b) => a * b, 1) / channels;
    if (count < 2)
      throw new UserError(
        `node ${node.name} (BatchNormalization) in training mode needs more than one value per channel (batch x spatial size is ${count}); use a larger batch`,
      );
    const axes = w.ints(
      shape.map((_, i) => i).filter((i) => i !== 1),
      'axes',
    );
    const hint = `${node.name}/batch`;
    // ReduceSum, not ReduceMean: its axes input means the same at every opset from 13 on
    const perValue = w.scalar(1 / count, 'inv_count');
    const meanOf = (t: string, keepdims: number, h: string): string =>
      w.emit('Mul', [w.emit('ReduceSum', [t, axes], { keepdims: int(keepdims) }, 1, `${h}_sum`)[0]!, perValue], {}, 1, h)[0]!;
    const meanKept = meanOf(x, 1, `${hint}_mean_kept`);
    const centred = w.emit('Sub', [x, meanKept], {}, 1, `${hint}_centred`)[0]!;
    // Mul + ReduceSum, not ReduceSumSquare: ORT's ReduceSumSquare over these axes took longer than both
    // (w0.25's 16x28x28 maps at batch 128: 0.97 vs 0.46 + 0.29 ms, Intel Xeon)
    const squares = w.emit('Mul', [centred, centred], {}, 1, `${hint}_squares`)[0]!;
    const variance = meanOf(squares, 0, `${hint}_var`);
    const mean = w.emit('Reshape', [meanKept, w.ints([channels], 'shape')], {}, 1, `${hint}_mean`)[0]!;
    // ONNX stores attributes as float32: round now, so that a model read back from a file builds the same constants
    out.stats.push({
      momentum: Math.fround(attrFloat(node, 'momentum', 0.9)),
      runningMean: node.inputs[3]!,
      runningVariance: node.inputs[4]!,
      mean,
      variance,
      count,
    });
    inferenceForm(node, used);
    // normalises the centred values (mean input zero): the gradient rule then reads x_hat's
    // numerator from them instead of recomputing it, and X is free after the Sub
    const zeros = w.constant(tensor(w.dtype(x), [channels], new Array<number>(channels).fill(0)), 'zero_mean');
    node.inputs = [centred, node.inputs[1]!, node.inputs[2]!, zeros, variance];
    out.views.set(node, { ...node, inputs: [...node.inputs], attributes: { ...node.attributes, training_mode: int(1) } });
    // the rule's training-mode gradient already runs through the batch statistics
    out.stop.add(meanKept).add(mean).add(variance);
  }
  w.graph.nodes = topoSort(w.graph);
  return out;
}

/** Evaluation mode: every BatchNormalization is the affine map with its running statistics. */
function evalBatchNorm(g: Graph): NormRewrite {
  const used = usedTensors(g);
  for (const n of g.nodes) if (n.opType === 'BatchNormalization') inferenceForm(n, used);
  return { views: new Map(), stop: new Set(), stats: [] };
}

/** Drops training_mode and the running-statistics outputs (nothing may read them). */
function inferenceForm(n: Node, used: Set<string>): void {
  const extra = n.outputs.slice(1).find((o) => o && used.has(o));
  if (extra)
    throw new UserError(`node ${n.name} (BatchNormalization): output "${extra}" (a running statistic) is read by the graph; training cannot rewrite it`);
  delete n.attributes['training_mode'];
  n.outputs = [n.outputs[0]!];
}

/**
 * running <- running * momentum + batch * (1 - momentum), with the unbiased batch
 * variance (PyTorch's convention; ONNX momentum 0.9 is PyTorch's 0.1).
 */
function updateRunningStatistics(w: GraphWriter, stats: NormRewrite['stats']): StateTensor[] {
  const state: StateTensor[] = [];
  const inputs = new Set(w.graph.inputs.map((v) => v.name));
  for (const s of stats) {
    const momentum = s.momentum;
    const pairs: [string, string, number][] = [
      [s.runningMean, s.mean, 1 - momentum],
      [s.runningVariance, s.variance, ((1 - momentum) * s.count) / (s.count - 1)],
    ];
    for (const [running, batch, weight] of pairs) {
      if (!inputs.has(running)) continue;
      const kept = w.emit('Mul', [running, w.scalar(momentum, 'momentum')], {}, 1, `${running}/decayed`)[0]!;
      const fresh = w.emit('Mul', [batch, w.scalar(weight, 'weight')], {}, 1, `${running}/batch`)[0]!;
      const output = w.emit('Add', [kept, fresh], {}, [w.name(`${running}/updated`)], `${running}/update`)[0]!;
      state.push({ name: running, input: running, output });
    }
  }
  return state;
}

/** Output names `grad/<tensor>`, reserved before anything else is emitted. */
function reserveOutputNames(w: GraphWriter, trainable: readonly string[], inputs: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const t of [...trainable, ...inputs]) if (!out.has(t)) out.set(t, w.name(`grad/${t}`));
  return out;
}

function addInput(w: GraphWriter, base: string, dtype: 'float32' | 'int64', shape: number[]): string {
  const name = w.name(base);
  w.graph.inputs.push({ name, dtype, shape });
  w.known.set(name, { dtype, shape });
  return name;
}

/**
 * Gives a gradient its output name: by renaming the backward node's output when
 * nothing else reads it, else through an Identity.
 */
function nameGradient(w: GraphWriter, grad: string, name: string, all: Map<string, string>): void {
  const g = w.graph;
  const producer = g.nodes.find((n) => n.outputs.includes(grad));
  const readers = g.nodes.some((n) => n.inputs.includes(grad));
  const shared = [...all.values()].filter((v) => v === grad).length > 1;
  const isGraphTensor = g.inputs.some((v) => v.name === grad) || g.initializers.has(grad);
  if (producer && !readers && !shared && !isGraphTensor) {
    producer.outputs = producer.outputs.map((o) => (o === grad ? name : o));
    w.known.set(name, w.known.get(grad)!);
    for (const [k, v] of all) if (v === grad) all.set(k, name);
    return;
  }
  w.emit('Identity', [grad], {}, [name], name);
}
