/**
 * Dataset views: the same images adapted to what a model expects — resized, converted
 * between grayscale and RGB — and, for models that carry no label metadata, which
 * dataset class each model output stands for.
 *
 * A view travels as part of the dataset spec string (`fashion-mnist::resize=64x64;channels=3`),
 * so every place that opens a dataset by spec (library calls, worker processes, resumed
 * grids, queued jobs) opens the same view, and a grid computed on one view is never
 * resumed on another. The CLI builds the suffix from the data flags (`--resize`,
 * `--channels`, `--fit`, `--labels`); users never need to write it.
 */
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { OptionError, UserError } from '../util/errors.js';
import type { Dataset, ImageShape } from './types.js';

/** How images are adapted and how unlabelled model outputs map to classes. */
export interface DataView {
  /** output size [H, W] (bilinear, antialiased when shrinking, as torchvision's Resize) */
  size?: [number, number];
  /** output channel count: 1 (ITU-R 601 luma, as torchvision's Grayscale) or 3 (gray replicated) */
  channels?: 1 | 3;
  /**
   * For models without label metadata: output i stands for dataset class labels[i]
   * (-1: a class this dataset does not have). A range/list ("0-9", "0,2,5") or
   * "file:<path>" naming a text file (one class name or id per line) or a JSON array.
   */
  labels?: string;
}

const SEPARATOR = '::';
/** Bounds on what a view may ask for, so a typo cannot allocate gigabytes per image. */
const MAX_SIDE = 4096;
const MAX_LABELS_BYTES = 1 << 20;
const MAX_OUTPUTS = 100_000;

/** Splits a spec into the base dataset spec and its view (empty when none). */
export function parseDataSpec(spec: string): { base: string; view: DataView } {
  const at = spec.lastIndexOf(SEPARATOR);
  if (at < 0) return { base: spec, view: {} };
  const base = spec.slice(0, at);
  const view: DataView = {};
  for (const part of spec.slice(at + SEPARATOR.length).split(';')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? '' : part.slice(eq + 1);
    switch (key.trim()) {
      case 'resize': view.size = parseSize(value, 'resize'); break;
      case 'channels': view.channels = parseChannels(value, 'channels'); break;
      case 'labels': view.labels = value; break;
      default: throw new UserError(`data spec "${spec}": unknown view setting "${key}" (expected resize, channels or labels)`);
    }
  }
  return { base, view };
}

/** The spec string of a view of `base` (the inverse of parseDataSpec). */
export function formatDataSpec(base: string, view: DataView): string {
  const parts: string[] = [];
  if (view.size) parts.push(`resize=${view.size[0]}x${view.size[1]}`);
  if (view.channels) parts.push(`channels=${view.channels}`);
  if (view.labels !== undefined) parts.push(`labels=${view.labels}`);
  return parts.length ? `${parseDataSpec(base).base}${SEPARATOR}${parts.join(';')}` : base;
}

/** "64" -> [64, 64]; "64x96" -> [64, 96] (height x width). */
export function parseSize(text: string, what: string): [number, number] {
  const parts = text.trim().toLowerCase().split('x').map((s) => Number(s));
  const [h, w] = parts.length === 1 ? [parts[0]!, parts[0]!] : parts;
  if ((parts.length !== 1 && parts.length !== 2) || ![h, w].every((v) => Number.isInteger(v) && v! >= 1 && v! <= MAX_SIDE)) {
    throw new UserError(`${what} expects a size N or HxW (1 to ${MAX_SIDE}), e.g. 64 or 224x224, got "${text}"`);
  }
  return [h!, w!];
}

export function parseChannels(text: string, what: string): 1 | 3 {
  if (text.trim() === '1') return 1;
  if (text.trim() === '3') return 3;
  throw new UserError(`${what} expects 1 (grayscale) or 3 (RGB), got "${text}"`);
}

/** The shape images have after the view is applied to a dataset of shape `shape`. */
export function viewShape(shape: ImageShape, view: DataView): ImageShape {
  return [view.channels ?? shape[0], view.size?.[0] ?? shape[1], view.size?.[1] ?? shape[2]];
}

/**
 * The dataset seen through the view. Pixels stay in [0, 1]: resampling is a convex
 * combination and the channel conversions are weighted means.
 */
