/**
 * What a queued job is: a kind (the BullMQ job name), a payload that names everything
 * the job needs by value (models as blob references, datasets by spec, options), and a
 * result. One table (kinds.ts) maps each kind to how a worker checks and runs it; the
 * commands' coordinators (stitch.ts, cka.ts, lego.ts, zoo.ts) build the payloads.
 *
 * Data: a job names its dataset by spec and says what the coordinator's first worker
 * found under that spec (classes, image shape, split sizes); a worker that resolves the
 * spec to something else (say, the shipped sample instead of the full set) refuses the
 * job instead of mixing results computed on different images.
 */
import { realpathSync, existsSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import type { Dataset } from '../data/types.js';
import { parseDataSpec } from '../data/view.js';
import type { SessionOptions } from '../runtime/session.js';
import { OptionError, UserError } from '../util/errors.js';
import type { BlobRef } from './blobs.js';
import { fields, int, list, str } from './schema.js';

/** The envelope BullMQ stores as job data. */
export interface JobData<P = unknown> {
  v: 1;
  /** the coordinator run that enqueued it (queue status, cancel) */
  run: string;
  /** human-readable: which cell, row or model */
  label: string;
  payload: P;
}

/** What a worker returns for a job (BullMQ's return value). */
export interface JobReturn<R = unknown> {
  worker: string;
  seconds: number;
  result: R;
}

/** A dataset as a job names it. */
export interface DataRef {
  spec: string;
  expect: DataIdentity;
}

/** What a spec resolved to, as far as results depend on it. */
export interface DataIdentity {
  classes: number;
  shape: number[];
  train: number;
  test: number;
}

/** How a worker serves one job: its folders, its blob cache, its data rules. */
export interface WorkerEnv {
  /** host:pid */
  name: string;
  /** the worker's work folder: caches in subfolders, never anything outside it */
  work: string;
  /** this job's own empty folder inside `work` (removed after the job) */
  dir: string;
  session: SessionOptions;
  maxBlobBytes: number;
  /** a verified local copy of a blob from the job (checked against the size limit first) */
  blob(ref: unknown, what: string): Promise<string>;
  /** stores a file this job wrote (inside `dir`) as a blob for the coordinator */
  put(path: string): Promise<BlobRef>;
  /** a split of a dataset, resolved on this machine under the worker's rules (named, or under --data-dir) */
  openData(spec: string, split: 'train' | 'test'): Promise<Dataset>;
  /** openData, checked against what the job says the dataset is */
  dataset(ref: DataRef, split: 'train' | 'test'): Promise<Dataset>;
  /**
   * Runs fn with a resource kept between jobs (a grid's models and activations): one
   * job at a time per resource; concurrent jobs of the same key get their own.
   */
  pooled<T extends object, R>(key: string, create: () => Promise<T>, release: (t: T) => Promise<void>, fn: (t: T) => Promise<R>): Promise<R>;
}

export interface JobKind<P = unknown, R = unknown> {
  /** checks a payload's shape (fields, types, sizes) before anything is fetched or written */
  parse(raw: unknown): P;
  run(p: P, env: WorkerEnv): Promise<R>;
}

export function parseDataRef(v: unknown, what: string): DataRef {
  const o = fields(v, what, ['spec', 'expect']);
  const e = fields(o['expect'], `${what}.expect`, ['classes', 'shape', 'train', 'test']);
  return {
    spec: str(o['spec'], `${what}.spec`, 1024),
    expect: {
      classes: int(e['classes'], `${what}.expect.classes`, 1, 1_000_000),
      shape: list(e['shape'], `${what}.expect.shape`, (x, w) => int(x, w, 1, 1_000_000), 4),
      train: int(e['train'], `${what}.expect.train`, 0),
      test: int(e['test'], `${what}.expect.test`, 0),
    },
  };
}

/** Named datasets a worker resolves by itself ($MODELSMITH_DATA, /usr/share/datasets, the shipped samples). */
const NAMED = /^(fashion-mnist|mnist|fashion-mnist-sample|mnist-sample|cifar10|cifar100)$/;

/**
 * The files and folders a spec reads: the dataset's folder for specs that name one
 * (folder:, idx:, cifar10:<dir>, a bare path; none for named datasets) and a view's
 * label file (`::labels=file:<path>`).
 */
export function specPaths(spec: string): string[] {
  const { base, view } = parseDataSpec(spec.trim());
  const b = base.trim();
  const out: string[] = [];
  if (!NAMED.test(b)) {
    const m = /^(folder|idx|cifar10|cifar100):(.*)$/.exec(b);
    out.push(resolve(m ? m[2]! : b));
  }
  if (view.labels?.startsWith('file:')) out.push(resolve(view.labels.slice('file:'.length)));
  return out;
}

/**
 * A worker reads data only by named spec, or from folders its operator allowed
 * (--data-dir): a job cannot make it read an arbitrary path of its machine.
 */
export function checkDataSpec(spec: string, dataDirs: readonly string[], worker: string): void {
  for (const path of specPaths(spec)) {
    const real = existsSync(path) ? realpathSync(path) : path;
    const inside = dataDirs.some((d) => {
      const root = existsSync(d) ? realpathSync(d) : resolve(d);
      return real === root || real.startsWith(root.endsWith(sep) ? root : root + sep);
    });
    if (!inside) {
      throw new OptionError(
        (o) =>
          `worker ${worker} does not read dataset "${spec}": it names ${path}, outside the folders this worker allows` +
          ` (${dataDirs.length ? dataDirs.join(', ') : 'none'}; allow its folder with ${o('dataDirs')}, or use a named dataset such as fashion-mnist)`,
      );
    }
  }
}

export function identityOf(train: Dataset, test: Dataset): DataIdentity {
  return { classes: test.classes, shape: [...test.shape], train: train.size, test: test.size };
}

export function checkIdentity(ds: Dataset, split: 'train' | 'test', ref: DataRef, worker: string): void {
  const e = ref.expect;
  const got = `${ds.classes} classes of ${ds.shape.join('x')} images, ${ds.size} ${split} images`;
  const want = `${e.classes} classes of ${e.shape.join('x')} images, ${e[split]} ${split} images`;
  if (got !== want) {
    throw new UserError(
      `worker ${worker} resolves dataset "${ref.spec}" to ${got} (${ds.source}), but this run uses ${want}; ` +
        'install the same dataset on every worker (or set $MODELSMITH_DATA there)',
    );
  }
}
