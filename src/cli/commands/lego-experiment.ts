import type { Command } from 'commander';
import { join } from 'node:path';
import { runLegoExperiment, DEFAULT_SWEEP } from '../../lego/experiment.js';
import { parseClasses } from '../../data/classes.js';
import { checkOutputs, dataInputs, globals, outputFolder, withOutputFlags } from './common.js';
import { parseChoice, parseFraction, parseInteger, parseNumberList, parsePositiveInt } from '../parse.js';
import { addInputOptions } from '../data-options.js';
import { RECALIBRATION_MODES, type RecalibrationMode } from '../../lego/recalibrate.js';
import type { FlattenMode } from '../../lego/masks.js';
import { DEFAULT_ACCURACY_GUARD, DEFAULT_CLASS_DROP, DEFAULT_FLATTEN, DEFAULT_RECALIBRATION_SAMPLES, DEFAULT_VALIDATION_PER_CLASS } from '../../lego/types.js';
import { UserError } from '../../util/errors.js';
import { writeRunReport } from '../../report/html/report.js';
import { parseQueueUrl } from '../../queue/connection.js';
import { legoExperimentOnQueue } from '../../queue/lego.js';
import { batchOption, queueOption, seedOption } from '../options.js';

interface ExperimentFlags {
  model: string;
  model2?: string;
  data: string;
  tasks?: string;
  pairs?: string;
  samples: number;
  unbalanced?: string;
  finetuneEpochs: number;
  sweep: boolean;
  alphas?: number[];
  betas?: number[];
  sweepTask?: string;
  scaleSamples?: number;
  batch?: number;
  seed: number;
  resume?: boolean;
  mean?: number[];
  std?: number[];
  recalibrate: RecalibrationMode;
  flatten: FlattenMode;
  recalSamples: number;
  ranking: 'float32' | 'float64';
  holdout: number;
  classDrop: number;
  guard: number;
  maxDrop?: number;
  output: string;
  queue?: string;
}

/** Class lists separated by ';' ("0;0-2;3-9;1,5,7"), each checked against 10 classes at most 1000. */
function taskList(text: string, flag: string): number[][] {
  const parts = text
    .split(';')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!parts.length) throw new UserError(`${flag} expects class lists separated by ';', e.g. "0;0-2;3-9", got "${text}"`);
  return parts.map((p) => parseClasses(p, 1000, 'tasks'));
}

