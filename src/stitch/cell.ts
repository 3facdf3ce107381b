/**
 * One cell of a stitching grid: sender cut x receiver cut x pair kind. Depending on the
 * mode it trains the stitch on the task loss through the frozen receiver suffix
 * ('task'), solves it in closed form ('lsq'), or trains it both on the task and to copy
 * the receiver's activation with MSE and compares the two ('copy'); the accuracy is
 * always measured on the whole (or the chosen part of the) test set.
 */
import { TrainingSession } from '../autodiff/trainer.js';
import { createOptimizer } from '../autodiff/optim.js';
import { createSchedule } from '../autodiff/schedule.js';
import { ModelSession } from '../runtime/session.js';
import { argmaxRow } from '../runtime/argmax.js';
import { numel } from '../onnx/tensor.js';
import { Rng, hashSeed } from '../util/random.js';
import { OptionError } from '../util/errors.js';
import { type ActivationBatch, type Source, batchPositions } from './activations.js';
import type { StitchContext } from './context.js';
import type { StitchCut } from './cuts.js';
import type { PairKind, RandomBatchNorm } from './controls.js';
import { type FlatFrom, type StitchKind, type StitchSpec, planStitch, specKey } from './plan.js';
import {
  type StitchWeights,
  buildPooling,
  buildStitch,
  initialWeights,
  pooledSpec,
  poolingKey,
  stitchParameters,
  weightDims as buildStitchDims,
} from './build.js';
import { addOutputs } from '../onnx/extract.js';
import { STITCH_PREFIX, stitchWithSuffix, suffixModel } from './compose.js';
import { LsqAccumulator, fitErrorOf, solveLsq } from './lsq.js';
import { SessionCache } from './sessions.js';

export const STITCH_MODES = ['task', 'lsq', 'copy'] as const;
export type StitchMode = (typeof STITCH_MODES)[number];
export const STITCH_SCHEDULES = ['constant', 'cosine'] as const;
export const STITCH_INITS = ['random', 'lsq'] as const;

export interface CellOptions {
  mode: StitchMode;
  /** training epochs (task and copy modes; reference 4) */
  epochs: number;
  /** reference 256 */
  batchSize: number;
  /** SGD: reference lr 0.01, momentum 0.9, weight decay 0.01 */
  lr: number;
  momentum: number;
  weightDecay: number;
  schedule: (typeof STITCH_SCHEDULES)[number];
  /** initial stitch for task training: seeded random (default), or the least-squares solution */
  init: (typeof STITCH_INITS)[number];
  /** into a flat receiver: pool (default: average pool / mean of the tokens), flatten, or a token sender's class token */
  flat: FlatFrom;
  bnBefore: boolean;
  bnAfter: boolean;
  seed: number;
  /** BatchNorm statistics of the random control networks (see controls.ts) */
  randomBatchNorm: RandomBatchNorm;
}

export const DEFAULT_CELL_OPTIONS: CellOptions = {
  mode: 'task',
  epochs: 4,
  batchSize: 256,
  lr: 0.01,
  momentum: 0.9,
  weightDecay: 0.01,
  schedule: 'constant',
  init: 'random',
  flat: 'pool',
  bnBefore: false,
  bnAfter: false,
  seed: 0,
  randomBatchNorm: 'data',
};

export interface StitchPair {
  kind: PairKind;
  sender: StitchCut;
  receiver: StitchCut;
}

/** What every cell reports, whatever its mode. */
interface CellBase {
  kind: PairKind;
  sender: string;
  receiver: string;
  stitch: { kind: StitchKind; ratio: number; from: number[]; to: number[]; unpatchify?: StitchSpec['unpatchify']; patchify?: StitchSpec['patchify'] };
  trainImages: number;
  testImages: number;
  epochs: number;
  seconds: number;
}

/** The least-squares stitch's relative fit error on the training / test images, and the ridge it needed. */
export interface LsqFit {
  fitError: number;
  testFitError: number;
  ridge: number;
}

/** How a trained stitch started: from the least-squares solution (its fit, and its accuracy before training: `--init lsq`), or at random (none of them). */
type TrainingStart = (LsqFit & { initAccuracy: number }) | { fitError?: never; testFitError?: never; ridge?: never; initAccuracy?: never };

