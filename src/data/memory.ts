/**
 * A dataset held in memory in its compact encoded form (one byte per pixel, CHW per
 * image), used for IDX files, which are gzipped and so cannot be read at random offsets.
 * Float images are made only when a batch asks for them.
 */
import type { Dataset, ImageShape } from './types.js';
import { checkLabels } from './labels.js';

/** What a loader tells a ByteImageDataset about its images (the rest comes from the bytes). */
export type DatasetInfo = Pick<Dataset, 'name' | 'split' | 'source' | 'shape' | 'classes' | 'classNames'>;

/** byte -> [0, 1]; a table so that every loader converts identically */
export const BYTE_TO_UNIT: Float32Array = Float32Array.from({ length: 256 }, (_, i) => i / 255);

export class ByteImageDataset implements Dataset {
  readonly name: string;
  readonly split: string;
  readonly source: string;
  readonly shape: ImageShape;
  readonly classes: number;
  readonly classNames?: readonly string[];
  readonly size: number;
  private readonly imageSize: number;

  /**
   * @param pixels size * C*H*W bytes, CHW per image
   * @param labels one per image; checked against info.classes, naming `labelsFile` on error
   */
  constructor(info: DatasetInfo, private readonly pixels: Uint8Array, private readonly labels: Uint8Array, labelsFile: string) {
    this.name = info.name;
    this.split = info.split;
    this.source = info.source;
    this.shape = info.shape;
    this.classes = info.classes;
    if (info.classNames) this.classNames = info.classNames;
    this.imageSize = info.shape[0] * info.shape[1] * info.shape[2];
    this.size = labels.length;
    if (pixels.length !== this.size * this.imageSize) {
      throw new RangeError(`ByteImageDataset: ${pixels.length} pixel bytes for ${this.size} images of ${this.imageSize}`);
    }
    checkLabels(labels, this.classes, labelsFile);
  }

  label(i: number): number {
    const l = this.labels[i];
    if (l === undefined) throw new RangeError(`${this.name} ${this.split}: index ${i} is outside [0, ${this.size})`);
    return l;
  }

  async read(indices: readonly number[], out: Float32Array): Promise<void> {
    const n = this.imageSize;
    checkReadArgs(this, indices, out);
    for (let k = 0; k < indices.length; k++) {
      const src = indices[k]! * n;
      const dst = k * n;
      for (let j = 0; j < n; j++) out[dst + j] = BYTE_TO_UNIT[this.pixels[src + j]!]!;
    }
  }
}

/** Guards Dataset.read against programming errors (bad indices, short output). */
export function checkReadArgs(ds: Dataset, indices: readonly number[], out: Float32Array): void {
  const n = ds.shape[0] * ds.shape[1] * ds.shape[2];
  if (out.length < indices.length * n) {
    throw new RangeError(`${ds.name} read: output holds ${out.length} floats, need ${indices.length * n}`);
  }
  for (const i of indices) {
    if (!Number.isInteger(i) || i < 0 || i >= ds.size) {
      throw new RangeError(`${ds.name} ${ds.split}: index ${i} is outside [0, ${ds.size})`);
    }
  }
}
