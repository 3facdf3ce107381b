/**
 * What an interrupted command has saved and how to go on: one entry per command that
 * keeps partial work (the mechanism is src/util/interrupt.ts). Evaluated when the signal
 * arrives, from the command's parsed options, so it reports what is on disk then.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkpointProgress } from '../autodiff/checkpoint.js';

type Options = Record<string, unknown>;

interface Saved {
  /** what is on disk, e.g. "checkpoint m.onnx.ckpt after epoch 3 of 10" */
  saved: string;
  /** how to continue: the same command, the same command with --resume, or start again */
  resume: 'same' | '--resume' | 'again';
}

const count = (dir: string, suffix: string): number => {
  try {
    return readdirSync(dir).filter((f) => f.endsWith(suffix) && !f.startsWith('.')).length;
  } catch {
    return 0;
  }
};

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

const RESUMABLE: Record<string, (o: Options) => Saved> = {
  train: (o) => {
    const ckpt = String(o['checkpoint'] ?? `${String(o['output'])}.ckpt`);
    const p = checkpointProgress(ckpt);
    return p
      ? { saved: `checkpoint ${ckpt} after epoch ${p.epoch}${o['epochs'] ? ` of ${String(o['epochs'])}` : ''}`, resume: '--resume' }
      : { saved: 'no checkpoint yet (one is written after every epoch)', resume: 'again' };
  },
  stitch: (o) => ({ saved: `${plural(count(join(String(o['output']), 'cells'), '.json'), 'finished cell')} in ${String(o['output'])}`, resume: 'same' }),
  'lineage-zoo': (o) => ({ saved: `${plural(count(String(o['output']), '.safetensors'), 'finished model')} in ${String(o['output'])}`, resume: 'same' }),
  'lego-experiment': (o) => {
    const file = join(String(o['output']), 'experiment.json');
    let rows = 0;
    try {
      const r = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      rows = Object.values(r)
        .filter(Array.isArray)
        .reduce((s, a) => s + (a as unknown[]).length, 0);
    } catch {
      /* none yet */
    }
    return rows ? { saved: `${plural(rows, 'finished row')} in ${file}`, resume: '--resume' } : { saved: 'no finished rows yet', resume: 'again' };
  },
  demo: (o) => ({
    saved: existsSync(String(o['output']))
      ? `the finished stitching cells and lineage-zoo models in ${String(o['output'])} are kept (models are retrained)`
      : 'nothing yet',
    resume: 'same',
  }),
  cka: () => ({ saved: 'nothing (CKA keeps no partial results)', resume: 'again' }),
};

/** Shell-quoted argv for a command line to copy. */
export function shellLine(args: readonly string[]): string {
  return args.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * The text after "interrupted by SIGINT; " for `command` run as `args` (argv after the
 * program name), or undefined for commands that keep nothing partial.
 */
export function interruptNote(command: string, opts: Options, args: readonly string[]): string | undefined {
  const entry = RESUMABLE[command];
  if (!entry) return undefined;
  const s = entry(opts);
  const again = s.resume === '--resume' && !args.includes('--resume') ? [...args, '--resume'] : args;
  const verb = s.resume === 'again' ? 'run again with' : 'resume with';
  return `saved: ${s.saved}; ${verb}: modelsmith ${shellLine(again)}`;
}
