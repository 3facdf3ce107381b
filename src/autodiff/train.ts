/**
 * The training loop: epochs over a data loader with augmentation, a held-out validation
 * part of the training split (test data is only ever reported, never used to choose),
 * a JSON-lines metrics log, an atomic checkpoint every epoch, exact resume, seeds.
 *
 * @example
 *   const ds = await openDataset('fashion-mnist', 'train');
 *   const r = await train({ model: createZooModel('resnet', { blocks: [1,1,1,1], width: 0.5 }), data: ds,
 *     epochs: 10, batchSize: 128, lr: 0.05, optimizer: { kind: 'sgd', momentum: 0.9, weightDecay: 5e-4 },
 *     schedule: { kind: 'cosine' }, seed: 0, output: 'r.onnx' });
 */
import { existsSync } from 'node:fs';
import type { Model } from '../onnx/types.js';
import type { Augmentation, Batch, BatchOptions, Dataset, Normalization } from '../data/types.js';
import { batches, batchCount } from '../data/batches.js';
import { subsetIndices, splitTrainValidation } from '../data/classes.js';
import { saveModel } from '../onnx/proto.js';
import { untieAliases } from '../onnx/fold.js';
import { setInputSpec, setLabels, setProvenance, getArch } from '../onnx/metadata.js';
import { evaluate, type EvalResult } from '../runtime/evaluate.js';
import { resolveNormalization } from '../runtime/normalization.js';
import type { SessionOptions } from '../runtime/session.js';
import { TrainingSession } from './trainer.js';
import { selectTrainable } from './freeze.js';
import { resolveTargets, writeTargets, type Targets } from './targets.js';
import { createOptimizer, type Optimizer, type OptimizerConfig } from './optim.js';
import { createSchedule, type ScheduleConfig } from './schedule.js';
import { clipGradNorm } from './clip.js';
import { loadCheckpoint, modelMismatch, saveCheckpoint } from './checkpoint.js';
import { writeFileAtomic } from '../util/atomic.js';
import { hashSeed } from '../util/random.js';
import { info, progress } from '../util/progress.js';
import { OptionError } from '../util/errors.js';
import { pct, table } from '../util/format.js';
import { argmaxRow } from '../runtime/argmax.js';

/** Which weights `train` writes: the last epoch's or the best validation epoch's. */
export const KEEP_CHOICES = ['last', 'best'] as const;
export type KeepChoice = (typeof KEEP_CHOICES)[number];

/** What `train` uses for flags left out: the peak learning rate and weight decay per optimiser, warm-up, clipping. */
export interface TrainingDefaults {
  lr: Readonly<Record<OptimizerConfig['kind'], number>>;
  weightDecay: Readonly<Record<OptimizerConfig['kind'], number>>;
  /** linear warm-up, in epochs */
  warmupEpochs: number;
  /** global gradient-norm clipping, when on by default */
  clipNorm?: number;
}

/** Training a zoo architecture from scratch. */
export const FROM_SCRATCH: TrainingDefaults = {
  lr: { sgd: 0.05, adam: 1e-3, adamw: 1e-3 },
  weightDecay: { sgd: 5e-4, adam: 0, adamw: 0.01 },
  warmupEpochs: 0,
};

/**
 * Fine-tuning a model read from a file (an export, often BatchNorm-folded: without
 * BatchNorm's rescaling a trained network's loss is far sharper, and SGD at the
 * from-scratch rate 0.05 diverges within an epoch). Chosen by measurement on three
 * folded PyTorch exports trained on Fashion-MNIST (tools/finetune-defaults.mjs; the
 * table is in the README): SGD at 0.005, a tenth of the from-scratch rate, kept their
 * accuracy where 0.01 lost up to 38 points on one of them, with a 0.3-epoch linear
 * warm-up; Adam/AdamW by the same factor.
 */
export const FINE_TUNING: TrainingDefaults = {
  lr: { sgd: 0.005, adam: 1e-4, adamw: 1e-4 },
  weightDecay: FROM_SCRATCH.weightDecay,
  warmupEpochs: 0.3,
};

