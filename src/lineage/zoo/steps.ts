/**
 * Training for a fixed number of optimiser steps (not epochs): zoo models are trained
 * briefly, on a task that may remap labels to outputs, which the epoch loop of
 * autodiff/train.ts does not express. Built on the same TrainingSession, optimisers and
 * schedules; nothing is held out because nothing is chosen on validation data.
 */
import type { Model } from '../../onnx/types.js';
import type { Dataset, Normalization } from '../../data/types.js';
import { subsetIndices } from '../../data/classes.js';
import { TrainingSession } from '../../autodiff/trainer.js';
import { epochBatches } from '../../autodiff/train.js';
import { writeTargets } from '../../autodiff/targets.js';
import { createOptimizer, decayMatrices } from '../../autodiff/optim.js';
import { createSchedule } from '../../autodiff/schedule.js';
import type { SessionOptions } from '../../runtime/session.js';
import { inferBatches } from '../../runtime/infer.js';
import { argmaxRow } from '../../runtime/argmax.js';
import { progress } from '../../util/progress.js';
import { OptionError, UserError } from '../../util/errors.js';
import type { ZooTask } from './plan.js';

export interface StepJob {
  model: Model;
  trainable: readonly string[];
  data: Dataset;
  task: ZooTask;
  steps: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  seed: number;
  normalization: Normalization;
  session?: SessionOptions;
  label: string;
}

export interface StepResult {
  /** trained values of the trainable parameters (and running statistics) */
  params: Map<string, Float32Array>;
  /** the forward model with trained values */
  model: Model;
  /** mean loss over the last 50 steps */
  loss: number;
  seconds: number;
}

/** SGD (momentum 0.9) with cosine decay over `steps`, weight decay on weight matrices only. */
export async function trainSteps(job: StepJob): Promise<StepResult> {
  const start = Date.now();
  const indices = subsetIndices(job.data, job.task.classes);
  if (indices.length < job.batchSize) {
    throw new OptionError(
      (o) =>
        `only ${indices.length} training images of classes ${job.task.classes.join(',')} in ${job.data.source}, fewer than one batch of ${job.batchSize}; lower ${o('batchSize')}`,
    );
  }
  const session = await TrainingSession.create(job.model, {
    trainable: job.trainable,
    loss: 'cross-entropy',
    batchSize: job.batchSize,
    batchNorm: 'train',
    seed: job.seed,
    ...(job.session ? { session: job.session } : {}),
  });
  try {
    const optimizer = createOptimizer({ kind: 'sgd', momentum: 0.9, weightDecay: job.weightDecay }, { decay: decayMatrices(job.model) });
    const schedule = createSchedule({ kind: 'cosine' }, job.steps);
    const target = new BigInt64Array(job.batchSize);
    const bar = progress(job.label, job.steps);
    const recent: number[] = [];
    let step = 0;
    for (let epoch = 0; step < job.steps; epoch++) {
      const iter = epochBatches(job.data, epoch, { batchSize: job.batchSize, seed: job.seed, normalization: job.normalization, indices });
      for await (const batch of iter) {
        writeTargets(target, batch.labels, batch.size, job.task.outputOf);
        const lr = job.lr * schedule(step);
        const r = await session.step(batch.x, target);
        if (!Number.isFinite(r.loss)) {
          throw new UserError(`${job.label}: training diverged (loss ${r.loss} at step ${step + 1}, learning rate ${lr.toPrecision(3)})`);
        }
        optimizer.step(session.params, r.grads, lr);
        recent.push(r.loss);
        if (recent.length > 50) recent.shift();
        bar.tick(1, `loss ${r.loss.toFixed(4)}`);
        if (++step >= job.steps) break;
      }
    }
    const loss = recent.reduce((a, b) => a + b, 0) / recent.length;
    bar.done(`loss ${loss.toFixed(4)}`);
    const params = new Map([...session.params, ...session.state].map(([k, v]) => [k, Float32Array.from(v)]));
    return { params, model: session.snapshot(), loss, seconds: (Date.now() - start) / 1000 };
  } finally {
    await session.release();
  }
}

/** Accuracy on the test images of the task's classes, under the task's class->output mapping. */
export async function taskAccuracy(model: Model, test: Dataset, task: ZooTask, normalization: Normalization, session: SessionOptions = {}): Promise<number> {
  const indices = subsetIndices(test, task.classes);
  const output = model.graph.outputs[0]!.name;
  let correct = 0;
  for await (const { batch, outputs } of inferBatches(model, test, { ...session, normalization, indices })) {
    const logits = outputs[output]!.data as Float32Array;
    const k = logits.length / batch.size;
    for (let i = 0; i < batch.size; i++) if (argmaxRow(logits, i, k) === task.outputOf[batch.labels[i]!]) correct++;
  }
  return indices.length ? correct / indices.length : 0;
}
