/**
 * The CLI run inside the test process (no child process: milliseconds per command), with
 * stdout and stderr captured, and a tiny IDX dataset so that whatever a command does on
 * it takes a moment. ONNX Runtime's own native log cannot be captured this way (it writes
 * to fd 2 directly): tests about it use runCli (test/helpers/cli.ts).
 */
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { main } from '../../src/cli/program.js';
import type { CliResult } from '../helpers/cli.js';
import { Rng } from '../../src/util/random.js';
import { captureOutput } from '../../src/util/sinks.js';

/** Runs `modelsmith <args>` in this process, its output captured; calls must not overlap. */
export async function runInProcess(args: string[]): Promise<CliResult> {
  const r = await captureOutput(() => main(['node', 'modelsmith', ...args]));
  return { code: r.value, stdout: r.out, stderr: r.err };
}

/**
 * A folder of IDX files (gzipped, as Fashion-MNIST ships) with `train` and `test` random
 * 1x28x28 images, labels cycling through 10 classes. The folder's name becomes the
 * dataset's name, so it should not be a known one (fashion-mnist, mnist).
 */
export function tinyIdx(dir: string, train = 48, test = 20, seed = 1): string {
  mkdirSync(dir, { recursive: true });
  const rng = new Rng(seed);
  const write = (prefix: string, n: number): void => {
    const images = Buffer.alloc(16 + n * 784);
    images.writeUInt32BE(0x803, 0);
    images.writeUInt32BE(n, 4);
    images.writeUInt32BE(28, 8);
    images.writeUInt32BE(28, 12);
    const labels = Buffer.alloc(8 + n);
    labels.writeUInt32BE(0x801, 0);
    labels.writeUInt32BE(n, 4);
    for (let i = 0; i < n; i++) {
      const label = i % 10;
      labels[8 + i] = label;
      // a class-dependent stripe plus noise: learnable, so training moves
      for (let p = 0; p < 784; p++) images[16 + i * 784 + p] = Math.floor(rng.uniform(0, 80) + (Math.floor(p / 28) % 10 === label ? 170 : 0));
    }
    writeFileSync(join(dir, `${prefix}-images-idx3-ubyte.gz`), gzipSync(images));
    writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte.gz`), gzipSync(labels));
  };
  write('train', train);
  write('t10k', test);
  return dir;
}

/** Every file under `dir` (relative paths) with a hash of its bytes: compare before and after a command. */
export function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const s = statSync(p, { throwIfNoEntry: false });
      if (!s) continue;
      if (s.isDirectory()) {
        out.set(relative(dir, p) + '/', '');
        walk(p);
      } else if (!s.isFile()) {
        out.set(relative(dir, p), 'not a regular file'); // a FIFO would block a read
      } else {
        out.set(relative(dir, p), createHash('sha256').update(readFileSync(p)).digest('hex'));
      }
    }
  };
  walk(dir);
  return out;
}

/** The differences between two snapshots, for assertion messages ([] when equal). */
export function changes(before: Map<string, string>, after: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of after)
    if (!before.has(k)) out.push(`new ${k}`);
    else if (before.get(k) !== v) out.push(`changed ${k}`);
  for (const k of before.keys()) if (!after.has(k)) out.push(`removed ${k}`);
  return out;
}
