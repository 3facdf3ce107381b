/**
 * Model sources for lineage recovery: files, folders and list files resolved to named
 * models whose weights can be read one layer at a time. A model's name is its file stem
 * (what truth files use); two inputs with the same stem are an error, never a silent
 * overwrite.
 *
 * @example
 *   const models = openSources(['zoo/', 'extra/a.onnx']);
 *   models[0].layers();            // [{ name: 'fc1.weight', shape: [256, 256], dtype: 'F32' }, ...]
 *   models[0].read('fc1.weight');  // Float32Array
 *   closeSources(models);
 */
import { readFileSync, readdirSync, statSync, type Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { openSafetensors, openSafetensorsIndex, type SafetensorsFile } from '../io/safetensors.js';
import { loadModel } from '../onnx/proto.js';
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
  close(): void;
}

const SAFETENSORS = '.safetensors';
const INDEX = '.safetensors.index.json';
const ONNX = '.onnx';
/** ONNX files are one protobuf: small ones stay decoded, larger ones are re-read per layer to bound memory. */
const ONNX_CACHE_BYTES = 16 * 1024 * 1024;

/** The name lineage uses for a model file: its base name without the model extension. */
export function modelStem(path: string): string {
  const b = basename(path);
  for (const ext of [INDEX, SAFETENSORS, ONNX]) if (b.toLowerCase().endsWith(ext)) return b.slice(0, -ext.length);
  return b.replace(/\.[^.]*$/, '');
}

/**
 * Expands inputs to model files: a folder gives its *.safetensors, *.safetensors.index.json
 * and *.onnx files (shards named by an index in the same folder are not models of their
 * own); a .txt file lists one path per line (relative to the list's folder; blank lines
 * and #-comments skipped); anything else is a model file.
 */
export function expandInputs(inputs: readonly string[]): string[] {
  if (inputs.length === 0) throw new UserError('lineage: no model files or folders given');
  const files: string[] = [];
  for (const input of inputs) {
    const st = statOrThrow(input);
    if (st.isDirectory()) files.push(...folderModels(input));
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
  if (out.length === 0) throw new UserError(`lineage: folder ${dir} holds no .safetensors or .onnx files`);
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
  const lines = readFileSync(path, 'utf8').split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length === 0) throw new UserError(`lineage: list file ${path} names no models`);
  const out: string[] = [];
  for (const l of lines) {
    const p = resolve(base, l);
    if (statOrThrow(p).isDirectory()) out.push(...folderModels(p));
    else out.push(p);
  }
  return out;
}

/** Opens every model (headers only); duplicate names are an error naming both files. */
export function openSources(inputs: readonly string[]): ModelSource[] {
  const files = expandInputs(inputs);
  const seen = new Map<string, string>();
  for (const f of files) {
    const stem = modelStem(f);
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

/** One model file by its extension. */
export function openSource(path: string): ModelSource {
  const l = path.toLowerCase();
  if (l.endsWith(INDEX)) return new SafetensorsSource(path, openSafetensorsIndex(path));
  if (l.endsWith(SAFETENSORS)) return new SafetensorsSource(path, openSafetensors(path));
  if (l.endsWith(ONNX)) return new OnnxSource(path);
  throw new UserError(`lineage: ${path} is not a model file (expected .safetensors, .safetensors.index.json or .onnx)`);
}

const FLOAT_SAFETENSORS = new Set(['F64', 'F32', 'F16', 'BF16']);
const FLOAT_IR = new Set(['float64', 'float32', 'float16', 'bfloat16']);

class SafetensorsSource implements ModelSource {
  readonly name: string;
  constructor(readonly path: string, private readonly file: SafetensorsFile) {
    this.name = modelStem(path);
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
  close(): void {
    this.file.close();
  }
}

class OnnxSource implements ModelSource {
  readonly name: string;
  private cached: Model | undefined;
  private readonly info: LayerInfo[];
  private readonly small: boolean;

  constructor(readonly path: string) {
    this.name = modelStem(path);
    const model = loadModel(path);
    this.small = statSync(path).size <= ONNX_CACHE_BYTES;
    if (this.small) this.cached = model;
    this.info = [...model.graph.initializers].map(([name, t]) => ({ name, shape: [...t.dims], dtype: t.dtype, float: FLOAT_IR.has(t.dtype) }));
  }
  layers(): LayerInfo[] {
    return this.info.map((l) => ({ ...l, shape: [...l.shape] }));
  }
  read(layer: string): Float32Array {
    const model = this.cached ?? loadModel(this.path);
    const t = model.graph.initializers.get(layer);
    if (!t) throw new UserError(`${this.path}: no initializer named "${layer}"`);
    const f = tensorToFloat32(t);
    return this.cached ? Float32Array.from(f) : f;
  }
  close(): void {
    this.cached = undefined;
  }
}
