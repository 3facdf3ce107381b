/**
 * CIFAR-10 / CIFAR-100 in their binary release format. Records are fixed-size (label
 * byte(s), then 3072 pixel bytes: 1024 red, 1024 green, 1024 blue, rows top to bottom),
 * so images are read by position when a batch asks for them and the files are never
 * held in memory; only the labels are read when the dataset is opened.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import type { Dataset, ImageShape } from './types.js';
import { BYTE_TO_UNIT, checkReadArgs } from './memory.js';
import { checkLabels } from './labels.js';
import { CIFAR10_CLASSES } from './known.js';
import type { Split } from './idx-folder.js';

export type CifarKind = 'cifar10' | 'cifar100';

const PIXELS = 3 * 32 * 32;
const SHAPE: ImageShape = [3, 32, 32];

interface Layout {
  /** the release's folder name, looked for inside the given path */
  folder: string;
  files: Record<Split, string[]>;
  labelBytes: number;
}

const LAYOUT: Record<CifarKind, Layout> = {
  cifar10: {
    folder: 'cifar-10-batches-bin',
    files: { train: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`), test: ['test_batch.bin'] },
    labelBytes: 1,
  },
  cifar100: { folder: 'cifar-100-binary', files: { train: ['train.bin'], test: ['test.bin'] }, labelBytes: 2 },
};

export interface CifarOptions {
  /** CIFAR-100 only: the 100 fine labels (default) or the 20 coarse superclasses */
  labels?: 'fine' | 'coarse';
}

interface Part {
  file: string;
  /** dataset index of the part's first record */
  start: number;
  count: number;
}

/** The folder holding the binary files: `root` itself or the release's folder inside it. */
export function findCifarFolder(kind: CifarKind, root: string): string | undefined {
  const { folder, files } = LAYOUT[kind];
  for (const dir of [root, join(root, folder)]) {
    if (files.test.concat(files.train).some((f) => existsSync(join(dir, f)))) return dir;
  }
  return undefined;
}

export async function openCifar(kind: CifarKind, root: string, split: Split, opts: CifarOptions = {}): Promise<Dataset> {
  if (!existsSync(root)) throw new UserError(`${kind} folder ${root} does not exist`);
  const layout = LAYOUT[kind];
  const dir = findCifarFolder(kind, root);
  const names = layout.files[split];
  if (!dir) throw new UserError(`${root}: no ${kind} binary files here or in ${layout.folder}/: expected ${names.join(', ')}`);
  const missing = names.filter((f) => !existsSync(join(dir, f)));
  if (missing.length) throw new UserError(`${dir}: ${kind} ${split} split is incomplete: missing ${missing.join(', ')}`);

  const recordSize = layout.labelBytes + PIXELS;
  const fine = kind === 'cifar10' || opts.labels !== 'coarse';
  const labelOffset = kind === 'cifar100' && fine ? 1 : 0;
  const classes = kind === 'cifar10' ? 10 : fine ? 100 : 20;

  const parts: Part[] = [];
  const labelChunks: Uint8Array[] = [];
  let total = 0;
  for (const name of names) {
    const file = join(dir, name);
    const labels = readLabels(file, recordSize, labelOffset);
    checkLabels(labels, classes, file);
    parts.push({ file, start: total, count: labels.length });
    labelChunks.push(labels);
    total += labels.length;
  }
  const labels = new Uint8Array(total);
  labelChunks.reduce((at, c) => (labels.set(c, at), at + c.length), 0);

  const classNames = kind === 'cifar10' ? readNames(join(dir, 'batches.meta.txt'), 10) ?? CIFAR10_CLASSES
    : readNames(join(dir, fine ? 'fine_label_names.txt' : 'coarse_label_names.txt'), classes);
  const labelKind = kind === 'cifar100' ? ` (${fine ? 'fine' : 'coarse'} labels)` : '';
  const source = `${kind} ${split} split: ${total} images from ${dir} (${names.join(', ')})${labelKind}`;
  return new CifarDataset(kind, split, source, classes, classNames, parts, labels, recordSize, layout.labelBytes);
}

/** Reads every record's label byte in large sequential chunks (one syscall per ~3 MB). */
function readLabels(file: string, recordSize: number, labelOffset: number): Uint8Array {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size === 0 || size % recordSize !== 0) {
      throw new UserError(`${file}: ${size} bytes is not a whole number of ${recordSize}-byte CIFAR records`);
    }
    const count = size / recordSize;
    const labels = new Uint8Array(count);
    const perChunk = 1024;
    const buf = Buffer.alloc(perChunk * recordSize);
    for (let first = 0; first < count; first += perChunk) {
      const n = Math.min(perChunk, count - first);
      readFully(fd, buf, n * recordSize, first * recordSize, file);
      for (let r = 0; r < n; r++) labels[first + r] = buf[r * recordSize + labelOffset]!;
    }
    return labels;
  } finally {
    closeSync(fd);
  }
}

function readFully(fd: number, buf: Buffer, length: number, position: number, file: string): void {
  let done = 0;
  while (done < length) {
    const got = readSync(fd, buf, done, length - done, position + done);
    if (got === 0) throw new UserError(`${file}: file ended early at byte ${position + done}`);
    done += got;
  }
}

/** Class names from the release's text file, when present and of the right length. */
function readNames(file: string, classes: number): readonly string[] | undefined {
  if (!existsSync(file)) return undefined;
  const names = readFileSync(file, 'utf8').split(/\r?\n/).map((s) => s.trim()).filter((s) => s.length > 0);
  return names.length === classes ? names : undefined;
}

class CifarDataset implements Dataset {
  readonly name: string;
  readonly shape = SHAPE;
  readonly size: number;
  readonly classNames?: readonly string[];

  constructor(
    kind: CifarKind,
    readonly split: string,
    readonly source: string,
    readonly classes: number,
    classNames: readonly string[] | undefined,
    private readonly parts: readonly Part[],
    private readonly labels: Uint8Array,
    private readonly recordSize: number,
    private readonly labelBytes: number,
  ) {
    this.name = kind;
    this.size = labels.length;
    if (classNames) this.classNames = classNames;
  }

  label(i: number): number {
    const l = this.labels[i];
    if (l === undefined) throw new RangeError(`${this.name} ${this.split}: index ${i} is outside [0, ${this.size})`);
    return l;
  }

  /** One positioned read per image, all in flight at once; files are opened per call. */
  async read(indices: readonly number[], out: Float32Array): Promise<void> {
    checkReadArgs(this, indices, out);
    const bytes = Buffer.alloc(indices.length * PIXELS);
    const handles = new Map<string, Promise<FileHandle>>();
    const handle = (file: string): Promise<FileHandle> => {
      let h = handles.get(file);
      if (!h) handles.set(file, (h = open(file, 'r')));
      return h;
    };
    try {
      await Promise.all(indices.map(async (index, k) => {
        const part = this.partOf(index);
        const fh = await handle(part.file);
        const position = (index - part.start) * this.recordSize + this.labelBytes;
        const { bytesRead } = await fh.read(bytes, k * PIXELS, PIXELS, position);
        if (bytesRead !== PIXELS) throw new UserError(`${part.file}: file shrank while reading record ${index - part.start}`);
      }));
    } finally {
      await Promise.all([...handles.values()].map((h) => h.then((fh) => fh.close(), () => undefined)));
    }
    for (let j = 0; j < bytes.length; j++) out[j] = BYTE_TO_UNIT[bytes[j]!]!;
  }

  private partOf(index: number): Part {
    for (const p of this.parts) if (index < p.start + p.count) return p;
    throw new RangeError(`${this.name}: index ${index} past the end`);
  }
}
