import { addInputOptions } from '../data-options.js';
import { Option, type Command } from 'commander';
import { openModel } from '../../onnx/open.js';
import { openDataset } from '../../data/resolve.js';
import { parseClasses } from '../../data/classes.js';
import { disassembleText, runDisassembleJob } from '../../lego/disassemble-job.js';
import { flagNamer } from '../flags.js';
import { RECALIBRATION_MODES, type RecalibrationMode } from '../../lego/recalibrate.js';
import type { FlattenMode } from '../../lego/masks.js';
import type { SampleRanking } from '../../lego/samples.js';
import {
  DEFAULT_ACCURACY_GUARD,
  DEFAULT_CLASS_DROP,
  DEFAULT_FLATTEN,
  DEFAULT_RECALIBRATION_SAMPLES,
  DEFAULT_THRESHOLDS,
  DEFAULT_VALIDATION_PER_CLASS,
  type Thresholds,
} from '../../lego/types.js';
import { checkOutputs, dataInputs, globals, outputFile, withOutputFlags } from './common.js';
import { parseChoice, parseFraction, parseInteger, parsePositiveInt } from '../parse.js';
import { UserError } from '../../util/errors.js';
import { batchOption, seedOption } from '../options.js';
import { flagName } from '../flags.js';
import { definedProps } from '../../util/objects.js';

interface DisassembleFlags {
  data: string;
  task: string;
  samples: number;
  alphaConv?: number;
  betaConv?: number;
  alphaLinear?: number;
  betaLinear?: number;
  batch?: number;
  unbalanced?: string;
  seed: number;
  mean?: number[];
  std?: number[];
  masks?: string;
  recalibrate: RecalibrationMode;
  recalSamples: number;
  flatten: FlattenMode;
  ranking: SampleRanking;
  holdout: number;
  classDrop: number;
  maxDrop?: number;
  guard: number;
  output: string;
}

const threshold = parseFraction;

/** What each mask threshold decides; the flag is its key's (cli/flags.ts), the default the library's. */
const THRESHOLD_HELP: Readonly<Record<keyof Thresholds, string>> = {
  alphaConv: 'conv contribution threshold',
  betaConv: 'conv input-mask threshold',
  alphaLinear: 'linear contribution threshold',
  betaLinear: 'linear input-mask threshold',
};

function thresholdOption(key: keyof Thresholds): Option {
  const flag = flagName(key);
  return new Option(`${flag} <x>`, `${THRESHOLD_HELP[key]} (default ${DEFAULT_THRESHOLDS[key]})`).argParser(threshold(flag));
}

/** "5,20" -> { lo: 5, hi: 20 } */
export function parseUnbalanced(text: string, seed: number): { lo: number; hi: number; seed: number } {
  const m = /^\s*(\d+)\s*,\s*(\d+)\s*$/.exec(text);
  if (!m) throw new UserError(`--unbalanced expects lo,hi (sample counts per class, e.g. 5,50), got "${text}"`);
  const lo = Number(m[1]);
  const hi = Number(m[2]);
  if (lo < 1 || hi < lo) throw new UserError(`--unbalanced ${text}: expected 1 <= lo <= hi`);
  return { lo, hi, seed };
}