/** The mode's measurements; `accuracy` is the cell's value: the least-squares, task-trained or copy-trained stitch's. */
export type CellOutcome =
  | ({ mode: 'lsq'; accuracy: number } & LsqFit)
  | ({
      mode: 'task';
      accuracy: number;
      /** mean training loss of the last epoch */
      trainLoss: number;
    } & TrainingStart)
  | ({
      mode: 'copy';
      accuracy: number;
      /** the task-trained ("vanilla") stitch's accuracy and its last epoch's mean loss */
      vanillaAccuracy: number;
      trainLoss: number;
      /** mean squared differences: vanilla stitch output vs the receiver's activation (ev), copy-trained vs it (es), copy-trained vs vanilla (sv) */
      ev: number;
      es: number;
      sv: number;
    } & TrainingStart);

export type CellResult = CellBase & CellOutcome;

/**
 * Sessions shared by the cells a worker runs, one cache per kind. A cell uses one
 * session of each kind it needs (some several times: accuracy before and after
 * training). The same key (receiver, cut, stitch shape) comes back either in the very
 * next cell (a one-column grid; a control kind right after the trained one) or a whole
 * row later, and a row of a full-size network's default grid has more receivers than
 * sessions one can afford: each keeps its weights and ONNX Runtime's arena for a batch
 * (0.5-1.4 GB at 64x64, batch 256, for ResNet-50 and ConvNeXt-Tiny suffixes), and a cache
 * of 12 held 12 of them without a hit. One per kind serves the reuses that happen and
 * bounds the memory; a miss costs building one session (about 1% of a full-size
 * training cell, 2% of a tiny one; docs/pending/wp-stitchmem.md).
 */
export const CELL_SESSIONS_PER_KIND = 1;

export class CellSessions {
  readonly taskTrain = new SessionCache<TrainingSession>(CELL_SESSIONS_PER_KIND);
  readonly taskEval = new SessionCache<ModelSession>(CELL_SESSIONS_PER_KIND);
  readonly copyTrain = new SessionCache<TrainingSession>(CELL_SESSIONS_PER_KIND);
  readonly stitchEval = new SessionCache<ModelSession>(CELL_SESSIONS_PER_KIND);
  /** the pooling fronts of pool-linear stitches (buildPooling): every sender row's last cells */
  readonly pooling = new SessionCache<ModelSession>(CELL_SESSIONS_PER_KIND);
  /** Sessions alive now, all kinds together. */
  get live(): number {
    return this.taskTrain.live + this.taskEval.live + this.copyTrain.live + this.stitchEval.live + this.pooling.live;
  }

  async release(): Promise<void> {
    for (const c of [this.taskTrain, this.taskEval, this.copyTrain, this.stitchEval, this.pooling]) await c.release();
  }
}

/** The plan for a pair, with the options' stitch choices. */
export function pairSpec(pair: StitchPair, o: Pick<CellOptions, 'flat' | 'bnBefore' | 'bnAfter'>): StitchSpec {
  return planStitch(pair.sender.shape, pair.receiver.shape, { flat: o.flat, bnBefore: o.bnBefore, bnAfter: o.bnAfter });
}

/**
 * A least-squares stitch is solved without BatchNorm after it (the closed form fits the stitch
 * alone); refuses the combination before any work.
 */
export function checkBatchNormPlace(o: Pick<CellOptions, 'bnAfter' | 'mode' | 'init'>): void {
  if (o.bnAfter && (o.mode === 'lsq' || o.init === 'lsq'))
    throw new OptionError((n) => `a least-squares stitch cannot have BatchNorm after it (${n('bnAfter', true)}); use ${n('bnBefore', true)} or no BatchNorm`);
}

/**
 * Runs one cell.
 *
 * @example const r = await runCell(ctx, sessions, { kind: 'trained', sender, receiver }, DEFAULT_CELL_OPTIONS);
 */