export function registerLegoExperiment(program: Command): void {
  addInputOptions(
    withOutputFlags(
      program.command('lego-experiment').description('run the Model LEGO tables: disassembly, assembly, mismatch, unbalanced samples, threshold sweep'),
    ),
  )
    .requiredOption('--model <file>', 'the trained model to disassemble')
    .option('--model2 <file>', 'a second model (other seed or width) for the assembly table')
    .requiredOption('--data <spec>', 'dataset (train split: samples, scaling, fine-tuning; test split: accuracies)')
    .option('--tasks <lists>', 'disassembly and mismatch tasks, ";"-separated (default "0;0-2;3-9;1,5,7")')
    .option('--pairs <lists>', 'assembly pairs "A+B;C+D" (A from --model, B from --model2; default "0-4+5-9;0-2+3-9")')
    .option('--samples <n>', 'representative samples per class', parsePositiveInt('--samples'), 50)
    .option('--unbalanced <lo-hi>', 'unbalanced sample counts per class (default samples..3*samples)')
    .option('--finetune-epochs <n>', 'fine-tuning epochs for the assembly table (0: none)', parseInteger('--finetune-epochs'), 2)
    .option('--no-sweep', 'skip the alpha/beta sweep')
    .option('--alphas <list>', 'sweep alphas (conv; linear gets +0.1)', parseNumberList('--alphas'))
    .option('--betas <list>', 'sweep betas (conv; linear gets +0.1)', parseNumberList('--betas'))
    .option('--sweep-task <list>', 'task of the sweep (default 0-2)')
    .option('--scale-samples <n>', 'images per class for parameter scaling', parsePositiveInt('--scale-samples'))
    .addOption(batchOption())
    .addOption(seedOption('seed', 0))
    .option('--resume', 'keep the rows already in <dir>/experiment.json and run only the missing ones')
    .option(
      '--recalibrate <mode>',
      'component recalibration: affine | batchnorm | none (see disassemble)',
      parseChoice('--recalibrate', RECALIBRATION_MODES),
      'affine',
    )
    .option(
      '--flatten <mode>',
      'how masks cross a Flatten: keep | prune (see disassemble)',
      parseChoice('--flatten', ['prune', 'keep'] as const),
      DEFAULT_FLATTEN,
    )
    .option(
      '--recal-samples <n>',
      'training images that recalibrate each component (see disassemble)',
      parseInteger('--recal-samples'),
      DEFAULT_RECALIBRATION_SAMPLES,
    )
    .option(
      '--ranking <p>',
      'softmax precision ranking the representative samples: float32 | float64 (see disassemble)',
      parseChoice('--ranking', ['float32', 'float64'] as const),
      'float32',
    )
    .option(
      '--holdout <n>',
      'held-out training images per class checking each component (0: no check; see disassemble)',
      parseInteger('--holdout'),
      DEFAULT_VALIDATION_PER_CLASS,
    )
    .option(
      '--class-drop <x>',
      'per-class held-out accuracy drop that counts as a collapse (see disassemble)',
      parseFraction('--class-drop'),
      DEFAULT_CLASS_DROP,
    )
    .option('--guard <x>', 'accuracy guard of the reference thresholds (1: off; see disassemble)', parseFraction('--guard'), DEFAULT_ACCURACY_GUARD)
    .option('--max-drop <x>', 'accuracy-targeted components for the disassembly table (see disassemble)', parseFraction('--max-drop'))
    .addOption(queueOption('the rows'))
    .requiredOption('-o, --output <dir>', 'folder for experiment.json, report.md, components and assembled models')
    .action(async (flags: ExperimentFlags, cmd: Command) => {
      const { out, session } = globals(cmd);
      checkOutputs([outputFolder(flags.output)], [flags.model, ...(flags.model2 !== undefined ? [flags.model2] : []), ...dataInputs(flags.data)]);
      let unbalanced: [number, number] | undefined;
      if (flags.unbalanced !== undefined) {
        const m = /^(\d+)-(\d+)$/.exec(flags.unbalanced.trim());
        if (!m || Number(m[1]) < 1 || Number(m[2]) < Number(m[1]))
          throw new UserError(`--unbalanced expects lo-hi with 1 <= lo <= hi, e.g. 50-150, got "${flags.unbalanced}"`);
        unbalanced = [Number(m[1]), Number(m[2])];
      }
      const pairs = flags.pairs
        ?.split(';')
        .map((p) => p.trim())
        .filter(Boolean)
        .map((p) => {
          const ab = p.split('+');
          if (ab.length !== 2) throw new UserError(`--pairs expects "A+B" items separated by ';', got "${p}"`);
          return [parseClasses(ab[0]!, 1000, 'pairs'), parseClasses(ab[1]!, 1000, 'pairs')] as [number[], number[]];
        });
      const sweep = !flags.sweep
        ? []
        : flags.alphas || flags.betas
          ? (flags.alphas ?? [0.3]).flatMap((alpha) => (flags.betas ?? [0.2]).map((beta) => ({ alpha, beta })))
          : DEFAULT_SWEEP;
      if (sweep.some((s) => !(s.alpha >= 0 && s.alpha < 1 && s.beta >= 0 && s.beta < 1))) throw new UserError('--alphas and --betas expect values in [0, 1)');
      if (flags.queue) parseQueueUrl(flags.queue);
      if (flags.recalSamples < 0) throw new UserError(`--recal-samples expects a whole number >= 0, got ${flags.recalSamples}`);
      if (flags.holdout < 0) throw new UserError(`--holdout expects a whole number >= 0, got ${flags.holdout}`);
      const opts = {
        model: flags.model,
        data: flags.data,
        outDir: flags.output,
        samplesPerClass: flags.samples,
        finetuneEpochs: flags.finetuneEpochs,
        sweep,
        seed: flags.seed,
        session,
        ...(flags.model2 ? { model2: flags.model2 } : {}),
        ...(flags.tasks ? { tasks: taskList(flags.tasks, '--tasks') } : {}),
        ...(pairs ? { pairs } : {}),
        ...(unbalanced ? { unbalanced } : {}),
        ...(flags.sweepTask ? { sweepTask: parseClasses(flags.sweepTask, 1000, 'sweepTask') } : {}),
        ...(flags.scaleSamples ? { scaleSamplesPerClass: flags.scaleSamples } : {}),
        ...(flags.batch ? { batchSize: flags.batch } : {}),
        ...(flags.resume ? { resume: true } : {}),
        ...(flags.mean ? { mean: flags.mean } : {}),
        ...(flags.std ? { std: flags.std } : {}),
        disassembly: {
          recalibration: flags.recalibrate,
          flatten: flags.flatten,
          recalibrationSamples: flags.recalSamples,
          ranking: flags.ranking,
          validationPerClass: flags.holdout,
          classDrop: flags.classDrop,
          guard: flags.guard,
          ...(flags.maxDrop !== undefined ? { maxDrop: flags.maxDrop } : {}),
        },
      };
      const r = flags.queue ? await legoExperimentOnQueue(flags.queue, opts) : await runLegoExperiment(opts);
      const report = await writeRunReport(flags.output);
      out.line(
        `wrote ${join(flags.output, 'experiment.json')} and ${join(flags.output, 'report.md')}: ${r.disassembly.length} disassembly, ${r.assembly.length} assembly, ${r.mismatch.length} mismatch, ${r.unbalanced.length} unbalanced, ${r.sweep.length} sweep rows; report: ${report}`,
      );
      out.json({ ...r, report });
    });
}
