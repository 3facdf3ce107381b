/** A folder holding an IDX image/label pair per split, named as in the MNIST releases. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { readIdx } from './idx.js';
import { ByteImageDataset } from './memory.js';

export type Split = 'train' | 'test';

/** File stems per split: the original release's, and the common ".idx3" variant. */
const STEMS: Record<Split, string[]> = {
  train: ['train'],
  test: ['t10k', 'test'],
};

export interface IdxFiles {
  images: string;
  labels: string;
}

function firstExisting(dir: string, names: string[]): string | undefined {
  for (const n of names) {
    for (const f of [n, `${n}.gz`]) if (existsSync(join(dir, f))) return join(dir, f);
  }
  return undefined;
}

/** The split's image and label files in `dir`, or undefined when either is missing. */
export function findIdxFiles(dir: string, split: Split): IdxFiles | undefined {
  const stems = STEMS[split];
  const images = firstExisting(dir, stems.flatMap((s) => [`${s}-images-idx3-ubyte`, `${s}-images.idx3-ubyte`]));
  const labels = firstExisting(dir, stems.flatMap((s) => [`${s}-labels-idx1-ubyte`, `${s}-labels.idx1-ubyte`]));
  return images && labels ? { images, labels } : undefined;
}

/** What findIdxFiles looks for, for error messages. */
export function expectedIdxFiles(split: Split): string {
  const s = STEMS[split][0]!;
  return `${s}-images-idx3-ubyte[.gz] and ${s}-labels-idx1-ubyte[.gz]`;
}

export interface IdxDatasetOptions {
  name: string;
  /** class count; default: largest label + 1 */
  classes?: number;
  classNames?: readonly string[];
  /** where the files came from, completing "<name> <split> split: <n> images ..." */
  origin: string;
}

export async function openIdxFolder(dir: string, split: Split, opts: IdxDatasetOptions): Promise<ByteImageDataset> {
  const files = findIdxFiles(dir, split);
  if (!files) throw new UserError(`${dir}: no ${split} split here: expected ${expectedIdxFiles(split)}`);
  const [images, labels] = await Promise.all([readIdx(files.images), readIdx(files.labels)]);
  if (images.dims.length !== 3) {
    throw new UserError(`${files.images}: IDX images have shape ${images.dims.join('x')}; expected 3 dimensions (count x height x width)`);
  }
  if (labels.dims.length !== 1) {
    throw new UserError(`${files.labels}: IDX labels have shape ${labels.dims.join('x')}; expected 1 dimension (count)`);
  }
  const [n, h, w] = images.dims as [number, number, number];
  if (labels.dims[0] !== n) {
    throw new UserError(`${files.labels}: ${labels.dims[0]} labels but ${files.images} holds ${n} images`);
  }
  const classes = opts.classes ?? maxLabel(labels.data) + 1;
  const source = `${opts.name} ${split} split: ${n} images ${opts.origin}`;
  return new ByteImageDataset(
    { name: opts.name, split, source, shape: [1, h, w], classes, ...(opts.classNames ? { classNames: opts.classNames } : {}) },
    images.data,
    labels.data,
    files.labels,
  );
}

function maxLabel(labels: Uint8Array): number {
  let m = 0;
  for (const l of labels) if (l > m) m = l;
  return m;
}