export interface TrainConfig {
  epochs: number;
  batchSize: number;
  lr: number;
  optimizer: OptimizerConfig;
  schedule: ScheduleConfig;
  /** clip the global gradient norm to this value */
  clipNorm?: number;
  /** fraction of the training split held out for validation (default 0.1) */
  validation?: number;
  seed: number;
  augmentation?: Augmentation;
  /** parameter globs to keep fixed, or the only ones to train */
  freeze?: string;
  trainable?: string;
  /** which weights to write: the last epoch's (default) or the best validation epoch's */
  keep?: KeepChoice;
}

export interface TrainJob extends TrainConfig {
  model: Model;
  /** content hash of the file the model came from (fine-tuning); absent for a fresh model */
  parentHash?: string;
  /** the training split */
  data: Dataset;
  /** reported at the end, never used for choices */
  test?: Dataset;
  classes?: number[];
  mean?: number[];
  std?: number[];
  output: string;
  /** default: <output>.ckpt */
  checkpoint?: string;
  /** default: <output>.metrics.jsonl */
  log?: string;
  resume?: boolean;
  /**
   * Stop after this many epochs have been completed (counting resumed ones), leaving the
   * checkpoint to continue from: time-boxed runs. The schedule still spans `epochs`.
   */
  stopAfter?: number;
  session?: SessionOptions;
}

export interface EpochMetrics {
  epoch: number;
  step: number;
  lr: number;
  trainLoss: number;
  trainAccuracy: number;
  valAccuracy: number | null;
  seconds: number;
  imagesPerSecond: number;
}

export interface TrainResult {
  output: string;
  epochs: EpochMetrics[];
  bestEpoch: number;
  trainable: number;
  classes: number[];
  data: string;
  test?: EvalResult;
}

interface Run {
  job: TrainJob;
  targets: Targets;
  normalization: Normalization;
  trainIdx: number[];
  valIdx: number[];
  session: TrainingSession;
  optimizer: Optimizer;
  lrAt: (step: number) => number;
  history: EpochMetrics[];
  best: { epoch: number; accuracy: number; weights?: Map<string, Float32Array> };
}

/**
 * Trains (or fine-tunes) a model by the job; writes the model, a checkpoint every epoch and the metrics log.
 *
 * @example
 *   const r = await train({ model: createZooModel('lenet5', { seed: 0 }), data: await openDataset('fashion-mnist', 'train'),
 *     epochs: 2, batchSize: 128, lr: 0.05, optimizer: { kind: 'sgd', momentum: 0.9 }, seed: 0, output: 'lenet5.onnx' });
 *   console.log(r.test?.accuracy);
 */
export async function train(job: TrainJob): Promise<TrainResult> {
  const run = await prepare(job);
  const startEpoch = run.history.length;
  try {
    const end = Math.min(job.epochs, job.stopAfter ?? job.epochs);
    for (let epoch = startEpoch; epoch < end; epoch++) {
      const metrics = await trainEpoch(run, epoch);
      metrics.valAccuracy = await validate(run);
      run.history.push(metrics);
      if (metrics.valAccuracy !== null && metrics.valAccuracy > run.best.accuracy) {
        run.best = { epoch, accuracy: metrics.valAccuracy, ...(job.keep === 'best' ? { weights: copyWeights(run.session) } : {}) };
      }
      writeCheckpoint(run, epoch);
      writeLog(run);
      info(
        `epoch ${epoch + 1}/${job.epochs}: loss ${metrics.trainLoss.toFixed(4)}, train acc ${pct(metrics.trainAccuracy)}, val acc ${metrics.valAccuracy === null ? '-' : pct(metrics.valAccuracy)}, ${metrics.imagesPerSecond.toFixed(0)} images/s`,
      );
    }
    if (job.keep === 'best' && run.best.weights) run.session.load(run.best.weights);
    const model = finalModel(run);
    saveModel(model, job.output);
    const result: TrainResult = {
      output: job.output,
      epochs: run.history,
      bestEpoch: run.best.epoch + 1,
      trainable: run.session.params.size,
      classes: run.targets.classes,
      data: job.data.source,
    };
    if (job.test) result.test = await evaluate(model, job.test, { ...job.session, classes: run.targets.classes, label: 'test' });
    return result;
  } finally {
    await run.session.release();
  }
}