export function registerDisassemble(program: Command): void {
  addInputOptions(
    withOutputFlags(
      program
        .command('disassemble <model>')
        .description('cut the sub-network for a task (a set of classes) out of a classifier as a smaller standalone model (Model LEGO)'),
    ),
  )
    .requiredOption('--data <spec>', 'dataset: the train split chooses representative samples, the test split scores base and component')
    .requiredOption('--task <classes>', "the task's classes, e.g. 0-2 or 1,5,7")
    .option('--samples <n>', 'representative samples per class (most confident training images)', parsePositiveInt('--samples'), 50)
    .addOption(thresholdOption('alphaConv'))
    .addOption(thresholdOption('betaConv'))
    .addOption(thresholdOption('alphaLinear'))
    .addOption(thresholdOption('betaLinear'))
    .addOption(batchOption())
    .option('--unbalanced <lo,hi>', 'a random number of samples per class in [lo, hi] instead of --samples')
    .addOption(seedOption('seed for --unbalanced, the held-out images and the recalibration images', 0))
    .option(
      '--recalibrate <mode>',
      "affine: map each layer that lost inputs to the parent's per-channel output statistics (works on BatchNorm-folded exports); batchnorm: re-estimate BatchNorm statistics only; none: the masked parent",
      parseChoice('--recalibrate', RECALIBRATION_MODES),
      'affine',
    )
    .option(
      '--recal-samples <n>',
      'training images of the task (held-out ones excluded) that recalibrate the component; 0: none',
      parseInteger('--recal-samples'),
      DEFAULT_RECALIBRATION_SAMPLES,
    )
    .option(
      '--flatten <mode>',
      `keep: every channel feeding a Flatten of a spatial map is kept (the official code); prune: masks cross it`,
      parseChoice('--flatten', ['prune', 'keep'] as const),
      DEFAULT_FLATTEN,
    )
    .option(
      '--ranking <p>',
      "softmax precision ranking the representative samples: float32 (PyTorch's; ties go to the first image, as the official code) or float64",
      parseChoice('--ranking', ['float32', 'float64'] as const),
      'float32',
    )
    .option(
      '--holdout <n>',
      'held-out training images per class that check every class survives (0: no check)',
      parseInteger('--holdout'),
      DEFAULT_VALIDATION_PER_CLASS,
    )
    .option(
      '--class-drop <x>',
      "a class whose held-out k-way accuracy falls more than this below the base's (or below half of it) has collapsed: its masks are relaxed",
      threshold('--class-drop'),
      DEFAULT_CLASS_DROP,
    )
    .option(
      '--max-drop <x>',
      'accuracy-targeted: the smallest component (thresholds scaled together) within this k-way accuracy drop of the base on held-out training images',
      threshold('--max-drop'),
    )
    .option(
      '--guard <x>',
      `with the reference thresholds: a component more than this below the base's k-way accuracy on held-out training images gets all thresholds lowered together until it is within (1: off)`,
      threshold('--guard'),
      DEFAULT_ACCURACY_GUARD,
    )
    .option('--masks <file>', 'also write the masks (per layer and class) as JSON')
    .requiredOption('-o, --output <file>', 'where to write the component .onnx')
    .action(async (file: string, flags: DisassembleFlags, cmd: Command) => {
      const { out, session } = globals(cmd);
      checkOutputs([outputFile(flags.output), ...(flags.masks !== undefined ? [outputFile(flags.masks, '--masks')] : [])], [file, ...dataInputs(flags.data)]);
      const model = openModel(file);
      const train = await openDataset(flags.data, 'train');
      const task = parseClasses(flags.task, train.classes, 'task');
      if (flags.holdout === 0 && flags.maxDrop !== undefined) throw new UserError('--max-drop needs held-out images: --holdout must be > 0');
      if (flags.recalSamples < 0) throw new UserError(`--recal-samples expects a whole number >= 0, got ${flags.recalSamples}`);
      if (flags.holdout < 0) throw new UserError(`--holdout expects a whole number >= 0, got ${flags.holdout}`);
      const r = await runDisassembleJob({
        file,
        data: flags.data,
        output: flags.output,
        trainSet: train,
        parent: model,
        ...(flags.masks ? { masks: flags.masks } : {}),
        task,
        samplesPerClass: flags.samples,
        session,
        ...(flags.mean ? { mean: flags.mean } : {}),
        ...(flags.std ? { std: flags.std } : {}),
        seed: flags.seed,
        recalibration: flags.recalibrate,
        recalibrationSamples: flags.recalSamples,
        flatten: flags.flatten,
        ranking: flags.ranking,
        validationPerClass: flags.holdout,
        classDrop: flags.classDrop,
        guard: flags.guard,
        ...(flags.maxDrop !== undefined ? { maxDrop: flags.maxDrop } : {}),
        ...(flags.unbalanced ? { unbalanced: parseUnbalanced(flags.unbalanced, flags.seed) } : {}),
        ...definedProps({
          batchSize: flags.batch,
          alphaConv: flags.alphaConv,
          betaConv: flags.betaConv,
          alphaLinear: flags.alphaLinear,
          betaLinear: flags.betaLinear,
        }),
      });
      out.line(disassembleText(r, flagNamer));
      const { outputs: _, ...json } = r;
      out.json(json);
    });
}
