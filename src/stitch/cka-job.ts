/**
 * `modelsmith cka` as a library call: two model files and a dataset spec in, the CKA grid
 * out (the queue runs the same job with ckaOnQueue).
 */
import { openModel } from '../onnx/open.js';
import { openDataset } from '../data/resolve.js';
import { parseClasses } from '../data/classes.js';
import type { SessionOptions } from '../runtime/session.js';
import { OptionError } from '../util/errors.js';
import { computeCkaGrid, type CkaGridOptions, type CkaGridResult } from './cka-grid.js';

/** computeCkaGrid's options that change the result (threads and the like are the caller's). */
export type CkaJobOptions = Pick<
  CkaGridOptions,
  'samples' | 'seed' | 'debiased' | 'controls' | 'randomBatchNorm' | 'memoryMiB' | 'batchSize' | 'mean' | 'std' | 'pool'
> & { senders?: string[]; receivers?: string[] };

export interface CkaJob {
  a: string;
  b: string;
  /** dataset spec (views included) */
  data: string;
  split: 'train' | 'test';
  /** a class list such as "0-2,5", checked against the dataset */
  classes?: string;
  options: CkaJobOptions;
}

/** Refuses a split other than train or test, before any work. */
export function checkCkaSplit(split: string): asserts split is CkaJob['split'] {
  if (split !== 'train' && split !== 'test') throw new OptionError((o) => `${o('split')} expects train or test, got "${split}"`);
}

/**
 * Linear CKA between every sender cut of model `a` and every receiver cut of `b` on the
 * job's images (with the random controls, their BatchNorm statistics re-estimated on the
 * train split).
 *
 * @example
 *   const r = await runCkaJob({ a: 'a.onnx', b: 'b.onnx', data: 'fashion-mnist', split: 'test', options: { samples: 1000 } });
 *   await writeCkaGrid(r, 'runs/cka');
 */
export async function runCkaJob(job: CkaJob, session: SessionOptions = {}): Promise<CkaGridResult> {
  checkCkaSplit(job.split);
  const a = { model: openModel(job.a), file: job.a };
  const b = { model: openModel(job.b), file: job.b };
  const ds = await openDataset(job.data, job.split);
  const classes = job.classes !== undefined ? parseClasses(job.classes, ds.classes) : undefined;
  return computeCkaGrid(a, b, ds, {
    ...session,
    ...job.options,
    ...(classes ? { classes } : {}),
    ...(job.options.controls ? { train: job.split === 'train' ? ds : await openDataset(job.data, 'train') } : {}),
  });
}
