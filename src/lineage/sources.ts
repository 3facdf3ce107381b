/**
 * Model sources for lineage recovery: files, folders and list files resolved to named
 * models whose weights can be read one layer at a time. A model's name is its file stem
 * (what truth files use), or for a Hugging Face model folder (config.json plus
 * model.safetensors or a sharded model.safetensors.index.json) the folder's name; two
 * inputs with the same name are an error, never a silent overwrite.
 *
 * Folders are untrusted: config.json is size-bounded and must be a JSON object, and the
 * weights (and shards) must lie inside the folder, symlinks included.
 *
 * @example
 *   const models = openSources(['zoo/', 'extra/a.onnx']);
 *   models[0].layers();            // [{ name: 'fc1.weight', shape: [256, 256], dtype: 'F32' }, ...]
 *   models[0].read('fc1.weight');  // Float32Array
 *   closeSources(models);
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync, readdirSync, realpathSync, statSync, type Stats } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { openSafetensors, openSafetensorsIndex, type SafetensorsFile } from '../io/safetensors.js';
import { loadModel } from '../onnx/proto.js';
import { numel } from '../onnx/tensor.js';
import type { Model } from '../onnx/types.js';
import { tensorToFloat32 } from '../io/to-float32.js';
import { UserError } from '../util/errors.js';

export interface LayerInfo {
  name: string;
  shape: number[];
  /** stored dtype as the file names it (F32, F16, float32, ...) */
  dtype: string;
  /** true for floating-point storage */
  float: boolean;
}

/** One model: a name and its weights, read one layer at a time. */
export interface ModelSource {
  readonly name: string;
  readonly path: string;
  layers(): LayerInfo[];
  /** one layer's values as float32 (a fresh or owned array: callers may keep it) */
  read(layer: string): Float32Array;
  /**
   * The same values written into `target`, which must hold exactly as many (else a
   * UserError naming the layer and model): lineage reads every layer of every model into
   * one reused buffer, and float32 storage goes there without an intermediate copy.
   */
  readInto(layer: string, target: Float32Array): void;
  /**
   * Values offset .. offset + target.length of the layer (flattened) into `target`, reading
   * only those bytes; sources that cannot read part of a layer cheaply leave it out (ONNX
   * files are one protobuf), and lineage then reads their layers whole (measure.ts).
   */
  readSliceInto?(layer: string, offset: number, target: Float32Array): void;
  /** free-form strings stored with the weights (safetensors `__metadata__`, ONNX metadata_props) */
  metadata(): Readonly<Record<string, string>>;
  /** a Hugging Face folder's config.json (an object), undefined for plain files */
  readonly config?: Readonly<Record<string, unknown>>;
  close(): void;
}

const SAFETENSORS = '.safetensors';
const INDEX = '.safetensors.index.json';
const ONNX = '.onnx';
/** ONNX files are one protobuf: small ones stay decoded, larger ones are re-read per layer to bound memory. */
const ONNX_CACHE_BYTES = 16 * 1024 * 1024;

/** A Hugging Face model folder's files; the single-file checkpoint wins over an index, as in transformers. */
export const HF_CONFIG = 'config.json';
export const HF_WEIGHTS = ['model.safetensors', 'model.safetensors.index.json'] as const;
/** config.json files are a few kilobytes; anything near this is not a config */
export const MAX_HF_CONFIG_BYTES = 1024 * 1024;

/** True when `dir` holds config.json and model.safetensors or model.safetensors.index.json. */
export function isHfFolder(dir: string): boolean {
  const isFile = (p: string): boolean => {
    try {
      return statSync(p).isFile();
    } catch {
      return false;
    }
  };
  return isFile(join(dir, HF_CONFIG)) && HF_WEIGHTS.some((w) => isFile(join(dir, w)));
}

