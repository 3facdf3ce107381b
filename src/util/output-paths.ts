/**
 * Output paths checked before any work: every command that writes files derived from its
 * inputs names its outputs here first, so that a bad path is one line at once (not a
 * stack trace after minutes of work) and no input is ever overwritten.
 *
 * @example
 *   checkOutputs([{ flag: '-o', path: 'part.onnx', kind: 'file' }], ['model.onnx']);
 *   checkOutputs([{ flag: '-o', path: 'grid', kind: 'folder' }], ['a.onnx', 'b.onnx']);
 */
import { closeSync, openSync, realpathSync, rmSync, statSync, type Stats } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { UserError } from './errors.js';

export interface PlannedOutput {
  /** how the user named it, for messages: '-o', '--checkpoint', ... */
  flag: string;
  path: string;
  kind: 'file' | 'folder';
}

/**
 * Refuses (UserError) an output path that is empty, names a folder where a file is
 * expected or a file where a folder is expected, lies under a file or in a folder that
 * cannot be written, is the same file as an input (resolved through symlinks and hard
 * links: same device and inode), is a folder holding an input, or is named twice.
 * Creates nothing (the write probe removes its file at once).
 */
export function checkOutputs(outputs: readonly PlannedOutput[], inputs: readonly string[] = []): void {
  const ins = inputs.map((p) => ({ path: p, stat: statOf(p) })).filter((i): i is { path: string; stat: Stats } => i.stat !== undefined);
  const seen = new Map<string, PlannedOutput>();
  for (const o of outputs) {
    checkShape(o);
    const stat = statOf(o.path, o);
    const abs = resolve(o.path);
    const twice = seen.get(abs);
    if (twice) throw new UserError(`${o.flag} ${o.path} is also given as ${twice.flag}; each output needs its own path`);
    seen.set(abs, o);
    if (o.kind === 'file') {
      const same = stat && ins.find((i) => sameFile(i.stat, stat));
      if (same) throw new UserError(`${o.flag} ${o.path} is the input ${same.path}; inputs are never overwritten: write to another file`);
      probeWritable(o, dirname(abs));
    } else {
      const held = ins.find((i) => holds(stat, i.path, i.stat));
      if (held) throw new UserError(`${o.flag} ${o.path} holds the input ${held.path}; inputs are never overwritten: write to another folder`);
      probeWritable(o, abs);
    }
  }
}

function checkShape(o: PlannedOutput): void {
  if (o.path.trim() === '') throw new UserError(`${o.flag} is empty: expected a ${o.kind} path`);
  if (o.path.includes('\0')) throw new UserError(`${o.flag} contains a NUL character`);
  if (o.kind === 'file' && (o.path.endsWith('/') || o.path.endsWith(sep) || ['.', '..'].includes(basename(o.path)))) {
    throw new UserError(`${o.flag} ${o.path} names a folder; expected a file path such as ${join(o.path, 'out.onnx')}`);
  }
}

/** stat(path) following symlinks; undefined when nothing is there. Other failures are the user's path problem. */
function statOf(path: string, o?: PlannedOutput): Stats | undefined {
  try {
    const s = statSync(path);
    if (o?.kind === 'file' && s.isDirectory()) throw new UserError(`${o.flag} ${o.path} is a folder; expected a file path such as ${join(o.path, 'out.onnx')}`);
    if (o?.kind === 'folder' && !s.isDirectory()) throw new UserError(`${o.flag} ${o.path} is a file; expected a folder`);
    // a device, pipe or socket (-o /dev/null): an atomic write would replace it with a file
    if (o?.kind === 'file' && !s.isFile()) throw new UserError(`${o.flag} ${o.path} is not a regular file; expected a file path such as out.onnx`);
    return s;
  } catch (e) {
    if (e instanceof UserError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (!o) return undefined;
    if (code === 'ENOTDIR') throw new UserError(`${o.flag} ${o.path}: a part of the path is a file, not a folder`);
    throw new UserError(`${o.flag} ${o.path} cannot be used (${code ?? (e as Error).message})`);
  }
}

const sameFile = (a: Stats, b: Stats): boolean => a.dev === b.dev && a.ino === b.ino;

/**
 * Whether folder `dir` (stat `ds`, if it exists) is the input or one of its ancestors,
 * both along the path as given and along the real path (through symlinks).
 */
function holds(ds: Stats | undefined, input: string, is: Stats): boolean {
  if (!ds) return false;
  if (sameFile(ds, is)) return true;
  const paths = new Set([resolve(input)]);
  try {
    paths.add(realpathSync(input));
  } catch {
    /* only the path as given */
  }
  for (let p of paths) {
    for (let up = dirname(p); up !== p; p = up, up = dirname(p)) {
      const s = statOf(up);
      if (s && sameFile(s, ds)) return true;
    }
  }
  return false;
}

/**
 * The nearest existing folder at or above `dir` must be a folder we can create files in:
 * tried by creating and removing a probe file, since access() says yes to root even on
 * /proc or a read-only mount.
 */
function probeWritable(o: PlannedOutput, dir: string): void {
  let d = dir;
  for (;;) {
    const s = statOf(d);
    if (s) {
      if (!s.isDirectory()) throw new UserError(`${o.flag} ${o.path}: ${d} is a file, not a folder`);
      break;
    }
    const up = dirname(d);
    if (up === d) break;
    d = up;
  }
  const probe = join(d, `.modelsmith-probe-${process.pid}-${Math.random().toString(36).slice(2)}`);
  try {
    closeSync(openSync(probe, 'wx'));
  } catch (e) {
    throw new UserError(`${o.flag} ${o.path}: cannot create files in ${d} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  rmSync(probe, { force: true });
}
