import type { Command } from 'commander';
import { openModel } from '../../onnx/open.js';
import { evaluate } from '../../runtime/evaluate.js';
import { addDataOptions, openDataFromFlags, type DataFlags } from '../data-options.js';
import { globals, withOutputFlags } from './common.js';
import { pct, table } from '../output.js';

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
    out.line(`${file}: top-1 accuracy ${pct(r.accuracy)} on ${r.samples} ${ds.split} images (${r.correct} correct)`);
    out.line(`normalisation: ${r.normalization}`);
    out.line(table([['class', 'name', 'accuracy'], ...Object.entries(r.perClass).map(([k, v]) => [k, ds.classNames?.[Number(k)] ?? '', pct(v)])]));
    out.json({ accuracy: r.accuracy, perClass: r.perClass, samples: r.samples, data: r.data });
  });
}
