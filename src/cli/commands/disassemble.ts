import { addInputOptions } from '../data-options.js';
import type { Command } from 'commander';
import { openModel } from '../../onnx/open.js';
import { openDataset } from '../../data/resolve.js';
import { parseClasses } from '../../data/classes.js';
import { runDisassembleJob } from '../../lego/disassemble-job.js';
import type { Component } from '../../lego/types.js';
import { RECALIBRATION_MODES, type RecalibrationMode } from '../../lego/recalibrate.js';
import type { FlattenMode } from '../../lego/masks.js';
import type { SampleRanking } from '../../lego/samples.js';
import { DEFAULT_ACCURACY_GUARD, DEFAULT_CLASS_DROP, DEFAULT_FLATTEN, DEFAULT_RECALIBRATION_SAMPLES, DEFAULT_VALIDATION_PER_CLASS } from '../../lego/types.js';
import { checkOutputs, dataInputs, globals, outputFile, withOutputFlags } from './common.js';
import { compact, pct, table } from '../output.js';
import { parseChoice, parseFraction, parseInteger, parsePositiveInt } from '../parse.js';
import { UserError } from '../../util/errors.js';

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
    .option('--alpha-conv <x>', 'conv contribution threshold (default 0.3)', threshold('--alpha-conv'))
    .option('--beta-conv <x>', 'conv input-mask threshold (default 0.2)', threshold('--beta-conv'))
    .option('--alpha-linear <x>', 'linear contribution threshold (default 0.4)', threshold('--alpha-linear'))
    .option('--beta-linear <x>', 'linear input-mask threshold (default 0.3)', threshold('--beta-linear'))
    .option('--batch <n>', 'batch size', parsePositiveInt('--batch'))
    .option('--unbalanced <lo,hi>', 'a random number of samples per class in [lo, hi] instead of --samples')
    .option('--seed <n>', 'seed for --unbalanced, the held-out images and the recalibration images', parseInteger('--seed'), 0)
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
        ...(flags.batch ? { batchSize: flags.batch } : {}),
        ...(flags.alphaConv !== undefined ? { alphaConv: flags.alphaConv } : {}),
        ...(flags.betaConv !== undefined ? { betaConv: flags.betaConv } : {}),
        ...(flags.alphaLinear !== undefined ? { alphaLinear: flags.alphaLinear } : {}),
        ...(flags.betaLinear !== undefined ? { betaLinear: flags.betaLinear } : {}),
      });
      const n = r.outputs;
      const k = r.task.length;
      const change = (x: number): string => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(2)}`;
      out.line(`wrote ${flags.output}: component for classes ${r.task.join(',')} (${r.seconds.toFixed(1)} s)${flags.masks ? `; masks in ${flags.masks}` : ''}`);
      out.line(
        table([
          ['model', 'accuracy on task images', 'vs base k-way', 'parameters', 'FLOPs/image'],
          [`base (${n}-way)`, pct(r.base.accuracy), '', compact(r.base.parameters), compact(r.base.flopsPerImage)],
          [`base (${k}-way: logits of the task's classes)`, pct(r.base.kWay.accuracy), '', '', ''],
          [`component (${k}-way)`, pct(r.component.accuracy), change(r.change), compact(r.component.parameters), compact(r.component.flopsPerImage)],
        ]),
      );
      out.line(`scored on ${r.samples} test images of classes ${r.task.join(',')} (${r.data})`);
      out.line(`recalibration: ${recalibrationLine(r.recalibration)}`);
      if (r.validation) {
        const v = r.validation;
        const relaxed = v.relaxed.length
          ? `; relaxed the masks of class${v.relaxed.length > 1 ? 'es' : ''} ${v.relaxed.map((r) => `${r.class} (${pct(r.before)} -> ${pct(r.after)})`).join(', ')}`
          : '; no class collapsed';
        out.line(`held-out check on ${v.samples} training images: component ${pct(v.component.accuracy)} vs base ${pct(v.base.accuracy)} k-way${relaxed}`);
      }
      if (r.search) {
        const ch = r.search.candidates[r.search.chosen]!;
        out.line(
          `${r.search.kind === 'guard' ? `guard: the reference thresholds were more than ${r.search.maxDrop} below the base; lowered to` : `--max-drop ${r.search.maxDrop}:`} thresholds x${ch.scale.toFixed(3)} (conv ${ch.thresholds.alphaConv.toFixed(3)}/${ch.thresholds.betaConv.toFixed(3)}, linear ${ch.thresholds.alphaLinear.toFixed(3)}/${ch.thresholds.betaLinear.toFixed(3)}), ${pct(ch.accuracy)} on held-out images vs base ${pct(r.search.baseAccuracy)}; ${r.search.candidates.length} candidates tried`,
        );
      }
      if (r.warnings.length) out.line(`${r.warnings.length} warning(s), see above`);
      const { outputs: _, ...json } = r;
      out.json(json);
    });
}

/** What recalibration did, in one line. */
function recalibrationLine(r: Component['recalibration']): string {
  if (r.skipped) return `${r.mode}: nothing done (${r.skipped})`;
  if (r.mode === 'batchnorm') return `BatchNorm statistics of ${r.batchNormLayers} layer(s) re-estimated on ${r.samples} training images`;
  return `${r.layers.length} layer(s) that lost input channels mapped to the parent's per-channel output statistics on ${r.samples} training images`;
}