async function prepare(job: TrainJob): Promise<Run> {
  if (!Number.isInteger(job.epochs) || job.epochs < 1) throw new OptionError((o) => `${o('epochs')} must be a positive integer, got ${job.epochs}`);
  const checkpoint = job.checkpoint ?? `${job.output}.ckpt`;
  const resumed = job.resume && existsSync(checkpoint) ? loadCheckpoint(checkpoint) : undefined;
  if (job.resume && !resumed) info(`no checkpoint at ${checkpoint}: starting from the beginning`);
  // the exporter's Identity aliases of equal initializers are separate parameters: train them apart
  const fresh = untieAliases(job.model);
  if (resumed) checkSameSource(resumed, job, fresh, checkpoint);
  const model = resumed?.model ?? fresh;
  const targets = resolveTargets(model, job.data, job.classes);
  const normalization = trainingNormalization(model, job);
  const { train: trainIdx, validation: valIdx } = splitTrainValidation(job.data, job.validation ?? 0.1, job.seed, subsetIndices(job.data, targets.classes));
  if (trainIdx.length < job.batchSize)
    throw new OptionError(
      (o) =>
        `only ${trainIdx.length} training images of classes ${targets.classes.join(',')} in ${job.data.source}, fewer than one batch of ${job.batchSize}; lower ${o('batchSize')}`,
    );
  const trainable = selectTrainable(model.graph, { ...(job.freeze ? { freeze: job.freeze } : {}), ...(job.trainable ? { trainable: job.trainable } : {}) });
  const session = await TrainingSession.create(model, {
    trainable,
    loss: 'cross-entropy',
    batchSize: job.batchSize,
    batchNorm: 'train',
    seed: job.seed,
    ...(job.session ? { session: job.session } : {}),
  });
  const optimizer = createOptimizer(job.optimizer);
  const steps = job.epochs * batchCount(trainIdx.length, job.batchSize, true);
  const schedule = createSchedule(job.schedule, steps);
  const run: Run = {
    job,
    targets,
    normalization,
    trainIdx,
    valIdx,
    session,
    optimizer,
    lrAt: (s) => job.lr * schedule(s),
    history: [],
    best: { epoch: -1, accuracy: -1 },
  };
  if (resumed) restore(run, resumed);
  return run;
}

function trainingNormalization(model: Model, job: TrainJob): Normalization {
  const explicit = { ...(job.mean ? { mean: job.mean } : {}), ...(job.std ? { std: job.std } : {}) };
  return resolveNormalization(model, job.data.shape[0], explicit, { fallback: 'dataset', dataset: job.data.name }).normalization;
}

async function trainEpoch(run: Run, epoch: number): Promise<EpochMetrics> {
  const { job, session } = run;
  const start = Date.now();
  const nBatches = batchCount(run.trainIdx.length, job.batchSize, true);
  const bar = progress(`epoch ${epoch + 1}/${job.epochs}`, nBatches * job.batchSize);
  const target = new BigInt64Array(job.batchSize);
  let lossSum = 0,
    correct = 0,
    seen = 0,
    lr = 0;
  const iter = epochBatches(job.data, epoch, {
    batchSize: job.batchSize,
    seed: job.seed,
    normalization: run.normalization,
    indices: run.trainIdx,
    ...(job.augmentation ? { augmentation: job.augmentation } : {}),
  });
  for await (const batch of iter) {
    writeTargets(target, batch.labels, batch.size, run.targets.outputOf);
    const step = session.stepCount;
    lr = run.lrAt(step);
    const r = await session.step(batch.x, target);
    const norm = job.clipNorm ? clipGradNorm(r.grads, job.clipNorm) : 0;
    if (!Number.isFinite(r.loss) || !Number.isFinite(norm)) {
      throw new OptionError(
        (o) =>
          `training diverged: the loss is ${r.loss} at epoch ${epoch + 1}, step ${step + 1} (learning rate ${lr.toPrecision(3)}); lower ${o('lr')}${job.clipNorm ? '' : ` or clip gradients with ${o('clipNorm')}`}`,
      );
    }
    run.optimizer.step(session.params, r.grads, lr);
    lossSum += r.loss * batch.size;
    correct += countCorrect(r.logits, target, batch.size);
    seen += batch.size;
    bar.tick(batch.size, `loss ${(lossSum / seen).toFixed(4)} acc ${pct(correct / seen)}`);
  }
  bar.done();
  const seconds = (Date.now() - start) / 1000;
  return {
    epoch: epoch + 1,
    step: session.stepCount,
    lr,
    trainLoss: lossSum / seen,
    trainAccuracy: correct / seen,
    valAccuracy: null,
    seconds,
    imagesPerSecond: seen / seconds,
  };
}