export function applyView(ds: Dataset, view: DataView): Dataset {
  const [c0, h0, w0] = ds.shape;
  const shape = viewShape(ds.shape, view);
  const [c1, h1, w1] = shape;
  if (c1 !== c0 && !((c0 === 1 && c1 === 3) || (c0 === 3 && c1 === 1))) {
    throw new UserError(`${ds.name} has ${c0}-channel images; converting to ${c1} channels is not defined (only 1 <-> 3)`);
  }
  const outputLabels = view.labels !== undefined ? parseOutputLabels(view.labels, ds) : ds.outputLabels;
  const resize = h1 !== h0 || w1 !== w0;
  const steps: string[] = [];
  if (resize) steps.push(`resized ${h0}x${w0} -> ${h1}x${w1} (bilinear${h1 < h0 || w1 < w0 ? ', antialiased' : ''})`);
  if (c1 !== c0) steps.push(c1 === 3 ? 'grayscale -> RGB' : 'RGB -> grayscale');
  if (!steps.length && outputLabels === ds.outputLabels) return ds;
  const rows = resize ? resampleMatrix(h0, h1) : undefined;
  const cols = resize ? resampleMatrix(w0, w1) : undefined;
  const view0: Dataset = {
    name: ds.name,
    split: ds.split,
    source: steps.length ? `${ds.source}; ${steps.join(', ')}` : ds.source,
    shape,
    classes: ds.classes,
    ...(ds.classNames ? { classNames: ds.classNames } : {}),
    ...(outputLabels ? { outputLabels } : {}),
    size: ds.size,
    label: (i) => ds.label(i),
    async read(indices, out) {
      if (!steps.length) return ds.read(indices, out);
      const inPer = c0 * h0 * w0;
      const outPer = c1 * h1 * w1;
      // read in chunks so a large batch of large images does not double its memory
      const chunk = Math.max(1, Math.min(indices.length, Math.floor((64 << 20) / (inPer * 4))));
      const src = new Float32Array(chunk * inPer);
      const plane = new Float32Array(h1 * w1 * Math.max(c0, 1));
      const tmp = new Float32Array(h0 * w1);
      for (let s = 0; s < indices.length; s += chunk) {
        const part = indices.slice(s, s + chunk);
        await ds.read(part, src);
        for (let k = 0; k < part.length; k++) {
          // resize each source channel into `plane`, then convert channels into `out`
          for (let ch = 0; ch < c0; ch++) {
            const from = src.subarray(k * inPer + ch * h0 * w0, k * inPer + (ch + 1) * h0 * w0);
            const to = plane.subarray(ch * h1 * w1, (ch + 1) * h1 * w1);
            if (rows && cols) resample2d(from, h0, w0, to, rows, cols, tmp);
            else to.set(from);
          }
          convertChannels(plane, c0, out.subarray((s + k) * outPer, (s + k + 1) * outPer), c1, h1 * w1);
        }
      }
    },
  };
  return view0;
}

/** torchvision's Grayscale weights (ITU-R 601-2 luma). */
const LUMA = [0.2989, 0.587, 0.114] as const;

function convertChannels(from: Float32Array, c0: number, to: Float32Array, c1: number, plane: number): void {
  if (c0 === c1) { to.set(from.subarray(0, c1 * plane)); return; }
  if (c0 === 1) {
    for (let ch = 0; ch < c1; ch++) to.set(from.subarray(0, plane), ch * plane);
    return;
  }
  for (let j = 0; j < plane; j++) to[j] = LUMA[0] * from[j]! + LUMA[1] * from[plane + j]! + LUMA[2] * from[2 * plane + j]!;
}

/** A sparse resampling operator along one axis: output i = sum over taps of weight * input[start + t]. */
interface Resample {
  start: Int32Array;
  count: Int32Array;
  weights: Float32Array;
  /** taps per output (stride of `weights`) */
  taps: number;
}

/**
 * The weights of bilinear resampling from n to m samples with half-pixel centres
 * (align_corners=False), widened to a triangle of support 1/scale when shrinking so that
 * every input sample contributes (antialiasing) — PyTorch's
 * interpolate(mode='bilinear', antialias=True) and PIL's bilinear filter, which
 * torchvision's Resize uses. Written here because the image libraries at hand work on
 * interleaved 8-bit pixels with their own kernels, and the point is to feed a model the
 * images it was trained on.
 */
export function resampleMatrix(n: number, m: number): Resample {
  const scale = n / m;
  const support = scale > 1 ? scale : 1;
  const taps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(m);
  const count = new Int32Array(m);
  const weights = new Float32Array(m * taps);
  for (let i = 0; i < m; i++) {
    const centre = (i + 0.5) * scale;
    const lo = Math.max(0, Math.floor(centre - support + 0.5));
    const hi = Math.min(n, Math.floor(centre + support + 0.5));
    let total = 0;
    const w: number[] = [];
    for (let j = lo; j < hi; j++) {
      const x = (j - centre + 0.5) / support;
      const v = Math.max(0, 1 - Math.abs(x));
      w.push(v);
      total += v;
    }
    start[i] = lo;
    count[i] = w.length;
    w.forEach((v, t) => (weights[i * taps + t] = total > 0 ? v / total : 0));
  }
  return { start, count, weights, taps };
}

