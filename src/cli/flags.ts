/**
 * The one table from library option keys to CLI flags. Library errors name options as the
 * TypeScript API spells them (OptionError in src/util/errors.ts); the CLI prints the same
 * message with the flag a user typed. A key becomes its kebab-case flag (`trainLimit` ->
 * `--train-limit`; of a dotted path such as `view.labels` the last part, `--labels`) unless
 * the flag is spelt differently, which FLAG_NAMES records.
 */
import { messageIn, type OptionNamer } from '../util/errors.js';

/** Options whose flag is not their key in kebab-case. */
const FLAG_NAMES: Readonly<Record<string, string>> = {
  out: '-o',
  outDir: '-o',
  batchSize: '--batch',
  samplesPerClass: '--samples',
  scaleSamplesPerClass: '--scale-samples',
  memoryMiB: '--memory',
  url: '--queue',
  listCuts: 'modelsmith stitch --list-cuts',
  dataDirs: '--data-dir',
  sweep: '--alphas/--betas',
  clipNorm: '--clip',
  randomBatchNorm: '--random-bn',
  bnBefore: '--bn before',
  bnAfter: '--bn after',
};

const kebab = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** The flag of a library option key: `trainLimit` -> `--train-limit`, `batchSize` -> `--batch`. */
export function flagName(option: string): string {
  return FLAG_NAMES[option] ?? `--${kebab(option.slice(option.lastIndexOf('.') + 1))}`;
}

/** Names an option as the command line spells it: `--flat class`; a switch by its flag (`true`) or its negation (`false`: `--no-scale`). */
export const flagNamer: OptionNamer = (option, value) => {
  if (value === undefined || value === true) return flagName(option);
  if (value === false) return flagName(option).replace(/^--/, '--no-');
  return `${flagName(option)} ${value}`;
};

/** An error's message for the command line: an OptionError names flags; any other its own message. */
export function cliMessage(e: Error): string {
  return messageIn(e, flagNamer);
}
