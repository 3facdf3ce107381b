/**
 * Image folders: `<root>/<split>/<class>/*.png|jpg|jpeg`, or `<root>/<class>/...` when the
 * root has no split folders. Class ids follow the sorted folder names. Images are
 * decoded by sharp when a batch asks for them, converted to the dataset's channels and
 * resized to its height and width where they differ.
 */
import { readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import sharp, { type OutputInfo } from 'sharp';
import { UserError } from '../util/errors.js';
import type { Dataset, ImageShape } from './types.js';
import { BYTE_TO_UNIT, checkReadArgs } from './memory.js';
import type { Split } from './idx-folder.js';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);
const SPLIT_FOLDERS: Record<Split, string[]> = {
  train: ['train', 'training'],
  test: ['test', 'testing', 'val', 'validation'],
};

export interface FolderOptions {
  /** [C, H, W] to convert every image to; default: the first image's size, 1 channel if all images are grayscale else 3 */
  shape?: ImageShape;
  /** dataset name; default "folder:<root>" */
  name?: string;
}

interface Entry {
  file: string;
  label: number;
}

/** Codepoint order, so class ids do not depend on the machine's locale. */
const byCodepoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function subfolders(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => !d.name.startsWith('.') && (d.isDirectory() || (d.isSymbolicLink() && isDirectory(join(dir, d.name)))))
    .map((d) => d.name)
    .sort(byCodepoint);
}

/** false for a dangling link rather than an exception */
function isDirectory(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

function images(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => !f.startsWith('.') && IMAGE_EXTENSIONS.has(extname(f).toLowerCase()))
    .sort(byCodepoint)
    .map((f) => join(dir, f));
}

/** The folder holding the split's class folders, and a note for the source line. */
function splitFolder(root: string, split: Split): { dir: string; note: string } {
  const present = subfolders(root);
  const own = SPLIT_FOLDERS[split].find((s) => present.includes(s));
  if (own) return { dir: join(root, own), note: '' };
  const other = Object.values(SPLIT_FOLDERS).flat().find((s) => present.includes(s));
  if (other) {
    throw new UserError(`${root}: has a "${other}" folder but no ${split} folder (expected one of ${SPLIT_FOLDERS[split].join(', ')})`);
  }
  return { dir: root, note: ' (no split folders: every split reads the same images)' };
}

export async function openImageFolder(root: string, split: Split, opts: FolderOptions = {}): Promise<Dataset> {
  if (!isDirectory(root)) throw new UserError(`image folder ${root} does not exist`);
  const { dir, note } = splitFolder(root, split);
  const classNames = subfolders(dir);
  if (classNames.length === 0) throw new UserError(`${dir}: no class folders (expected <class>/*.png|jpg|jpeg)`);
  const entries: Entry[] = classNames.flatMap((c, label) => images(join(dir, c)).map((file) => ({ file, label })));
  if (entries.length === 0) throw new UserError(`${dir}: no .png/.jpg/.jpeg images in its ${classNames.length} class folders`);
  const shape = opts.shape ? checkShape(opts.shape) : await inferShape(entries.map((e) => e.file));
  const name = opts.name ?? `folder:${root}`;
  const source = `${name} ${split} split: ${entries.length} images in ${classNames.length} classes from ${dir}${note}, read as ${shape.join('x')}`;
  return new FolderDataset(name, split, source, shape, classNames, entries);
}

function checkShape(shape: ImageShape): ImageShape {
  const [c, h, w] = shape;
  if (!(c === 1 || c === 3) || !(Number.isInteger(h) && h > 0) || !(Number.isInteger(w) && w > 0)) {
    throw new UserError(`image shape ${shape.join('x')} is not valid: expected [C,H,W] with C 1 or 3 and positive H, W`);
  }
  return shape;
}

async function inferShape(files: string[]): Promise<ImageShape> {
  const first = await metadata(files[0]!);
  // reading headers only; a handful at a time keeps open files bounded
  let gray = true;
  for (let i = 0; i < files.length && gray; i += 64) {
    const metas = await Promise.all(files.slice(i, i + 64).map(metadata));
    gray = metas.every((m) => m.gray);
  }
  return [gray ? 1 : 3, first.height, first.width];
}

async function metadata(file: string): Promise<{ width: number; height: number; gray: boolean }> {
  try {
    const m = await sharp(file).metadata();
    if (!m.width || !m.height) throw new Error('no image size in header');
    return { width: m.width, height: m.height, gray: m.space === 'b-w' || (m.channels ?? 3) <= 2 };
  } catch (e) {
    throw new UserError(`${file}: cannot read image (${(e as Error).message})`);
  }
}

/** Decodes one image to CHW bytes of the given shape. */
export async function decodeImage(file: string, shape: ImageShape): Promise<Uint8Array> {
  const [c, h, w] = shape;
  let data: Buffer;
  let info: OutputInfo;
  try {
    const img = sharp(file);
    const m = await img.metadata();
    let p = img.flatten({ background: { r: 0, g: 0, b: 0 } });
    if (m.width !== w || m.height !== h) p = p.resize(w, h, { fit: 'fill' });
    p = c === 1 ? p.grayscale() : p.toColourspace('srgb');
    ({ data, info } = await p.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true }));
  } catch (e) {
    throw new UserError(`${file}: cannot decode image (${(e as Error).message})`);
  }
  if (info.channels !== c) throw new UserError(`${file}: decoded to ${info.channels} channels, expected ${c}`);
  const plane = h * w;
  const out = new Uint8Array(c * plane);
  for (let ch = 0; ch < c; ch++) {
    for (let p = 0; p < plane; p++) out[ch * plane + p] = data[p * c + ch]!;
  }
  return out;
}

class FolderDataset implements Dataset {
  readonly classes: number;
  readonly size: number;

  constructor(
    readonly name: string,
    readonly split: string,
    readonly source: string,
    readonly shape: ImageShape,
    readonly classNames: readonly string[],
    private readonly entries: readonly Entry[],
  ) {
    this.classes = classNames.length;
    this.size = entries.length;
  }

  label(i: number): number {
    const e = this.entries[i];
    if (!e) throw new RangeError(`${this.name} ${this.split}: index ${i} is outside [0, ${this.size})`);
    return e.label;
  }

  async read(indices: readonly number[], out: Float32Array): Promise<void> {
    checkReadArgs(this, indices, out);
    const n = this.shape[0] * this.shape[1] * this.shape[2];
    await Promise.all(indices.map(async (index, k) => {
      const bytes = await decodeImage(this.entries[index]!.file, this.shape);
      for (let j = 0; j < n; j++) out[k * n + j] = BYTE_TO_UNIT[bytes[j]!]!;
    }));
  }
}