export async function runCell(ctx: StitchContext, sessions: CellSessions, pair: StitchPair, o: CellOptions): Promise<CellResult> {
  const start = Date.now();
  const spec = pairSpec(pair, o);
  checkBatchNormPlace(o);
  const cell = new Cell(ctx, sessions, pair, spec, o);
  const seed = hashSeed(o.seed, `stitch:${pair.sender.name}->${pair.receiver.name}`);
  let init = initialWeights(spec, { kind: 'random', seed });
  if (spec.bnBefore) await cell.setInputStatistics(init);
  let fit: LsqFit | undefined;
  if (o.mode === 'lsq' || o.init === 'lsq') {
    const lsq = await cell.leastSquares(init);
    init = new Map([...init, ...lsq.weights]);
    fit = { fitError: lsq.fitError, testFitError: lsq.testFitError, ridge: lsq.ridge };
  }
  if (spec.bnAfter) await cell.setOutputStatistics(init);
  const outcome = await measure(cell, o.mode, init, fit);
  return {
    kind: pair.kind,
    sender: pair.sender.name,
    receiver: pair.receiver.name,
    stitch: {
      kind: spec.kind,
      ratio: spec.ratio,
      from: spec.from,
      to: spec.to,
      ...(spec.unpatchify ? { unpatchify: spec.unpatchify } : {}),
      ...(spec.patchify ? { patchify: spec.patchify } : {}),
    },
    ...outcome,
    trainImages: ctx.train.indices.length,
    testImages: ctx.test.indices.length,
    epochs: o.mode === 'lsq' ? 0 : o.epochs,
    seconds: (Date.now() - start) / 1000,
  };
}

/** The mode's part of a cell, from the initial stitch (`fit`: the least-squares solution it holds, if it is one). */
async function measure(cell: Cell, mode: StitchMode, init: StitchWeights, fit: LsqFit | undefined): Promise<CellOutcome> {
  if (mode === 'lsq') {
    if (!fit) throw new Error('internal: an lsq cell without its least-squares solution');
    return { mode, accuracy: await cell.accuracy(init), ...fit };
  }
  const start: TrainingStart = fit ? { ...fit, initAccuracy: await cell.accuracy(init) } : {};
  const vanilla = await cell.trainTask(init);
  const accuracy = await cell.accuracy(vanilla.weights);
  if (mode === 'task') return { mode, accuracy, trainLoss: vanilla.loss, ...start };
  const copy = await cell.trainCopy(init);
  return {
    mode,
    accuracy: await cell.accuracy(copy.weights),
    vanillaAccuracy: accuracy,
    trainLoss: vanilla.loss,
    ...start,
    ...(await cell.compareOutputs(vanilla.weights, copy.weights)),
  };
}

class Cell {
  readonly sender: Source;
  readonly receiver: Source;
  /** the stitch as trained: the pair's, or for a pool-linear one its linear map of the pooled sender (pooledSpec, build.ts) */
  private readonly trainSpec: StitchSpec;
  /** what makes this cell's training sessions reusable; none for stitches with BatchNorm, which bake its statistics in */
  private readonly shareKey: string | undefined;
  /** the sender's training activations pooled once, when trainSpec is the pooled one */
  private pooled: Float32Array | undefined;

  constructor(
    readonly ctx: StitchContext,
    readonly sessions: CellSessions,
    readonly pair: StitchPair,
    /** the pair's stitch, as evaluated and solved by least squares */
    readonly spec: StitchSpec,
    readonly o: CellOptions,
  ) {
    this.sender = ctx.sender(pair.kind);
    this.receiver = ctx.receiver(pair.kind);
    this.trainSpec = pooledSpec(spec) ?? spec;
    this.shareKey = spec.bnBefore || spec.bnAfter ? undefined : specKey(this.trainSpec);
  }

  private senderBatches(list: 'train' | 'test', order: Int32Array, dropLast = false): AsyncGenerator<ActivationBatch> {
    const l = list === 'train' ? this.ctx.train : this.ctx.test;
    return this.ctx.store.batches(this.sender, this.pair.sender, l, order, this.o.batchSize, dropLast);
  }

  /**
   * Training batches for trainSpec. A pool-linear stitch trains on the pooled sender: each
   * training image pooled once (every epoch would pool and gather the whole activation
   * again), the batches gathered from those vectors. Evaluation keeps the pair's stitch,
   * which pools in its graph: the test images are read once either way, and a separate
   * pooling pass would only add a run per batch.
   */
  private async *trainBatches(order: Int32Array): AsyncGenerator<ActivationBatch> {
    if (this.trainSpec === this.spec) return yield* this.senderBatches('train', order, true);
    const all = await this.pooledSender();
    const features = this.trainSpec.from[0]!;
    const gather = new Float32Array(this.o.batchSize * features);
    for (const { positions, labels } of batchPositions(this.ctx.train, order, this.o.batchSize, true)) {
      positions.forEach((p, i) => gather.set(all.subarray(p * features, (p + 1) * features), i * features));
      yield { x: gather, size: positions.length, positions, labels };
    }
  }

