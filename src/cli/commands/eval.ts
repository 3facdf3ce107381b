import type { Command } from 'commander';
import { openModel } from '../../onnx/open.js';
import { evalText, evaluate } from '../../runtime/evaluate.js';
import { addDataOptions, openDataFromFlags, type DataFlags } from '../data-options.js';
import { globals, withOutputFlags } from './common.js';

export function registerEval(program: Command): void {
  const cmd = withOutputFlags(program.command('eval <model>').description('top-1 and per-class accuracy of a classifier on a dataset'));
  addDataOptions(cmd).action(async (file: string, flags: DataFlags, c: Command) => {
    const { out, session } = globals(c);
    const model = openModel(file);
    const { ds, classes } = await openDataFromFlags(flags);
    const r = await evaluate(model, ds, {
      ...session,
      file,
      label: 'eval',
      ...(classes ? { classes } : {}),
      ...(flags.mean ? { mean: flags.mean } : {}),
      ...(flags.std ? { std: flags.std } : {}),
      ...(flags.batch ? { batchSize: flags.batch } : {}),
    });
    out.line(evalText(r, ds, file));
    out.json({ accuracy: r.accuracy, perClass: r.perClass, samples: r.samples, data: r.data });
  });
}
