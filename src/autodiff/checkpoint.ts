/**
 * Training checkpoints: everything a resumed run needs in one safetensors file, written
 * atomically (temp file, fsync, rename) so that a killed run leaves the previous
 * checkpoint or the new one, never a torn file.
 *
 * Layout: every initializer of the model under its own name (parameters, running
 * statistics and any other constant; readable by any safetensors tool), the optimiser
 * buffers under "optimizer/<name>", and the model's graph without its initializers as
 * the ONNX bytes of the U8 tensor "__model__.onnx". `__metadata__` holds JSON strings:
 * format and version, epoch, step, optimiser config and step count, the initializer
 * order, and each caller `meta` entry as "meta.<key>".
 */
import { dirname, resolve } from 'node:path';
import type { Model, Tensor } from '../onnx/types.js';
import { decodeModel, encodeModel } from '../onnx/proto.js';
import { tensor } from '../onnx/tensor.js';
import { getArch } from '../onnx/metadata.js';
import { openSafetensors, writeSafetensors, type SafetensorsFile } from '../io/safetensors.js';
import { UserError } from '../util/errors.js';
import type { OptimizerConfig } from './optim.js';

export interface TrainingCheckpoint {
  /** the model with its current weights */
  model: Model;
  optimizer: { config: OptimizerConfig; steps: number; state: Map<string, Float32Array> };
  /** epochs completed */
  epoch: number;
  /** optimiser steps completed */
  step: number;
  /** anything else the loop needs back (JSON values): seed, rng state, metrics, best accuracy, schedule... */
  meta: Record<string, unknown>;
  /**
   * Weights kept beside the current ones (the best validation epoch's for --keep best),
   * stored in the same file so that they and the epoch they belong to can never disagree.
   */
  kept?: Map<string, Float32Array>;
}

export const CHECKPOINT_FORMAT = 'modelsmith-checkpoint';
export const CHECKPOINT_VERSION = 1;
const MODEL_TENSOR = '__model__.onnx';
const OPTIMIZER_PREFIX = 'optimizer/';
const KEPT_PREFIX = 'kept/';
const META_PREFIX = 'meta.';

export function saveCheckpoint(path: string, ckpt: TrainingCheckpoint): void {
  const { graph } = ckpt.model;
  const tensors = new Map<string, Tensor>();
  for (const [name, t] of graph.initializers) {
    if (name === MODEL_TENSOR || name.startsWith(OPTIMIZER_PREFIX) || name.startsWith(KEPT_PREFIX)) {
      throw new UserError(
        `cannot checkpoint initializer "${name}": names "${MODEL_TENSOR}", "${OPTIMIZER_PREFIX}*" and "${KEPT_PREFIX}*" are reserved for the checkpoint's own tensors`,
      );
    }
    tensors.set(name, t);
  }
  for (const [name, buf] of ckpt.optimizer.state) tensors.set(OPTIMIZER_PREFIX + name, tensor('float32', [buf.length], buf));
  for (const [name, buf] of ckpt.kept ?? []) tensors.set(KEPT_PREFIX + name, tensor('float32', [buf.length], buf));
  const skeleton: Model = { ...ckpt.model, graph: { ...graph, initializers: new Map() } };
  const bytes = encodeModel(skeleton);
  tensors.set(MODEL_TENSOR, tensor('uint8', [bytes.length], bytes));
  writeSafetensors(path, tensors, metadataOf(ckpt));
}

function metadataOf(ckpt: TrainingCheckpoint): Record<string, string> {
  const md: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    format_version: String(CHECKPOINT_VERSION),
    epoch: JSON.stringify(ckpt.epoch),
    step: JSON.stringify(ckpt.step),
    optimizer: JSON.stringify(ckpt.optimizer.config),
    optimizer_steps: JSON.stringify(ckpt.optimizer.steps),
    initializers: JSON.stringify([...ckpt.model.graph.initializers.keys()]),
  };
  for (const [k, v] of Object.entries(ckpt.meta)) {
    const json = JSON.stringify(v);
    if (json !== undefined) md[META_PREFIX + k] = json;
  }
  return md;
}

