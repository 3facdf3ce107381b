/**
 * Sharded safetensors checkpoints: `model.safetensors.index.json` maps each tensor to a
 * shard file in the same folder. The index is untrusted input: a shard name must not
 * lead outside that folder (no `..`, no absolute path, no symlink pointing out).
 */
import { closeSync, fstatSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, win32 } from 'node:path';
import type { Tensor } from '../onnx/types.js';
import { UserError } from '../util/errors.js';
import { MAX_HEADER_BYTES, type TensorInfo } from './safetensors-format.js';
import { openSafetensors, type SafetensorsFile } from './safetensors-file.js';
import { openRegularFile, readFully } from './positioned.js';

interface IndexJson {
  metadata: Record<string, string>;
  weightMap: Map<string, string>;
}

export function openSafetensorsIndex(path: string): SafetensorsFile {
  const index = readIndex(path);
  const folder = realFolder(path);
  const shards = new Map<string, SafetensorsFile>();
  try {
    for (const shard of new Set(index.weightMap.values())) {
      shards.set(shard, openSafetensors(shardPath(folder, shard, path)));
    }
    const owners = new Map<string, SafetensorsFile>();
    for (const [tensor, shard] of index.weightMap) {
      const file = shards.get(shard)!;
      if (!file.has(tensor)) throw new UserError(`${path}: weight_map puts "${tensor}" in ${shard}, which has no such tensor`);
      owners.set(tensor, file);
    }
    return new ShardedFile(path, index.metadata, owners, [...shards.values()]);
  } catch (e) {
    for (const f of shards.values()) f.close();
    throw e;
  }
}

function readIndex(path: string): IndexJson {
  const raw = parseJson(readSmallFile(path), path);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UserError(`${path}: expected a JSON object with "weight_map"`);
  const { metadata, weight_map: map } = raw as Record<string, unknown>;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new UserError(`${path}: "weight_map" must be an object mapping tensor names to shard files`);
  }
  const weightMap = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(map)) {
    if (typeof shard !== 'string' || shard === '') throw new UserError(`${path}: weight_map entry for "${tensor}" must be a shard file name`);
    weightMap.set(tensor, shard);
  }
  return { metadata: stringValues(metadata), weightMap };
}

/** Index metadata holds numbers too (e.g. total_size); the interface offers strings. */
function stringValues(v: unknown): Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return {};
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, typeof x === 'string' ? x : JSON.stringify(x)]));
}

function readSmallFile(path: string): Uint8Array {
  const fd = openRegularFile(path, 'safetensors index');
  try {
    const size = fstatSync(fd).size;
    if (size > MAX_HEADER_BYTES) throw new UserError(`${path}: ${size} bytes is too large for a safetensors index`);
    const buf = new Uint8Array(size);
    readFully(fd, buf, 0, path);
    return buf;
  } finally {
    closeSync(fd);
  }
}

function parseJson(bytes: Uint8Array, path: string): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw new UserError(`${path}: not valid JSON (${(e as Error).message}): expected a safetensors index`);
  }
}

function realFolder(indexPath: string): string {
  try {
    return realpathSync(dirname(resolve(indexPath)));
  } catch {
    throw new UserError(`cannot open safetensors index ${indexPath}: its folder does not exist`);
  }
}

function shardPath(folder: string, shard: string, indexPath: string): string {
  const parts = shard.split(/[\\/]/);
  if (isAbsolute(shard) || win32.isAbsolute(shard) || parts.includes('..') || shard.includes('\0')) {
    throw new UserError(`${indexPath}: shard "${shard}" must be a file name inside the index's folder (no absolute path, no "..")`);
  }
  let real: string;
  try {
    real = realpathSync(join(folder, shard));
  } catch {
    throw new UserError(`${indexPath}: shard file "${shard}" not found next to the index`);
  }
  const rel = relative(folder, real);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
    throw new UserError(`${indexPath}: shard "${shard}" resolves to ${real}, outside the index's folder (symlink?)`);
  }
  return real;
}

class ShardedFile implements SafetensorsFile {
  readonly tensors: readonly TensorInfo[];

  constructor(
    readonly path: string,
    readonly metadata: Readonly<Record<string, string>>,
    private readonly owners: Map<string, SafetensorsFile>,
    private readonly shards: SafetensorsFile[],
  ) {
    this.tensors = [...owners].map(([name, f]) => f.info(name));
  }

  has(name: string): boolean {
    return this.owners.has(name);
  }

  info(name: string): TensorInfo {
    return this.owner(name).info(name);
  }

  readTensor(name: string): Tensor {
    return this.owner(name).readTensor(name);
  }

  readFloat32(name: string): Float32Array {
    return this.owner(name).readFloat32(name);
  }

  readFloat32Into(name: string, target: Float32Array): void {
    this.owner(name).readFloat32Into(name, target);
  }

  readFloat32SliceInto(name: string, offset: number, target: Float32Array): void {
    this.owner(name).readFloat32SliceInto(name, offset, target);
  }

  close(): void {
    for (const s of this.shards) s.close();
  }

  private owner(name: string): SafetensorsFile {
    const f = this.owners.get(name);
    if (!f) throw new UserError(`${this.path}: no tensor named "${name}" in the weight_map`);
    return f;
  }
}
