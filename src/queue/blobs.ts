/**
 * Content-addressed blobs in Redis: how models travel between coordinator and workers
 * without a shared filesystem. A blob is stored once under its SHA-256 (in chunks, since
 * a Redis string holds at most 512 MiB), and whoever reads it checks the declared size
 * against its own limit before reading anything and the hash before using it.
 *
 * Keys: <prefix>blob:<sha256> = "<bytes> <chunks>" (written last, so it marks a complete
 * blob) and <prefix>blob:<sha256>:<i> for the chunks.
 *
 * @example
 *   const store = new BlobStore(redis);
 *   const ref = await store.putFile('a.onnx');              // { sha256, bytes }
 *   const file = await store.fetchTo(ref, 'work/blobs', 2 ** 30);  // verified copy
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { OptionError, UserError } from '../util/errors.js';

export interface BlobRef {
  sha256: string;
  bytes: number;
}

export const CHUNK_BYTES = 16 * 2 ** 20;
export const KEY_PREFIX = 'modelsmith:';

const SHA = /^[0-9a-f]{64}$/;

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A blob reference from an untrusted source, checked for shape and against a size limit. */
export function checkBlobRef(v: unknown, what: string, maxBytes: number): BlobRef {
  const r = v as Partial<BlobRef> | null;
  if (typeof r !== 'object' || r === null || Array.isArray(r)) {
    throw new UserError(`${what} must be a content-addressed blob reference {sha256, bytes}, got ${describe(v)}`);
  }
  const extra = Object.keys(r).find((k) => k !== 'sha256' && k !== 'bytes');
  if (extra) throw new UserError(`${what} has an unexpected field "${extra}" (a blob reference is {sha256, bytes})`);
  if (typeof r.sha256 !== 'string' || !SHA.test(r.sha256)) throw new UserError(`${what}.sha256 must be 64 lowercase hex digits, got ${describe(r.sha256)}`);
  if (typeof r.bytes !== 'number' || !Number.isSafeInteger(r.bytes) || r.bytes < 0)
    throw new UserError(`${what}.bytes must be a non-negative integer, got ${describe(r.bytes)}`);
  if (r.bytes > maxBytes) {
    throw new OptionError(
      (o) => `${what} declares ${r.bytes} bytes, more than the limit of ${maxBytes} bytes (${(maxBytes / 2 ** 20).toFixed(0)} MiB, ${o('maxBlobMb')})`,
    );
  }
  return { sha256: r.sha256, bytes: r.bytes };
}

const describe = (v: unknown): string => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

export class BlobStore {
  constructor(
    readonly redis: Redis,
    readonly prefix = KEY_PREFIX,
  ) {}

  private key(sha: string, chunk?: number): string {
    return `${this.prefix}blob:${sha}${chunk === undefined ? '' : `:${chunk}`}`;
  }

  async has(sha: string): Promise<boolean> {
    return (await this.redis.exists(this.key(sha))) === 1;
  }

  async putFile(path: string): Promise<BlobRef> {
    return this.putBytes(readFileSync(path));
  }

  /** Stores bytes once (a blob already there is not sent again). */
  async putBytes(bytes: Uint8Array): Promise<BlobRef> {
    const ref = { sha256: sha256(bytes), bytes: bytes.byteLength };
    if (await this.has(ref.sha256)) return ref;
    const chunks = Math.max(1, Math.ceil(bytes.byteLength / CHUNK_BYTES));
    for (let i = 0; i < chunks; i++) {
      const part = Buffer.from(bytes.buffer, bytes.byteOffset + i * CHUNK_BYTES, Math.min(CHUNK_BYTES, bytes.byteLength - i * CHUNK_BYTES));
      await this.redis.set(this.key(ref.sha256, i), part);
    }
    await this.redis.set(this.key(ref.sha256), `${ref.bytes} ${chunks}`);
    return ref;
  }

  /**
   * Reads a blob chunk by chunk into `sink`, refusing before any read whatever does not
   * match the reference (stored size, chunk count, chunk sizes) and afterwards a content
   * whose hash differs. `ref` must already be checked against the reader's size limit.
   */
  private async read(ref: BlobRef, what: string, sink: (part: Buffer) => void): Promise<void> {
    const meta = await this.redis.get(this.key(ref.sha256));
    if (meta === null) throw new UserError(`${what}: blob ${ref.sha256.slice(0, 12)}... is not in the queue's store (was the queue cleared?)`);
    const m = /^(\d+) (\d+)$/.exec(meta);
    const chunks = Math.max(1, Math.ceil(ref.bytes / CHUNK_BYTES));
    if (!m || Number(m[1]) !== ref.bytes || Number(m[2]) !== chunks) {
      throw new UserError(
        `${what}: blob ${ref.sha256.slice(0, 12)}... is stored as "${meta.slice(0, 40)}", not the ${ref.bytes} bytes the job declares; refusing it`,
      );
    }
    const hash = createHash('sha256');
    for (let i = 0; i < chunks; i++) {
      const expected = Math.min(CHUNK_BYTES, ref.bytes - i * CHUNK_BYTES);
      const len = await this.redis.strlen(this.key(ref.sha256, i));
      if (len !== expected)
        throw new UserError(`${what}: chunk ${i} of blob ${ref.sha256.slice(0, 12)}... holds ${len} bytes, expected ${expected}; refusing it`);
      const part = await this.redis.getBuffer(this.key(ref.sha256, i));
      if (!part || part.byteLength !== expected) throw new UserError(`${what}: chunk ${i} of blob ${ref.sha256.slice(0, 12)}... changed while it was read`);
      hash.update(part);
      sink(part);
    }
    const got = hash.digest('hex');
    if (got !== ref.sha256)
      throw new UserError(`${what}: blob ${ref.sha256.slice(0, 12)}... failed verification: its content hashes to ${got.slice(0, 12)}...; refusing it`);
  }

  /** The verified bytes of a blob. */
  async get(ref: BlobRef, what: string): Promise<Buffer> {
    const parts: Buffer[] = [];
    await this.read(ref, what, (p) => parts.push(p));
    return Buffer.concat(parts);
  }

  /**
   * A verified copy of the blob in `dir` (named by its hash; reused when already there).
   * Bytes go to a temporary file in `dir` that is renamed only after the hash matched.
   */
  async fetchTo(ref: BlobRef, dir: string, what: string): Promise<string> {
    const path = join(dir, ref.sha256);
    if (existsSync(path)) return path;
    mkdirSync(dir, { recursive: true });
    const tmp = join(dir, `.tmp-${ref.sha256}-${process.pid}-${Date.now()}`);
    const fd = openSync(tmp, 'w');
    let ok = false;
    try {
      await this.read(ref, what, (p) => {
        writeSync(fd, p);
      });
      fsyncSync(fd);
      ok = true;
    } finally {
      closeSync(fd);
      if (!ok) rmSync(tmp, { force: true });
    }
    renameSync(tmp, path);
    return path;
  }

  /** Deletes every blob (queue clear). */
  async clear(): Promise<number> {
    let n = 0;
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.prefix}blob:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) n += await this.redis.del(...keys);
    } while (cursor !== '0');
    return n;
  }
}
