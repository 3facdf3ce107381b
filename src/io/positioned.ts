import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { UserError } from '../util/errors.js';

/** Opens a regular file for reading (`what` names it in errors, e.g. "safetensors file"); the caller closes it. */
export function openRegularFile(path: string, what: string): number {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new UserError(`cannot open ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new UserError(`${path} is not a file (expected a ${what})`);
  }
  return fd;
}

/**
 * Fills `target` from `fd` at byte `position`. One readSync may return less than asked
 * (the OS caps a single read near 2 GiB), so it loops; a short file is an error.
 */
export function readFully(fd: number, target: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < target.length) {
    const n = readSync(fd, target, done, target.length - done, position + done);
    if (n === 0) throw new UserError(`${file}: ended after ${position + done} bytes while reading ${target.length} bytes at ${position}: truncated file?`);
    done += n;
  }
}
