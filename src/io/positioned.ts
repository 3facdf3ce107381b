import { readSync } from 'node:fs';
import { UserError } from '../util/errors.js';

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
