/**
 * Where a result came from: the versions, machine, command line, data and git commit of
 * the run that produced it. One block, attached to every `--json` result (cli/output.ts)
 * and every result file the commands write (writeResultJson), and shown in every section
 * of a report page.
 *
 * The command line and the datasets and thread counts actually used are recorded as the
 * run goes (recordCommand by the CLI, noteData when a dataset is opened, noteThreads when
 * an ONNX Runtime session is made), so no command has to pass them along.
 *
 * @example
 *   writeResultJson('out/results.json', { accuracy: 0.91 });   // { accuracy: 0.91, provenance: { modelsmith: '0.1.0', ... } }
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from './paths.js';
import { writeJsonAtomic } from './atomic.js';

export interface Provenance {
  modelsmith: string;
  /** onnxruntime-node's version (null when it cannot be found) */
  onnxruntime: string | null;
  node: string;
  cpu: { model: string; cores: number };
  /** ONNX Runtime intra-op threads of the sessions this run made (empty: it ran none) */
  threads: number[];
  /** the command line, as typed (shell-quoted where needed) */
  command: string;
  cwd: string;
  /** the datasets the run opened (their source lines) */
  data: string[];
  /** the checkout's commit when modelsmith runs from a git checkout; dirty: tracked files differ from it */
  git: { commit: string; dirty: boolean } | null;
  /** when the block was made (ISO 8601) */
  date: string;
}

const used = { command: null as string[] | null, data: new Set<string>(), threads: new Set<number>() };

/** The CLI's arguments (after `modelsmith`); starts a new record of the data and threads used. */
export function recordCommand(args: readonly string[]): void {
  used.command = ['modelsmith', ...args];
  used.data.clear();
  used.threads.clear();
}

/** A dataset was opened (its source line, e.g. "fashion-mnist test split: 1000 images from ..."). */
export function noteData(source: string): void {
  used.data.add(source);
}

/** An ONNX Runtime session was made with this many intra-op threads. */
export function noteThreads(threads: number): void {
  used.threads.add(threads);
}

let fixed: Pick<Provenance, 'modelsmith' | 'onnxruntime' | 'node' | 'cpu' | 'git'> | undefined;

/** The provenance of the current run, now. `fallbackData` names the data when no dataset was opened in this process. */
export function provenance(fallbackData?: string): Provenance {
  fixed ??= { modelsmith: packageVersion(), onnxruntime: onnxRuntimeVersion(), node: process.version, cpu: cpuInfo(), git: gitState() };
  const data = [...used.data];
  return {
    ...fixed,
    threads: [...used.threads].sort((a, b) => a - b),
    command: (used.command ?? ['node', ...process.argv.slice(1)]).map(shellQuote).join(' '),
    cwd: process.cwd(),
    data: data.length || fallbackData === undefined ? data : [fallbackData],
    date: new Date().toISOString(),
  };
}

/** The value with a `provenance` field (objects), or `{ result, provenance }` (anything else). */
export function withProvenance(value: unknown): Record<string, unknown> {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const data = (value as { data?: unknown }).data;
    return { ...(value as Record<string, unknown>), provenance: provenance(typeof data === 'string' ? data : undefined) };
  }
  return { result: value, provenance: provenance() };
}

/** A command's result file: the value with its provenance, written atomically. */
export function writeResultJson(path: string, value: unknown): void {
  writeJsonAtomic(path, withProvenance(value));
}

function packageVersion(): string {
  try {
    return String((JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: unknown }).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
}

function onnxRuntimeVersion(): string | null {
  // Its package.json rather than the module: reading a version must not load the native runtime.
  try {
    const file = createRequire(join(packageRoot(), 'package.json')).resolve('onnxruntime-node/package.json');
    return String((JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version ?? null);
  } catch {
    return null;
  }
}

function cpuInfo(): Provenance['cpu'] {
  const list = cpus();
  return { model: list[0]?.model.trim() || 'unknown', cores: list.length };
}

function gitState(): Provenance['git'] {
  const root = packageRoot();
  if (!existsSync(join(root, '.git'))) return null;
  const git = (args: string[]): string =>
    execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).trim();
  try {
    const commit = git(['rev-parse', 'HEAD']);
    if (!/^[0-9a-f]{40,64}$/.test(commit)) return null;
    let dirty = false;
    try {
      dirty = git(['status', '--porcelain', '--untracked-files=no']) !== '';
    } catch {
      /* the commit alone is still worth recording */
    }
    return { commit, dirty };
  } catch {
    return null;
  }
}

function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
