/**
 * modelsmith's keys in ONNX metadata_props. Values are JSON so that other tools can
 * read them; every reader validates and names the key when a value is malformed.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Model } from './types.js';
import { encodeModel } from './proto.js';
import { UserError } from '../util/errors.js';

export const KEYS = {
  labels: 'modelsmith.labels',
  input: 'modelsmith.input',
  arch: 'modelsmith.arch',
  cuts: 'modelsmith.cuts',
  provenance: 'modelsmith.provenance',
} as const;

/** What output i of a classifier means: class `class` of dataset `dataset`. */
export interface OutputLabel {
  dataset: string;
  class: number;
  name?: string;
}

/** Expected input: CHW shape and the normalisation the model was trained with. */
export interface InputSpec {
  shape: [number, number, number];
  mean?: number[];
  std?: number[];
}

/** A named place where a network can be cut (stitching, taps, inspection). */
export interface CutPoint {
  name: string;
  /** tensor name in the graph */
  tensor: string;
  kind: 'stem' | 'block' | 'features' | 'logits' | 'other';
}

export type Operation = 'created' | 'trained' | 'fine-tuned' | 'disassembled' | 'assembled' | 'stitched' | 'imported' | 'converted';

export interface Provenance {
  operation: Operation;
  /** sha256 (hex) of each parent model file's content */
  parents: string[];
  seed?: number;
  data?: string;
  classes?: number[];
  [extra: string]: unknown;
}

export interface ArchInfo {
  name: string;
  [param: string]: unknown;
}

function readJson<T>(model: Model, key: string, validate: (v: unknown) => boolean, expected: string): T | undefined {
  const raw = model.metadata[key];
  if (raw === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new UserError(`model metadata ${key} is not valid JSON (expected ${expected})`);
  }
  if (!validate(v)) throw new UserError(`model metadata ${key} does not hold ${expected}: ${raw.slice(0, 120)}`);
  return v as T;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNumArray = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x));

export function getLabels(model: Model): OutputLabel[] | undefined {
  return readJson<OutputLabel[]>(
    model,
    KEYS.labels,
    (v) => Array.isArray(v) && v.every((l) => isObj(l) && typeof l['dataset'] === 'string' && Number.isInteger(l['class'])),
    'a list of {dataset, class} objects',
  );
}

export function setLabels(model: Model, labels: OutputLabel[]): void {
  model.metadata[KEYS.labels] = JSON.stringify(labels);
}

/** Labels 0..n-1 of one dataset: what a freshly created or trained classifier outputs. */
export function identityLabels(dataset: string, n: number, names?: readonly string[]): OutputLabel[] {
  return Array.from({ length: n }, (_, i) => (names?.[i] ? { dataset, class: i, name: names[i]! } : { dataset, class: i }));
}

export function getInputSpec(model: Model): InputSpec | undefined {
  return readJson<InputSpec>(
    model,
    KEYS.input,
    (v) =>
      isObj(v) &&
      isNumArray(v['shape']) &&
      v['shape'].length === 3 &&
      (v['mean'] === undefined || isNumArray(v['mean'])) &&
      (v['std'] === undefined || (isNumArray(v['std']) && v['std'].every((s) => s > 0))),
    '{shape: [C,H,W], mean?: number[], std?: number[]}',
  );
}

export function setInputSpec(model: Model, spec: InputSpec): void {
  model.metadata[KEYS.input] = JSON.stringify(spec);
}

export function getArch(model: Model): ArchInfo | undefined {
  return readJson<ArchInfo>(model, KEYS.arch, (v) => isObj(v) && typeof v['name'] === 'string', '{name, ...params}');
}

export function setArch(model: Model, arch: ArchInfo): void {
  model.metadata[KEYS.arch] = JSON.stringify(arch);
}

export function getCuts(model: Model): CutPoint[] | undefined {
  return readJson<CutPoint[]>(
    model,
    KEYS.cuts,
    (v) => Array.isArray(v) && v.every((c) => isObj(c) && typeof c['name'] === 'string' && typeof c['tensor'] === 'string'),
    'a list of {name, tensor, kind} objects',
  );
}

export function setCuts(model: Model, cuts: CutPoint[]): void {
  model.metadata[KEYS.cuts] = JSON.stringify(cuts);
}

export function getProvenance(model: Model): Provenance | undefined {
  return readJson<Provenance>(
    model,
    KEYS.provenance,
    (v) => isObj(v) && typeof v['operation'] === 'string' && Array.isArray(v['parents']),
    '{operation, parents, ...}',
  );
}

export function setProvenance(model: Model, p: Provenance): void {
  model.metadata[KEYS.provenance] = JSON.stringify(p);
}

/** Content hash used to name parents in provenance. */
export function contentHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Hash of a model file's bytes, for provenance. */
export function fileHash(path: string): string {
  return contentHash(readFileSync(path));
}

/** Hash of an in-memory model's encoding (the same as `fileHash` of the saved file). */
export function modelHash(model: Model): string {
  return contentHash(encodeModel(model));
}