/** Resizes one plane: rows first into `tmp` ([h0, w1]), then columns into `to` ([h1, w1]). */
function resample2d(from: Float32Array, h0: number, w0: number, to: Float32Array, rows: Resample, cols: Resample, tmp: Float32Array): void {
  const w1 = cols.start.length;
  const h1 = rows.start.length;
  for (let y = 0; y < h0; y++) {
    const row = y * w0;
    for (let x = 0; x < w1; x++) {
      let acc = 0;
      const s = cols.start[x]!;
      const base = x * cols.taps;
      for (let t = 0; t < cols.count[x]!; t++) acc += cols.weights[base + t]! * from[row + s + t]!;
      tmp[y * w1 + x] = acc;
    }
  }
  for (let y = 0; y < h1; y++) {
    const s = rows.start[y]!;
    const base = y * rows.taps;
    for (let x = 0; x < w1; x++) {
      let acc = 0;
      for (let t = 0; t < rows.count[y]!; t++) acc += rows.weights[base + t]! * tmp[(s + t) * w1 + x]!;
      to[y * w1 + x] = acc;
    }
  }
}

/**
 * Parses a view's labels (DataView.labels) against a dataset: a class range/list ("0-9", "0,2,5") or
 * "file:<path>" (one class name or id per line, or a JSON array of them). Entries that
 * name no class of the dataset map to -1.
 */
export function parseOutputLabels(text: string, ds: Pick<Dataset, 'name' | 'classes' | 'classNames'>): number[] {
  const entries = text.startsWith('file:') ? readLabelFile(text.slice('file:'.length)) : expandRange(text);
  if (entries.length === 0) throw new OptionError((o) => `${o('labels', text)}: no labels given`);
  if (entries.length > MAX_OUTPUTS) throw new OptionError((o) => `${o('labels', text)}: ${entries.length} labels is more than the ${MAX_OUTPUTS} supported`);
  const names = ds.classNames ?? [];
  const out = entries.map((e) => {
    const byName = names.findIndex((n) => n.toLowerCase() === e.toLowerCase());
    if (byName >= 0) return byName;
    if (/^\d+$/.test(e) && Number(e) < ds.classes) return Number(e);
    return -1;
  });
  if (out.every((c) => c < 0)) {
    const known = `ids 0-${ds.classes - 1}${names.length ? ` or names ${names.slice(0, 4).join(', ')}, ...` : ''}`;
    throw new OptionError((o) => `${o('labels', text.slice(0, 80))}: none of its ${entries.length} labels is a class of ${ds.name} (${known})`);
  }
  return out;
}

function expandRange(text: string): string[] {
  const out: string[] = [];
  for (const part of text.split(',')) {
    const p = part.trim();
    const m = /^(\d+)-(\d+)$/.exec(p);
    if (m) {
      const [a, b] = [Number(m[1]), Number(m[2])];
      if (b < a || b - a > MAX_OUTPUTS) throw new OptionError((o) => `${o('labels')}: range ${p} is not valid: expected low-high with low <= high`);
      for (let k = a; k <= b; k++) out.push(String(k));
    } else if (/^\d+$/.test(p)) {
      out.push(p);
    } else {
      throw new OptionError((o) => `${o('labels')} expects class ids such as 0-9 or 0,2,5, or file:<path>; got "${text}"`);
    }
  }
  return out;
}

function readLabelFile(path: string): string[] {
  const file = resolve(path);
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    throw new OptionError((o) => `${o('labels')}: file ${file} does not exist`);
  }
  if (size > MAX_LABELS_BYTES) throw new OptionError((o) => `${o('labels')}: ${file} is ${size} bytes; a label file is at most ${MAX_LABELS_BYTES} bytes`);
  const text = readFileSync(file, 'utf8');
  if (text.trimStart().startsWith('[')) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      throw new OptionError((o) => `${o('labels')}: ${file} starts with "[" but is not valid JSON`);
    }
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' || typeof x === 'number')) {
      throw new OptionError((o) => `${o('labels')}: ${file} must hold a JSON array of class names or ids`);
    }
    return v.map(String);
  }
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
}
