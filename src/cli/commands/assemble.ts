import type { Command } from 'commander';
import { assembleText, runAssembleJob } from '../../lego/assemble-job.js';
import { flagNamer } from '../flags.js';
import { DEFAULT_SCALE_METHOD, OVERLAP_MODES, type AssemblyMethod, type OverlapMode } from '../../lego/assemble.js';
import { checkOutputs, dataInputs, globals, outputFile, withOutputFlags } from './common.js';
import { parseChoice, parsePositiveInt, parsePositiveNumber } from '../parse.js';
import { SCALE_METHODS, type ScaleMethod } from '../../lego/scale.js';
import { addInputOptions } from '../data-options.js';
import { definedProps } from '../../util/objects.js';
import { batchOption, seedOption } from '../options.js';

/** --method: block-diagonal is what auto tries first, so the CLI offers only auto and forcing the parallel fallback. */
const METHOD_CHOICES = ['auto', 'parallel'] as const satisfies readonly ('auto' | AssemblyMethod)[];
type MethodChoice = (typeof METHOD_CHOICES)[number];

interface AssembleFlags {
  scaleData?: string[];
  scale: boolean;
  scaleSamples?: number;
  scaleMethod: ScaleMethod;
  data?: string[];
  finetuneEpochs?: number;
  lr?: number;
  batch?: number;
  seed: number;
  overlap: OverlapMode;
  method: MethodChoice;
  test: boolean;
  mean?: number[];
  std?: number[];
  output: string;
}

export function registerAssemble(program: Command): void {
  addInputOptions(
    withOutputFlags(
      program
        .command('assemble <components...>')
        .description(
          'assemble components (e.g. from disassemble) into one classifier over the union of their classes: components carry their input normalisation (--mean/--std or --norm apply to those that do not)',
        ),
    ),
  )
    .option('--scale-data <specs...>', 'datasets whose train split measures the scale factors (default: --data)')
    .option('--no-scale', 'assemble without parameter scaling')
    .option(
      '--scale-method <m>',
      "fit: one scale and shift per output fitted on the scale data so the union is classified (needs one dataset with every class); mean-max: the paper's 1 / mean max logit per output",
      parseChoice('--scale-method', SCALE_METHODS),
      DEFAULT_SCALE_METHOD,
    )
    .option('--scale-samples <n>', 'images per class used for scaling (default 1000)', parsePositiveInt('--scale-samples'))
    .option('--data <specs...>', 'datasets: train split for --finetune-epochs, test split for the accuracies')
    .option('--finetune-epochs <n>', "fine-tune the assembled model on the union of the tasks' training images", parsePositiveInt('--finetune-epochs'))
    .option('--lr <x>', 'fine-tuning learning rate (default 0.01, SGD momentum 0.9, cosine)', parsePositiveNumber('--lr'))
    .addOption(batchOption())
    .addOption(seedOption('seed for the scaling sample choice and fine-tuning', 0))
    .option(
      '--overlap <mode>',
      "components sharing a class: refuse | merge (average the duplicates' logits)",
      parseChoice('--overlap', OVERLAP_MODES),
      'refuse',
    )
    .option('--method <m>', 'auto (block-diagonal when the topologies match, else parallel) | parallel', parseChoice('--method', METHOD_CHOICES), 'auto')
    .option('--no-test', 'do not score on the test split')
    .requiredOption('-o, --output <file>', 'where to write the assembled .onnx model')
    .action(async (files: string[], flags: AssembleFlags, cmd: Command) => {
      const { out, session } = globals(cmd);
      checkOutputs([outputFile(flags.output)], [...files, ...dataInputs(...(flags.data ?? []), ...(flags.scaleData ?? []))]);
      const r = await runAssembleJob({
        files,
        output: flags.output,
        scale: flags.scale,
        scaleMethod: flags.scaleMethod,
        seed: flags.seed,
        overlap: flags.overlap,
        method: flags.method,
        test: flags.test,
        session,
        ...definedProps({
          scaleData: flags.scaleData,
          scaleSamplesPerClass: flags.scaleSamples,
          data: flags.data,
          finetuneEpochs: flags.finetuneEpochs,
          lr: flags.lr,
          batchSize: flags.batch,
        }),
        ...(flags.mean || flags.std ? { normalization: { ...(flags.mean ? { mean: flags.mean } : {}), ...(flags.std ? { std: flags.std } : {}) } } : {}),
      });
      out.line(assembleText(r, flagNamer));
      out.json(r);
    });
}
