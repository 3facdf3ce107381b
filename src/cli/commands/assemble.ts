import type { Command } from 'commander';
import { runAssembleJob } from '../../lego/assemble-job.js';
import { DEFAULT_SCALE_METHOD, OVERLAP_MODES, type AssemblyMethod, type OverlapMode } from '../../lego/assemble.js';
import { checkOutputs, dataInputs, globals, outputFile, withOutputFlags } from './common.js';
import { compact, pct, table } from '../output.js';
import { parseChoice, parseInteger, parsePositiveInt, parsePositiveNumber } from '../parse.js';
import { SCALE_METHODS, type ScaleMethod } from '../../lego/scale.js';
import { addInputOptions } from '../data-options.js';

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
    .option('--batch <n>', 'batch size', parsePositiveInt('--batch'))
    .option('--seed <n>', 'seed for the scaling sample choice and fine-tuning', parseInteger('--seed'), 0)
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
        ...(flags.scaleData ? { scaleData: flags.scaleData } : {}),
        ...(flags.scaleSamples ? { scaleSamplesPerClass: flags.scaleSamples } : {}),
        ...(flags.data ? { data: flags.data } : {}),
        ...(flags.finetuneEpochs ? { finetuneEpochs: flags.finetuneEpochs } : {}),
        ...(flags.lr ? { lr: flags.lr } : {}),
        ...(flags.batch ? { batchSize: flags.batch } : {}),
        ...(flags.mean || flags.std ? { normalization: { ...(flags.mean ? { mean: flags.mean } : {}), ...(flags.std ? { std: flags.std } : {}) } } : {}),
      });
      out.line(
        `wrote ${r.output}: ${r.method}${r.fallbackReason ? ` (${r.fallbackReason})` : ''}, ${r.outputs} outputs, ${compact(r.parameters)} parameters, ${(r.flopsPerImage / 1e6).toFixed(2)} MFLOPs/image, ${r.scaled ? `scaled (${r.scaleMethod})` : 'not scaled'}`,
      );
      const rows: (string | number)[][] = [['model', 'dataset', 'classes', 'test images', 'accuracy']];
      const fmt = (c: number[]): string => (c.length > 6 ? `${c.slice(0, 6).join(',')},... (${c.length})` : c.join(','));
      for (const a of [...r.components, ...r.union, ...(r.finetune?.union ?? [])]) rows.push([a.model, a.dataset, fmt(a.classes), a.samples, pct(a.accuracy)]);
      if (rows.length > 1) out.line(table(rows));
      else out.line('no test data given (--data): accuracies not measured');
      out.json(r);
    });
}
