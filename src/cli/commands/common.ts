import type { Command } from 'commander';
import type { SessionOptions } from '../../runtime/session.js';
import { Output, type GlobalFlags } from '../output.js';
import { parsePositiveInt } from '../parse.js';
import type { PlannedOutput } from '../../util/output-paths.js';

export { checkOutputs } from '../../util/output-paths.js';

/** An output file or folder for checkOutputs, named by its flag in messages. */
export const outputFile = (path: string, flag = '-o'): PlannedOutput => ({ flag, path, kind: 'file' });
export const outputFolder = (path: string, flag = '-o'): PlannedOutput => ({ flag, path, kind: 'folder' });

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