  /** The sender's training activations averaged over positions, [images, features], in list order (buildPooling, build.ts). */
  private async pooledSender(): Promise<Float32Array> {
    if (this.pooled) return this.pooled;
    const l = this.ctx.train,
      features = this.trainSpec.from[0]!;
    const out = new Float32Array(l.indices.length * features);
    const create = (): Promise<ModelSession> => ModelSession.create(buildPooling(this.spec), this.ctx.session);
    await this.sessions.pooling.with(poolingKey(this.spec), create, async (session) => {
      const name = session.outputNames[0]!;
      // in list order: batches are views of the cached activations, nothing is gathered
      for await (const b of this.senderBatches('train', this.order('train'))) {
        const y = (await session.run({ x: { dims: [b.size, ...this.spec.from], data: b.x } }, [name]))[name]!.data as Float32Array;
        out.set(y, b.positions[0]! * features);
      }
    });
    return (this.pooled = out);
  }

  private receiverBatches(list: 'train' | 'test', order: Int32Array, dropLast = false): AsyncGenerator<ActivationBatch> {
    const l = list === 'train' ? this.ctx.train : this.ctx.test;
    return this.ctx.store.batches(this.receiver, this.pair.receiver, l, order, this.o.batchSize, dropLast);
  }

  private order(list: 'train' | 'test', epoch?: number): Int32Array {
    const n = (list === 'train' ? this.ctx.train : this.ctx.test).indices.length;
    const order = Int32Array.from({ length: n }, (_, i) => i);
    // the same image order for every cell: cells differ only in what is stitched
    if (epoch !== undefined) new Rng(hashSeed(this.o.seed, `stitch-epoch:${epoch}`)).shuffle(order);
    return order;
  }

  /** Test accuracy of the stitched network with these stitch weights. */
  async accuracy(weights: StitchWeights): Promise<number> {
    const key = `${this.receiver.id}|${this.pair.receiver.tensor}|${specKey(this.spec)}`;
    const create = (): Promise<ModelSession> =>
      ModelSession.create(
        stitchWithSuffix(buildStitch(this.spec, { kind: 'random', seed: 0 }, { weightsAsInputs: true }), suffixModel(this.receiver.model, this.pair.receiver)),
        this.ctx.session,
      );
    return this.sessions.taskEval.with(key, create, async (session) => {
      const feeds = prefixed(weights, this.spec);
      const outName = session.outputNames[0]!;
      let correct = 0,
        total = 0;
      for await (const b of this.senderBatches('test', this.order('test'))) {
        const out = await session.run({ ...feeds, [`${STITCH_PREFIX}x`]: { dims: [b.size, ...this.spec.from], data: b.x } }, [outName]);
        const logits = out[outName]!.data as Float32Array;
        const k = logits.length / b.size;
        for (let i = 0; i < b.size; i++) {
          total++;
          if (argmaxRow(logits, i, k) === this.ctx.outputOf[b.labels[i]!]) correct++;
        }
      }
      return correct / total;
    });
  }

  /** Trains the stitch on cross-entropy through the frozen receiver suffix. */
  async trainTask(init: StitchWeights): Promise<{ weights: StitchWeights; loss: number }> {
    const key = this.shareKey && `${this.receiver.id}|${this.pair.receiver.tensor}|${this.shareKey}|${this.o.batchSize}`;
    const create = (): Promise<TrainingSession> =>
      TrainingSession.create(
        stitchWithSuffix(buildStitch(this.trainSpec, { kind: 'weights', weights: init }), suffixModel(this.receiver.model, this.pair.receiver)),
        {
          trainable: stitchParameters(this.trainSpec).map((p) => STITCH_PREFIX + p),
          loss: 'cross-entropy',
          batchSize: this.o.batchSize,
          batchNorm: 'eval',
          session: this.ctx.session,
        },
      );
    const target = new BigInt64Array(this.o.batchSize);
    return this.sessions.taskTrain.with(key, create, (session) => this.fit(session, init, (epoch) => this.taskBatches(epoch, target)));
  }

  private async *taskBatches(epoch: number, target: BigInt64Array): AsyncGenerator<{ x: Float32Array; target: BigInt64Array }> {
    for await (const b of this.trainBatches(this.order('train', epoch))) {
      for (let i = 0; i < b.size; i++) target[i] = BigInt(this.ctx.outputOf[b.labels[i]!]!);
      yield { x: b.x, target };
    }
  }

