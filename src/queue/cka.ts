/**
 * CKA grids on the queue: one job per model pair (`cka`). A pair's cells share its Gram
 * matrices (one per network and cut, the whole cost of the grid), so splitting a pair
 * into cells would compute them again on every worker; a study over many pairs runs one
 * coordinator per pair and the workers take the pairs in parallel. The worker runs the
 * same computeCkaGrid as a local run; the coordinator writes the same matrix.json and
 * heatmaps with writeCkaGrid.
 *
 * @example
 *   const r = await ckaOnQueue('redis://localhost:6379', { a: 'a.onnx', b: 'b.onnx', data: 'fashion-mnist', split: 'test', options: { samples: 1000 } });
 *   await writeCkaGrid(r, 'runs/cka');
 */
import { CKA_POOLS } from '../stitch/views.js';
import { createHash } from 'node:crypto';
import { totalmem } from 'node:os';
import { openModel } from '../onnx/open.js';
import { parseClasses } from '../data/classes.js';
import { computeCkaGrid, type CkaGridResult } from '../stitch/cka-grid.js';
import { checkCkaSplit, type CkaJob, type CkaJobOptions } from '../stitch/cka-job.js';
import { RANDOM_BATCHNORM } from '../stitch/controls.js';
import { OptionError, UserError } from '../util/errors.js';
import type { BlobRef } from './blobs.js';
import { Coordinator, type CoordinatorOptions } from './coordinator.js';
import { parseDataRef, type DataRef, type JobKind } from './jobs.js';
import { bool, canonicalJson, type Check, type Checks, fields, int, list, num, oneOf, opt, optionalFields, str } from './schema.js';

export type { CkaJobOptions };

export interface CkaPayload {
  a: BlobRef;
  b: BlobRef;
  data: DataRef;
  split: 'train' | 'test';
  classes?: number[];
  options: CkaJobOptions;
}

const names: Check<string[]> = (x, w) => list(x, w, (y, ww) => str(y, ww, 1000), 10_000);
const numbers: Check<number[]> = (x, w) => list(x, w, num, 64);

/** The CKA grid options a job carries, each with its check. */
const CKA_JOB_OPTIONS: Checks<CkaJobOptions> = {
  samples: (x, w) => int(x, w, 1, 10_000_000),
  seed: int,
  debiased: bool,
  controls: bool,
  randomBatchNorm: (x, w) => oneOf(x, w, RANDOM_BATCHNORM),
  senders: names,
  receivers: names,
  // the CLI takes any --memory; a job may not ask for more than the machine has
  memoryMiB: (x, w) => int(x, w, 1, Math.floor(totalmem() / 2 ** 20)),
  batchSize: (x, w) => int(x, w, 1, 65_536),
  mean: numbers,
  std: numbers,
  pool: (x, w) => oneOf(x, w, CKA_POOLS),
};

export const CKA: JobKind<CkaPayload, CkaGridResult> = {
  parse(raw) {
    const w = 'cka payload';
    const o = fields(raw, w, ['a', 'b', 'data', 'split', 'options'], ['classes']);
    const options = optionalFields<CkaJobOptions>(o['options'], `${w}.options`, CKA_JOB_OPTIONS);
    const classes = opt(o, 'classes', w, (x, ww) => list(x, ww, (y, www) => int(y, www, 0, 1_000_000), 100_000));
    return {
      a: o['a'] as BlobRef,
      b: o['b'] as BlobRef,
      data: parseDataRef(o['data'], `${w}.data`),
      split: oneOf(o['split'], `${w}.split`, ['train', 'test'] as const),
      options,
      ...(classes ? { classes } : {}),
    };
  },
  async run(p, env) {
    const ds = await env.dataset(p.data, p.split);
    if (p.classes?.some((c) => c >= ds.classes))
      throw new OptionError(
        (o) => `${o('classes')}: class ${p.classes!.find((c) => c >= ds.classes)} does not exist in ${p.data.spec} (${ds.classes} classes)`,
      );
    const a = await env.blob(p.a, 'model A'),
      b = await env.blob(p.b, 'model B');
    const train = p.options.controls ? (p.split === 'train' ? ds : await env.dataset(p.data, 'train')) : undefined;
    return computeCkaGrid({ model: openModel(a), file: a }, { model: openModel(b), file: b }, ds, {
      ...env.session,
      ...p.options,
      ...(p.classes ? { classes: p.classes } : {}),
      ...(train ? { train } : {}),
    });
  },
};

/** The job of runCkaJob; its classes are checked against the dataset the workers resolve. */
export type CkaQueueJob = CkaJob;

/** `modelsmith cka --queue`: the pair as one job; the result as computeCkaGrid returns it, with the coordinator's file names. */
export async function ckaOnQueue(url: string, job: CkaQueueJob, o: CoordinatorOptions = {}): Promise<CkaGridResult> {
  checkCkaSplit(job.split);
  const run = `cka-${createHash('sha256').update(canonicalJson(job)).digest('hex').slice(0, 12)}`;
  const c = await Coordinator.open(url, run, `cka ${job.a} ${job.b}`, o);
  try {
    const a = await c.putFile(job.a),
      b = await c.putFile(job.b);
    const data = await c.data(job.data);
    const classes = job.classes !== undefined ? parseClasses(job.classes, data.expect.classes) : undefined;
    const payload: CkaPayload = { a, b, data, split: job.split, options: job.options, ...(classes ? { classes } : {}) };
    c.track(1, 'pairs');
    const { result } = await c.submit<CkaGridResult>('cka', payload, `cka ${job.a} x ${job.b}`);
    if (!result || result.measure !== 'linear-cka' || !Array.isArray(result.values)) throw new UserError('a worker returned an unreadable CKA result');
    return result;
  } finally {
    await c.close();
  }
}