/**
 * The training batches of one epoch: `indices` shuffled by (seed, epoch), the last partial
 * batch dropped (a training graph is built for one batch size).
 */
export function epochBatches(
  data: Dataset,
  epoch: number,
  o: Required<Pick<BatchOptions, 'batchSize' | 'seed' | 'indices'>> & Pick<BatchOptions, 'normalization' | 'augmentation'>,
): AsyncIterable<Batch> {
  return batches(data, { ...o, shuffle: true, seed: hashSeed(o.seed, `epoch:${epoch}`), dropLast: true });
}

function countCorrect(logits: Float32Array, target: BigInt64Array, n: number): number {
  const k = logits.length / n;
  let c = 0;
  for (let b = 0; b < n; b++) if (BigInt(argmaxRow(logits, b, k)) === target[b]) c++;
  return c;
}

async function validate(run: Run): Promise<number | null> {
  if (!run.valIdx.length) return null;
  const r = await evaluate(finalModel(run), run.job.data, { ...run.job.session, classes: run.targets.classes, indices: run.valIdx });
  return r.accuracy;
}

/** The forward model with current weights and the metadata a trained model carries. */
function finalModel(run: Run): Model {
  const { job } = run;
  const m = run.session.snapshot();
  setLabels(m, run.targets.labels);
  setInputSpec(m, { shape: [...job.data.shape], mean: run.normalization.mean, std: run.normalization.std });
  const parents = job.parentHash ? [job.parentHash] : [];
  setProvenance(m, {
    operation: job.parentHash ? 'fine-tuned' : 'trained',
    parents,
    seed: job.seed,
    data: job.data.source,
    classes: run.targets.classes,
    epochs: job.epochs,
    batchSize: job.batchSize,
    lr: job.lr,
    optimizer: job.optimizer,
    schedule: job.schedule,
    trainable: run.session.params.size,
    arch: getArch(m)?.name ?? null,
  });
  return m;
}

function copyWeights(s: TrainingSession): Map<string, Float32Array> {
  return new Map([...s.params, ...s.state].map(([k, v]) => [k, Float32Array.from(v)]));
}

function writeCheckpoint(run: Run, epoch: number): void {
  const { job } = run;
  saveCheckpoint(job.checkpoint ?? `${job.output}.ckpt`, {
    model: run.session.snapshot(),
    optimizer: { config: job.optimizer, steps: run.optimizer.steps, state: run.optimizer.state() },
    epoch: epoch + 1,
    step: run.session.stepCount,
    meta: { history: run.history, best: { epoch: run.best.epoch, accuracy: run.best.accuracy }, seed: job.seed, config: configOf(job), source: sourceOf(job) },
    ...(run.best.weights ? { kept: run.best.weights } : {}),
  });
}

/** The settings that must not change across a resume. */
function configOf(job: TrainJob): Record<string, unknown> {
  return {
    epochs: job.epochs,
    batchSize: job.batchSize,
    lr: job.lr,
    optimizer: job.optimizer,
    schedule: job.schedule,
    seed: job.seed,
    classes: job.classes ?? null,
    validation: job.validation ?? 0.1,
  };
}