/** The name lineage uses for an input: a folder's name for a Hugging Face folder, else the file stem. */
export function modelName(path: string): string {
  return isDirectory(path) ? basename(resolve(path)) : modelStem(path);
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The name lineage uses for a model file: its base name without the model extension. */
export function modelStem(path: string): string {
  const b = basename(path);
  for (const ext of [INDEX, SAFETENSORS, ONNX]) if (b.toLowerCase().endsWith(ext)) return b.slice(0, -ext.length);
  return b.replace(/\.[^.]*$/, '');
}

/**
 * Expands inputs to models: a Hugging Face model folder is one model; another folder
 * gives its *.safetensors, *.safetensors.index.json and *.onnx files (shards named by an
 * index in the same folder are not models of their own) and its subfolders that are
 * Hugging Face model folders; a .txt file lists one path per line (relative to the
 * list's folder; blank lines and #-comments skipped); anything else is a model file.
 */
export function expandInputs(inputs: readonly string[]): string[] {
  if (inputs.length === 0) throw new UserError('lineage: no model files or folders given');
  const files: string[] = [];
  for (const input of inputs) {
    const st = statOrThrow(input);
    if (st.isDirectory()) files.push(...(isHfFolder(input) ? [input] : folderModels(input)));
    else if (input.toLowerCase().endsWith('.txt')) files.push(...listFile(input));
    else files.push(input);
  }
  return files;
}

function statOrThrow(path: string): Stats {
  try {
    return statSync(path);
  } catch (e) {
    throw new UserError(`lineage: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function folderModels(dir: string): string[] {
  const names = readdirSync(dir).sort();
  const sharded = new Set<string>();
  for (const n of names.filter((x) => x.toLowerCase().endsWith(INDEX))) {
    for (const shard of shardNames(join(dir, n))) sharded.add(shard);
  }
  const out = names
    .filter((n) => {
      const l = n.toLowerCase();
      if (l.endsWith(INDEX)) return true;
      return (l.endsWith(SAFETENSORS) || l.endsWith(ONNX)) && !sharded.has(n);
    })
    .map((n) => join(dir, n))
    .filter((p) => statSync(p).isFile());
  const hf = names.map((n) => join(dir, n)).filter((p) => isDirectory(p) && isHfFolder(p));
  out.push(...hf);
  if (out.length === 0) {
    throw new UserError(`lineage: folder ${dir} holds no .safetensors or .onnx files and no Hugging Face model folders (config.json + model.safetensors)`);
  }
  return out;
}

/** Shard file names an index refers to (validated properly when the index is opened). */
function shardNames(indexPath: string): string[] {
  try {
    const raw = JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map?: Record<string, unknown> };
    return Object.values(raw.weight_map ?? {}).filter((v): v is string => typeof v === 'string');
  } catch {
    return [];
  }
}

function listFile(path: string): string[] {
  const base = dirname(resolve(path));
  const lines = readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length === 0) throw new UserError(`lineage: list file ${path} names no models`);
  const out: string[] = [];
  for (const l of lines) {
    const p = resolve(base, l);
    if (statOrThrow(p).isDirectory()) out.push(...(isHfFolder(p) ? [p] : folderModels(p)));
    else out.push(p);
  }
  return out;
}

/** Opens every model (headers only); duplicate names are an error naming both files. */
export function openSources(inputs: readonly string[]): ModelSource[] {
  const files = expandInputs(inputs);
  const seen = new Map<string, string>();
  for (const f of files) {
    const stem = modelName(f);
    const prev = seen.get(stem);
    if (prev !== undefined) throw new UserError(`lineage: two models are named "${stem}" (${prev} and ${f}); model names are file stems and must be unique`);
    seen.set(stem, f);
  }
  const out: ModelSource[] = [];
  try {
    for (const f of files) out.push(openSource(f));
  } catch (e) {
    closeSources(out);
    throw e;
  }
  return out;
}

export function closeSources(sources: readonly ModelSource[]): void {
  for (const s of sources) s.close();
}

/** One model file by its extension, or a Hugging Face model folder. */
export function openSource(path: string): ModelSource {
  if (isDirectory(path)) return openHfFolder(path);
  const l = path.toLowerCase();
  if (l.endsWith(INDEX)) return new SafetensorsSource(path, openSafetensorsIndex(path));
  if (l.endsWith(SAFETENSORS)) return new SafetensorsSource(path, openSafetensors(path));
  if (l.endsWith(ONNX)) return new OnnxSource(path);
  throw new UserError(`lineage: ${path} is not a model file (expected .safetensors, .safetensors.index.json or .onnx)`);
}

const FLOAT_SAFETENSORS = new Set(['F64', 'F32', 'F16', 'BF16']);
const FLOAT_IR = new Set(['float64', 'float32', 'float16', 'bfloat16']);

/**
 * A Hugging Face model folder: config.json (bounded, a JSON object) and the weights,
 * which must resolve inside the folder (a symlink out of it is refused, as the index
 * reader refuses shards outside the index's folder).
 */
function openHfFolder(dir: string): ModelSource {
  const real = realOrThrow(dir, dir);
  const weights = HF_WEIGHTS.map((w) => join(dir, w)).find((p) => {
    try {
      return statSync(p).isFile();
    } catch {
      return false;
    }
  });
  if (!weights) throw new UserError(`lineage: ${dir} is not a Hugging Face model folder: it has no ${HF_WEIGHTS.join(' or ')}`);
  const config = readHfConfig(join(dir, HF_CONFIG), real);
  const inside = realOrThrow(weights, dir);
  const rel = relative(real, inside);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
    throw new UserError(`lineage: ${weights} resolves to ${inside}, outside the model folder ${dir} (symlink?); copy the files into the folder`);
  }
  const file = weights.endsWith(INDEX) ? openSafetensorsIndex(weights) : openSafetensors(weights);
  return new SafetensorsSource(dir, file, basename(resolve(dir)), config);
}

function realOrThrow(path: string, dir: string): string {
  try {
    return realpathSync(path);
  } catch (e) {
    throw new UserError(`lineage: cannot read ${path} in ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** config.json: at most MAX_HF_CONFIG_BYTES, inside the folder, a JSON object. */
export function readHfConfig(path: string, folderReal = realOrThrow(dirname(path), dirname(path))): Record<string, unknown> {
  const real = realOrThrow(path, dirname(path));
  const rel = relative(folderReal, real);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) throw new UserError(`lineage: ${path} resolves to ${real}, outside its model folder (symlink?)`);
  const text = readBounded(path, MAX_HF_CONFIG_BYTES, 'a config.json');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new UserError(`lineage: ${path} is not valid JSON (${(e as Error).message.split('\n')[0]}); expected a Hugging Face config`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UserError(`lineage: ${path} must hold a JSON object (a Hugging Face config)`);
  return v as Record<string, unknown>;
}

/** A small text file, refused when larger than `max` bytes or not UTF-8. */
export function readBounded(path: string, max: number, what: string): string {
  let fd: number;
  try {
    // a FIFO or device would block or never end: only regular files are opened
    if (!statSync(path).isFile()) throw new UserError(`lineage: ${path} is not a regular file`);
    fd = openSync(path, 'r');
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`lineage: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new UserError(`lineage: ${path} is not a file`);
    if (st.size > max) throw new UserError(`lineage: ${path} is ${st.size} bytes, too large for ${what} (at most ${max})`);
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < st.size) {
      const n = readSync(fd, buf, off, st.size - off, off);
      if (n === 0) break;
      off += n;
    }
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(0, off));
    } catch {
      throw new UserError(`lineage: ${path} is not UTF-8 text`);
    }
  } finally {
    closeSync(fd);
  }
}

function checkCount(model: ModelSource, layer: string, count: number, target: Float32Array): void {
  if (count !== target.length) throw new UserError(`lineage: layer "${layer}" of ${model.name} holds ${count} values, expected ${target.length}`);
}

class SafetensorsSource implements ModelSource {
  readonly name: string;
  constructor(
    readonly path: string,
    private readonly file: SafetensorsFile,
    name?: string,
    readonly config?: Readonly<Record<string, unknown>>,
  ) {
    this.name = name ?? modelStem(path);
  }
  metadata(): Readonly<Record<string, string>> {
    return this.file.metadata;
  }
  layers(): LayerInfo[] {
    return this.file.tensors.map((t) => ({ name: t.name, shape: [...t.shape], dtype: t.dtype, float: FLOAT_SAFETENSORS.has(t.dtype) }));
  }
  read(layer: string): Float32Array {
    const t = this.file.readTensor(layer);
    const f = tensorToFloat32(t);
    // float32 data comes back as the tensor's own buffer, which nothing else holds
    return f;
  }
  readInto(layer: string, target: Float32Array): void {
    checkCount(this, layer, numel(this.file.info(layer).shape), target);
    this.file.readFloat32Into(layer, target);
  }
  readSliceInto(layer: string, offset: number, target: Float32Array): void {
    this.file.readFloat32SliceInto(layer, offset, target);
  }
  close(): void {
    this.file.close();
  }
}

class OnnxSource implements ModelSource {
  readonly name: string;
  private cached: Model | undefined;
  private readonly info: LayerInfo[];
  private readonly small: boolean;
  private readonly meta: Record<string, string>;

  constructor(readonly path: string) {
    this.name = modelStem(path);
    const model = loadModel(path);
    this.meta = { ...model.metadata };
    this.small = statSync(path).size <= ONNX_CACHE_BYTES;
    if (this.small) this.cached = model;
    this.info = [...model.graph.initializers].map(([name, t]) => ({ name, shape: [...t.dims], dtype: t.dtype, float: FLOAT_IR.has(t.dtype) }));
  }
  layers(): LayerInfo[] {
    return this.info.map((l) => ({ ...l, shape: [...l.shape] }));
  }
  metadata(): Readonly<Record<string, string>> {
    return this.meta;
  }
  read(layer: string): Float32Array {
    const model = this.cached ?? loadModel(this.path);
    const t = model.graph.initializers.get(layer);
    if (!t) throw new UserError(`${this.path}: no initializer named "${layer}"`);
    const f = tensorToFloat32(t);
    return this.cached ? Float32Array.from(f) : f;
  }
  readInto(layer: string, target: Float32Array): void {
    const model = this.cached ?? loadModel(this.path);
    const t = model.graph.initializers.get(layer);
    if (!t) throw new UserError(`${this.path}: no initializer named "${layer}"`);
    checkCount(this, layer, numel(t.dims), target);
    target.set(tensorToFloat32(t));
  }
  close(): void {
    this.cached = undefined;
  }
}