  /** Trains the stitch alone to reproduce the receiver's activation (mean squared error). */
  async trainCopy(init: StitchWeights): Promise<{ weights: StitchWeights; loss: number }> {
    const key = this.shareKey && `${this.shareKey}|${this.o.batchSize}`;
    const create = (): Promise<TrainingSession> =>
      TrainingSession.create(buildStitch(this.trainSpec, { kind: 'weights', weights: init }), {
        trainable: stitchParameters(this.trainSpec),
        loss: 'mse',
        batchSize: this.o.batchSize,
        batchNorm: 'eval',
        session: this.ctx.session,
      });
    return this.sessions.copyTrain.with(key, create, (session) => this.fit(session, init, (epoch) => this.copyBatches(epoch), ''));
  }

  private async *copyBatches(epoch: number): AsyncGenerator<{ x: Float32Array; target: Float32Array }> {
    for await (const [s, r] of zip(this.trainBatches(this.order('train', epoch)), this.receiverBatches('train', this.order('train', epoch), true))) {
      yield { x: s.x, target: r.x };
    }
  }

  /** The SGD loop shared by task and copy training. */
  private async fit<T extends BigInt64Array | Float32Array>(
    session: TrainingSession,
    init: StitchWeights,
    data: (epoch: number) => AsyncIterable<{ x: Float32Array; target: T }>,
    prefix = STITCH_PREFIX,
  ): Promise<{ weights: StitchWeights; loss: number }> {
    const o = this.o;
    session.load(new Map([...init].map(([k, v]) => [prefix + k, v])));
    session.stepCount = 0;
    const optimizer = createOptimizer({ kind: 'sgd', momentum: o.momentum, weightDecay: o.weightDecay });
    const perEpoch = Math.floor(this.ctx.train.indices.length / o.batchSize);
    if (perEpoch < 1)
      throw new OptionError((n) => `only ${this.ctx.train.indices.length} training images, fewer than one batch of ${o.batchSize}; lower ${n('batchSize')}`);
    const schedule = createSchedule({ kind: o.schedule }, o.epochs * perEpoch);
    let step = 0,
      lossSum = 0,
      seen = 0;
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      lossSum = 0;
      seen = 0;
      for await (const b of data(epoch)) {
        const r = await session.step(b.x, b.target);
        if (!Number.isFinite(r.loss))
          throw new OptionError(
            (n) =>
              `stitch training diverged (${this.pair.kind} ${this.pair.sender.name} -> ${this.pair.receiver.name}): the loss is ${r.loss} at epoch ${epoch + 1}, step ${step + 1}; lower ${n('lr')}`,
          );
        optimizer.step(session.params, r.grads, o.lr * schedule(step++));
        lossSum += r.loss;
        seen++;
      }
    }
    const weights: StitchWeights = new Map(init);
    for (const [k, v] of session.params) weights.set(k.slice(prefix.length), Float32Array.from(v));
    return { weights, loss: lossSum / Math.max(1, seen) };
  }

  /** Solves the least-squares stitch on the training images; the test images give the held-out fit error. */
  async leastSquares(init: StitchWeights): Promise<{ weights: StitchWeights; fitError: number; testFitError: number; ridge: number }> {
    const moments = async (list: 'train' | 'test'): Promise<LsqAccumulator> => {
      const acc = await LsqAccumulator.create(this.spec, this.ctx.session, init, {
        train: this.ctx.train.indices.length,
        test: this.ctx.test.indices.length,
      });
      const order = this.order(list);
      for await (const [s, r] of zip(this.senderBatches(list, order), this.receiverBatches(list, order))) await acc.add(s.x, r.x, s.size);
      await acc.release();
      return acc;
    };
    const train = await moments('train');
    const sol = await solveLsq(this.spec, train.moments, this.ctx.session);
    const test = await moments('test');
    return { weights: sol.weights, fitError: sol.fitError, testFitError: await fitErrorOf(sol.a, test.moments, this.ctx.session), ridge: sol.ridge };
  }

  /** EV, ES, SV: mean squared differences on the test images between expected, vanilla and copy-trained outputs. */
  async compareOutputs(vanilla: StitchWeights, copy: StitchWeights): Promise<{ ev: number; es: number; sv: number }> {
    const create = (): Promise<ModelSession> =>
      ModelSession.create(buildStitch(this.spec, { kind: 'random', seed: 0 }, { weightsAsInputs: true }), this.ctx.session);
    return this.sessions.stitchEval.with(specKey(this.spec), create, async (session) => {
      const order = this.order('test');
      let ev = 0,
        es = 0,
        sv = 0,
        n = 0;
      const run = async (w: StitchWeights, x: Float32Array, size: number): Promise<Float32Array> =>
        (await session.run({ ...prefixed(w, this.spec, ''), x: { dims: [size, ...this.spec.from], data: x } }, ['y']))['y']!.data as Float32Array;
      for await (const [s, r] of zip(this.senderBatches('test', order), this.receiverBatches('test', order))) {
        const v = await run(vanilla, s.x, s.size),
          c = await run(copy, s.x, s.size);
        for (let i = 0; i < v.length; i++) {
          const e = r.x[i]!;
          ev += (v[i]! - e) ** 2;
          es += (c[i]! - e) ** 2;
          sv += (c[i]! - v[i]!) ** 2;
        }
        n += v.length;
      }
      return { ev: ev / n, es: es / n, sv: sv / n };
    });
  }

  /** BatchNorm before the stitch standardises the sender's channels: their mean and variance on the training images. */
  async setInputStatistics(w: StitchWeights): Promise<void> {
    const { mean, variance } = await channelStats(this.senderBatches('train', this.order('train')), this.spec.from);
    w.set('stitch.bn_before.running_mean', mean);
    w.set('stitch.bn_before.running_var', variance);
  }

  /** BatchNorm after the stitch standardises the initial stitch's output channels. */
  async setOutputStatistics(w: StitchWeights): Promise<void> {
    const pre = 'stitch.map';
    const session = await ModelSession.create(addOutputs(buildStitch(this.spec, { kind: 'weights', weights: w }), [pre]), this.ctx.session);
    const outs = async function* (src: AsyncGenerator<ActivationBatch>, spec: StitchSpec): AsyncGenerator<ActivationBatch> {
      for await (const b of src) {
        const out = await session.run({ x: { dims: [b.size, ...spec.from], data: b.x } }, [pre]);
        yield { ...b, x: out[pre]!.data as Float32Array };
      }
    };
    try {
      const { mean, variance } = await channelStats(outs(this.senderBatches('train', this.order('train')), this.spec), this.spec.to);
      w.set('stitch.bn_after.running_mean', mean);
      w.set('stitch.bn_after.running_var', variance);
    } finally {
      await session.release();
    }
  }
}

