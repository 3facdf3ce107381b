/** Flags several commands declare alike, each declared once here. */
import { Option } from 'commander';
import { parseChoice, parseInteger, parseNameList, parsePositiveInt } from './parse.js';
import { RANDOM_BATCHNORM } from '../stitch/controls.js';

/** --seed <n>: what the seed decides is the command's to say. */
export function seedOption(description: string, defaultSeed?: number): Option {
  const o = new Option('--seed <n>', description).argParser(parseInteger('--seed'));
  return defaultSeed === undefined ? o : o.default(defaultSeed);
}

/** --batch <n>: images per batch. */
export function batchOption(defaultSize?: number): Option {
  const o = new Option('--batch <n>', 'batch size').argParser(parsePositiveInt('--batch'));
  return defaultSize === undefined ? o : o.default(defaultSize);
}

/** --queue <url>: the command's `jobs` run on a Redis queue, by workers started elsewhere. */
export function queueOption(jobs: string): Option {
  return new Option(
    '--queue <url>',
    `run ${jobs} as jobs on a Redis queue (redis://host:6379, rediss://user:password@host); workers: modelsmith worker --queue <url>`,
  );
}

/** --random-bn: BatchNorm statistics of the random control networks (stitch and cka build the same ones). */
export function randomBatchNormOption(): Option {
  return new Option(
    '--random-bn <how>',
    'BatchNorm statistics of the random control networks: data (re-estimated on 2048 training images, as modelsmith stitch does) | init (0/1 as initialised)',
  )
    .argParser(parseChoice('--random-bn', RANDOM_BATCHNORM))
    .default('data');
}

/** --senders / --receivers: the cuts of a grid's rows (model A) or columns (model B), for stitch and cka alike. */
export function cutsOption(role: 'senders' | 'receivers'): Option {
  const help =
    role === 'senders'
      ? "A's cuts (rows), comma-separated cut points or tensor names (default: stem and every block)"
      : "B's cuts (columns), comma-separated (default: into every block and into the classifier)";
  return new Option(`--${role} <cuts>`, help).argParser(parseNameList);
}