/** The model training started from: the fine-tuned file's hash (null for a fresh zoo model). */
function sourceOf(job: TrainJob): { hash: string | null } {
  return { hash: job.parentHash ?? null };
}

/** A checkpoint continues only the model it was made from: same source file, same architecture and parameter shapes. */
function checkSameSource(ckpt: ReturnType<typeof loadCheckpoint>, job: TrainJob, model: Model, file: string): void {
  const refuse = (why: string): never => {
    throw new OptionError(
      (o) => `cannot resume from ${file}: ${why}; rerun with the model and settings it was made with, or without ${o('resume')} to start again`,
    );
  };
  const saved = ckpt.meta['source'] as { hash: string | null } | undefined;
  const now = sourceOf(job);
  if (saved && saved.hash !== now.hash) {
    const what = (h: string | null): string => (h ? `the model file with hash ${h.slice(0, 12)}` : 'a fresh zoo model');
    refuse(`it trains ${what(saved.hash)}, but training now starts from ${what(now.hash)}`);
  }
  const mismatch = modelMismatch(ckpt.model, model);
  if (mismatch) refuse(mismatch);
}

function restore(run: Run, ckpt: ReturnType<typeof loadCheckpoint>): void {
  const saved = ckpt.meta['config'] as Record<string, unknown> | undefined;
  const now = configOf(run.job);
  for (const k of ['batchSize', 'seed', 'optimizer', 'schedule', 'lr', 'epochs', 'classes', 'validation']) {
    if (saved && JSON.stringify(saved[k]) !== JSON.stringify(now[k])) {
      throw new OptionError(
        (o) =>
          `cannot resume: ${k} was ${JSON.stringify(saved[k])} in the checkpoint and is ${JSON.stringify(now[k])} now; rerun with the same settings or without ${o('resume')}`,
      );
    }
  }
  run.optimizer.loadState(ckpt.optimizer.state, ckpt.optimizer.steps);
  run.session.stepCount = ckpt.step;
  run.history = (ckpt.meta['history'] as EpochMetrics[] | undefined) ?? [];
  const best = ckpt.meta['best'] as { epoch: number; accuracy: number } | undefined;
  if (best) run.best = { ...best, ...(run.job.keep === 'best' && ckpt.kept ? { weights: ckpt.kept } : {}) };
  if (run.job.keep === 'best' && best && best.epoch >= 0 && !ckpt.kept) {
    throw new OptionError(
      (o) =>
        `cannot resume with ${o('keep', 'best')}: the checkpoint was written with ${o('keep', 'last')} and holds no best-epoch weights; resume with ${o('keep', 'last')} or start again`,
    );
  }
  info(`resumed from ${run.job.checkpoint ?? `${run.job.output}.ckpt`} after epoch ${ckpt.epoch}`);
}

function writeLog(run: Run): void {
  writeFileAtomic(run.job.log ?? `${run.job.output}.metrics.jsonl`, run.history.map((m) => JSON.stringify(m)).join('\n') + '\n');
}

/**
 * A training run as text: loss and accuracies per epoch, what was written, and the test
 * accuracy when the run measured it.
 *
 * @example console.log(trainText(await train(job)));
 */
export function trainText(r: TrainResult): string {
  const last = r.epochs[r.epochs.length - 1]!;
  const val = (x: number | null): string => (x === null ? '-' : pct(x));
  return [
    table([
      ['epoch', 'loss', 'train acc', 'val acc', 'images/s'],
      ...r.epochs.map((e) => [e.epoch, e.trainLoss.toFixed(4), pct(e.trainAccuracy), val(e.valAccuracy), e.imagesPerSecond.toFixed(0)]),
    ]),
    `wrote ${r.output} (${r.trainable} parameter tensors trained; classes ${r.classes.join(',')}; last epoch val acc ${val(last.valAccuracy)})`,
    ...(r.test ? [`test accuracy ${pct(r.test.accuracy)} on ${r.test.samples} images (${r.test.data})`] : []),
  ].join('\n');
}
