import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import type { SessionOptions } from '../../runtime/session.js';
import { Output, type GlobalFlags } from '../output.js';
import { parsePositiveInt } from '../parse.js';
import type { PlannedOutput } from '../../util/output-paths.js';
import { parseDataSpec } from '../../data/view.js';

export { checkOutputs } from '../../util/output-paths.js';

/** An output file or folder for checkOutputs, named by its flag in messages. */
export const outputFile = (path: string, flag = '-o'): PlannedOutput => ({ flag, path, kind: 'file' });
export const outputFolder = (path: string, flag = '-o'): PlannedOutput => ({ flag, path, kind: 'folder' });

/**
 * The local folder a --data spec names (idx:<dir>, folder:<dir>, cifar10:<dir>, <dir>): an
 * input too, so that no output folder is written into a dataset (an image-folder dataset
 * would gain a class). Dataset names (fashion-mnist, ...) name no local folder.
 */
export function dataInputs(...specs: (string | undefined)[]): string[] {
  return specs.flatMap((spec) => {
    let base: string;
    try {
      base = parseDataSpec(spec ?? '').base; // without the view the input flags fold in (--resize, ...)
    } catch {
      return []; // a malformed spec: opening the data says what is wrong
    }
    const colon = base.indexOf(':');
    const path = colon > 0 ? base.slice(colon + 1) : base;
    return path && existsSync(path) ? [path] : [];
  });
}

export interface Globals extends GlobalFlags {
  threads?: string;
  provider?: string;
}

/** Output and runtime options from the global flags (which may also follow the command). */
export function globals(cmd: Command): { out: Output; session: SessionOptions } {
  const g = cmd.optsWithGlobals() as Globals;
  const session: SessionOptions = {};
  if (g.threads !== undefined) session.threads = parsePositiveInt('--threads')(g.threads);
  if (g.provider) session.provider = g.provider;
  return { out: new Output(g), session };
}

/** Lets --json/--quiet be written after the command name too. */
export function withOutputFlags(cmd: Command): Command {
  return cmd.option('--json', 'print only a machine-readable JSON result on stdout').option('--quiet', 'print nothing but errors');
}