export function loadCheckpoint(path: string): TrainingCheckpoint {
  const file = openSafetensors(path);
  try {
    const md = file.metadata;
    if (md['format'] !== CHECKPOINT_FORMAT)
      throw new UserError(`${path}: not a modelsmith training checkpoint (a safetensors file without "format": "${CHECKPOINT_FORMAT}" metadata)`);
    if (md['format_version'] !== String(CHECKPOINT_VERSION)) {
      throw new UserError(`${path}: checkpoint format version ${md['format_version']}, but this modelsmith reads version ${CHECKPOINT_VERSION}`);
    }
    const field = (key: string): unknown => parseField(md, key, path);
    const kept = readPrefixed(file, KEPT_PREFIX);
    return {
      model: readModel(file, field('initializers'), path),
      optimizer: {
        config: field('optimizer') as OptimizerConfig,
        steps: count(field('optimizer_steps'), 'optimizer_steps', path),
        state: readPrefixed(file, OPTIMIZER_PREFIX),
      },
      epoch: count(field('epoch'), 'epoch', path),
      step: count(field('step'), 'step', path),
      meta: Object.fromEntries(
        Object.keys(md)
          .filter((k) => k.startsWith(META_PREFIX))
          .map((k) => [k.slice(META_PREFIX.length), field(k)]),
      ),
      ...(kept.size > 0 ? { kept } : {}),
    };
  } finally {
    file.close();
  }
}

/**
 * What keeps `now` from continuing a checkpoint of `saved`: a different architecture
 * (zoo metadata) or a parameter that is missing or shaped differently, named; null when
 * both have the same parameters with the same shapes.
 */
export function modelMismatch(saved: Model, now: Model): string | null {
  const [a, b] = [getArch(saved), getArch(now)];
  if (a && b && a.name !== b.name) return `the architecture was ${a.name} and is ${b.name} now`;
  if (a && b) {
    const key = [...new Set([...Object.keys(a), ...Object.keys(b)])].find((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
    if (key) return `${a.name}'s ${key} was ${JSON.stringify(a[key]) ?? 'unset'} and is ${JSON.stringify(b[key]) ?? 'unset'} now`;
  }
  const shape = (t: Tensor | undefined): string => (t ? `[${t.dims.join(', ')}]` : 'absent');
  for (const [name, t] of now.graph.initializers) {
    const old = saved.graph.initializers.get(name);
    if (!old || old.dims.join() !== t.dims.join()) return `parameter "${name}" was ${shape(old)} and is ${shape(t)} now`;
  }
  for (const name of saved.graph.initializers.keys()) {
    if (!now.graph.initializers.has(name)) return `parameter "${name}" was in the checkpoint's model and is absent now`;
  }
  return null;
}

/** Epochs and steps a checkpoint holds, from its header alone; undefined when there is no readable checkpoint. */
export function checkpointProgress(path: string): { epoch: number; step: number } | undefined {
  try {
    const file = openSafetensors(path);
    try {
      const md = file.metadata;
      if (md['format'] !== CHECKPOINT_FORMAT) return undefined;
      return { epoch: count(parseField(md, 'epoch', path), 'epoch', path), step: count(parseField(md, 'step', path), 'step', path) };
    } finally {
      file.close();
    }
  } catch {
    return undefined;
  }
}

function readModel(file: SafetensorsFile, order: unknown, path: string): Model {
  if (!Array.isArray(order) || !order.every((n) => typeof n === 'string'))
    throw new UserError(`${path}: checkpoint metadata "initializers" must be a list of names`);
  const model = decodeModel(need(file, MODEL_TENSOR, path).data as Uint8Array, { file: `${path} (${MODEL_TENSOR})`, dir: dirname(resolve(path)) });
  for (const name of order as string[]) model.graph.initializers.set(name, need(file, name, path));
  return model;
}

function readPrefixed(file: SafetensorsFile, prefix: string): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const { name } of file.tensors) {
    if (name.startsWith(prefix)) out.set(name.slice(prefix.length), file.readFloat32(name));
  }
  return out;
}

function need(file: SafetensorsFile, name: string, path: string): Tensor {
  if (!file.has(name)) throw new UserError(`${path}: checkpoint lacks tensor "${name}"; the file is damaged or was not written by modelsmith`);
  return file.readTensor(name);
}

function parseField(md: Readonly<Record<string, string>>, key: string, path: string): unknown {
  const text = md[key];
  if (text === undefined) throw new UserError(`${path}: checkpoint metadata lacks "${key}"`);
  try {
    return JSON.parse(text);
  } catch {
    throw new UserError(`${path}: checkpoint metadata "${key}" is not valid JSON`);
  }
}

function count(v: unknown, key: string, path: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 0)
    throw new UserError(`${path}: checkpoint metadata "${key}" must be a non-negative integer, got ${JSON.stringify(v)}`);
  return v as number;
}