/** The stitch's weights as feeds of a weights-as-inputs model (names prefixed as in the merged graph). */
function prefixed(w: StitchWeights, spec: StitchSpec, prefix = STITCH_PREFIX): Record<string, { dims: number[]; data: Float32Array }> {
  const out: Record<string, { dims: number[]; data: Float32Array }> = {};
  const dims = buildStitchDims(spec);
  for (const [k, v] of w) out[prefix + k] = { dims: dims.get(k)!, data: v };
  return out;
}

/** Per-channel mean and (biased) variance over images and pixels, accumulated in float64. */
async function channelStats(batches: AsyncIterable<ActivationBatch>, shape: readonly number[]): Promise<{ mean: Float32Array; variance: Float32Array }> {
  const c = shape[0]!;
  const pix = numel(shape.slice(1));
  const s = new Float64Array(c),
    s2 = new Float64Array(c);
  let n = 0;
  for await (const b of batches) {
    for (let i = 0; i < b.size; i++) {
      for (let ch = 0; ch < c; ch++) {
        const base = (i * c + ch) * pix;
        for (let p = 0; p < pix; p++) {
          const v = b.x[base + p]!;
          s[ch]! += v;
          s2[ch]! += v * v;
        }
      }
    }
    n += b.size * pix;
  }
  const mean = Float32Array.from(s, (v) => v / n);
  const variance = Float32Array.from(s2, (v, ch) => Math.max(0, v / n - (s[ch]! / n) ** 2));
  return { mean, variance };
}

/** Iterates two generators in lockstep. */
async function* zip<A, B>(a: AsyncGenerator<A>, b: AsyncGenerator<B>): AsyncGenerator<[A, B]> {
  try {
    for (;;) {
      const [x, y] = await Promise.all([a.next(), b.next()]);
      if (x.done || y.done) return;
      yield [x.value, y.value];
    }
  } finally {
    await a.return(undefined);
    await b.return(undefined);
  }
}
