import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Appends bytes to the file being written. */
export type Sink = (bytes: Uint8Array) => void;

/**
 * writeFileAtomic (src/util/atomic.ts) for outputs too large to build as one buffer:
 * `produce` streams the content into a temp file in the same folder, which is fsynced
 * and renamed over `path`. Readers see the old file or the whole new one; a failure
 * removes the temp file, and a killed process leaves at most a stray temp file.
 */
export function writeStreamAtomic(path: string, produce: (sink: Sink) => void): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.tmp-${basename(path)}-${process.pid}-${Date.now()}`);
  const fd = openSync(tmp, 'w');
  let open = true;
  try {
    produce((bytes) => writeAll(fd, bytes));
    fsyncSync(fd);
    closeSync(fd);
    open = false;
    renameSync(tmp, path);
  } catch (e) {
    if (open) closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  syncFolder(dir);
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
}

/** Makes the rename itself durable across a power cut; not every platform allows it. */
function syncFolder(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* best effort */
  }
}
