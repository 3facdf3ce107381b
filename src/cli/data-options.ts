/** The data flags shared by every command that feeds images to a model. */
import type { Command } from 'commander';
import type { Dataset } from '../data/types.js';
import { openDataset } from '../data/resolve.js';
import { parseClasses } from '../data/classes.js';
import { parseNumberList, parsePositiveInt } from './parse.js';
import { UserError } from '../util/errors.js';

export interface DataFlags {
  data: string;
  split: string;
  classes?: string;
  mean?: number[];
  std?: number[];
  batch?: number;
}

export function addDataOptions(cmd: Command, defaultSplit = 'test'): Command {
  return cmd
    .requiredOption('--data <spec>', 'dataset: fashion-mnist | mnist | fashion-mnist-sample | cifar10:<dir> | cifar100:<dir> | folder:<dir> | <dir with IDX files>')
    .option('--split <split>', 'train or test', defaultSplit)
    .option('--classes <list>', 'only these dataset classes, e.g. 0-2,5')
    .option('--mean <list>', 'input normalisation mean, one value or one per channel (for models without normalisation metadata)', parseNumberList('--mean'))
    .option('--std <list>', 'input normalisation std, one value or one per channel', parseNumberList('--std'))
    .option('--batch <n>', 'batch size', parsePositiveInt('--batch'));
}

export async function openDataFromFlags(flags: DataFlags): Promise<{ ds: Dataset; classes?: number[] }> {
  if (flags.split !== 'train' && flags.split !== 'test') throw new UserError(`--split expects train or test, got "${flags.split}"`);
  const ds = await openDataset(flags.data, flags.split);
  return flags.classes !== undefined ? { ds, classes: parseClasses(flags.classes, ds.classes) } : { ds };
}
