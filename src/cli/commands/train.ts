import { existsSync } from 'node:fs';
import { addInputOptions } from '../data-options.js';
import type { Command } from 'commander';
import { openModel } from '../../onnx/open.js';
import { createZooModel, ZOO } from '../../nn/zoo.js';
import { openDataset } from '../../data/resolve.js';
import { parseClasses } from '../../data/classes.js';
import { fileHash } from '../../onnx/metadata.js';
import { train, trainText, FINE_TUNING, FROM_SCRATCH, KEEP_CHOICES, type KeepChoice, type TrainJob, type TrainingDefaults } from '../../autodiff/train.js';
import { OPTIMIZER_KINDS, type OptimizerConfig } from '../../autodiff/optim.js';
import { SCHEDULE_KINDS, type ScheduleConfig } from '../../autodiff/schedule.js';
import type { Augmentation } from '../../data/types.js';
import { checkOutputs, dataInputs, globals, outputFile, withOutputFlags } from './common.js';
import { parseChoice, parseIntList, parsePositiveInt, parsePositiveNumber } from '../parse.js';
import { UserError } from '../../util/errors.js';
import { batchOption, seedOption } from '../options.js';

interface TrainFlags {
  data: string;
  classes?: string;
  mean?: number[];
  std?: number[];
  epochs: number;
  batch: number;
  lr?: number;
  optimizer: OptimizerConfig['kind'];
  momentum: number;
  nesterov?: boolean;
  weightDecay?: number;
  schedule: ScheduleConfig['kind'];
  warmup?: number;
  stepEpochs?: number;
  gamma: number;
  clip?: number;
  freeze?: string;
  trainable?: string;
  seed: number;
  val: number;
  augment: string;
  keep: KeepChoice;
  resume?: boolean;
  stopAfter?: number;
  checkpoint?: string;
  test: boolean;
  blocks?: number[];
  hidden?: number[];
  width: number;
  output: string;
}

export function registerTrain(program: Command): void {
  addInputOptions(withOutputFlags(program.command('train <model>').description('train a zoo architecture from scratch, or fine-tune an .onnx model')))
    .requiredOption('--data <spec>', 'dataset (its train split is used; see modelsmith eval --help)')
    .option('--classes <list>', 'train on these dataset classes, e.g. 0-4 (with as many classes as outputs, outputs are remapped to them)')
    .option('--epochs <n>', 'epochs', parsePositiveInt('--epochs'), 10)
    .addOption(batchOption(128))
    .option(
      '--lr <x>',
      `peak learning rate (default: from scratch ${rates(FROM_SCRATCH)}; fine-tuning an .onnx model ${rates(FINE_TUNING)})`,
      parsePositiveNumber('--lr'),
    )
    .option('--optimizer <name>', 'sgd | adam | adamw', parseChoice('--optimizer', OPTIMIZER_KINDS), 'sgd')
    .option('--momentum <x>', 'SGD momentum', Number, 0.9)
    .option('--nesterov', 'Nesterov momentum')
    .option('--weight-decay <x>', 'weight decay (default 5e-4 sgd, 0 adam, 0.01 adamw)', Number)
    .option('--schedule <name>', 'constant | step | cosine', parseChoice('--schedule', SCHEDULE_KINDS), 'cosine')
    .option(
      '--warmup <epochs>',
      `linear warm-up length in epochs, may be fractional (default: ${FROM_SCRATCH.warmupEpochs} from scratch, ${FINE_TUNING.warmupEpochs} fine-tuning an .onnx model)`,
      Number,
    )
    .option('--step-epochs <n>', 'step schedule: multiply the rate by --gamma every n epochs', Number)
    .option('--gamma <x>', 'step schedule factor', Number, 0.1)
    .option('--clip <norm>', 'clip the global gradient norm', parsePositiveNumber('--clip'))
    .option('--freeze <globs>', 'parameters to keep fixed, e.g. "conv1.*,layer1.*"')
    .option('--trainable <globs>', 'train only these parameters (the complement of --freeze)')
    .addOption(seedOption('seed for initialisation, shuffling, validation split and augmentation', 0))
    .option('--val <fraction>', 'fraction of the training split held out for validation', Number, 0.1)
    .option('--augment <list>', 'augmentation: none, or crop[:padding] and/or flip, e.g. crop:2,flip', 'none')
    .option('--keep <which>', "write the last epoch's weights or the best validation epoch's: last | best", parseChoice('--keep', KEEP_CHOICES), 'last')
    .option('--resume', 'continue from the checkpoint if there is one')
    .option('--stop-after <epochs>', 'stop once this many epochs are done (resume later with --resume)', parsePositiveInt('--stop-after'))
    .option('--checkpoint <file>', 'checkpoint file (default: <output>.ckpt)')
    .option('--no-test', 'do not report test accuracy at the end')
    .option('--blocks <list>', 'zoo "resnet": blocks per stage', parseIntList('--blocks'))
    .option('--hidden <list>', 'zoo "mlp": hidden sizes', parseIntList('--hidden'))
    .option('--width <x>', 'zoo: width multiplier', parsePositiveNumber('--width'), 1)
    .requiredOption('-o, --output <file>', 'where to write the trained .onnx model')
    .action(async (spec: string, flags: TrainFlags, cmd: Command) => {
      const { out, session } = globals(cmd);
      checkOutputs(
        [
          outputFile(flags.output),
          outputFile(flags.checkpoint ?? `${flags.output}.ckpt`, flags.checkpoint ? '--checkpoint' : 'the checkpoint'),
          outputFile(`${flags.output}.metrics.jsonl`, 'the metrics log'),
        ],
        [spec, ...dataInputs(flags.data)],
      );
      const data = await openDataset(flags.data, 'train');
      const classes = flags.classes !== undefined ? parseClasses(flags.classes, data.classes) : undefined;
      const fromFile = spec.endsWith('.onnx') || existsSync(spec);
      const model = fromFile
        ? openModel(spec)
        : createZooModel(spec, {
            input: [...data.shape],
            classes: classes?.length ?? data.classes,
            width: flags.width,
            seed: flags.seed,
            ...(flags.blocks ? { blocks: flags.blocks } : {}),
            ...(flags.hidden ? { hidden: flags.hidden } : {}),
          });
      if (!fromFile && !(spec in ZOO)) throw new UserError(`"${spec}" is neither an .onnx file nor a zoo architecture`);
      const defaults = fromFile ? FINE_TUNING : FROM_SCRATCH;
      const job: TrainJob = {
        model,
        data,
        output: flags.output,
        epochs: flags.epochs,
        batchSize: flags.batch,
        lr: flags.lr ?? defaults.lr[flags.optimizer],
        optimizer: optimizerConfig(flags, defaults),
        schedule: scheduleConfig(flags, data.size, defaults),
        seed: flags.seed,
        validation: flags.val,
        keep: flags.keep,
        session,
        ...(fromFile ? { parentHash: fileHash(spec) } : {}),
        ...(flags.test ? { test: await openDataset(flags.data, 'test') } : {}),
        ...(classes ? { classes } : {}),
        ...(flags.mean ? { mean: flags.mean } : {}),
        ...(flags.std ? { std: flags.std } : {}),
        ...((flags.clip ?? defaults.clipNorm) ? { clipNorm: flags.clip ?? defaults.clipNorm } : {}),
        ...(flags.freeze ? { freeze: flags.freeze } : {}),
        ...(flags.trainable ? { trainable: flags.trainable } : {}),
        ...augmentation(flags.augment),
        ...(flags.resume ? { resume: true } : {}),
        ...(flags.stopAfter ? { stopAfter: flags.stopAfter } : {}),
        ...(flags.checkpoint ? { checkpoint: flags.checkpoint } : {}),
      };
      const r = await train(job);
      out.line(trainText(r));
      out.json(r);
    });
}

function rates(d: TrainingDefaults): string {
  return `sgd ${d.lr.sgd}, adam/adamw ${d.lr.adam}`;
}

function optimizerConfig(f: TrainFlags, d: TrainingDefaults): OptimizerConfig {
  const weightDecay = f.weightDecay ?? d.weightDecay[f.optimizer];
  if (f.optimizer === 'sgd') return { kind: 'sgd', momentum: f.momentum, nesterov: !!f.nesterov, weightDecay };
  return { kind: f.optimizer, weightDecay };
}

function scheduleConfig(f: TrainFlags, trainSize: number, d: TrainingDefaults): ScheduleConfig {
  const stepsPerEpoch = Math.max(1, Math.floor((trainSize * (1 - f.val)) / f.batch));
  const warmupSteps = Math.min(Math.round((f.warmup ?? d.warmupEpochs) * stepsPerEpoch), stepsPerEpoch * f.epochs);
  if (f.schedule === 'constant') return { kind: 'constant', warmupSteps };
  if (f.schedule === 'cosine') return { kind: 'cosine', warmupSteps };
  if (!f.stepEpochs) throw new UserError('--schedule step needs --step-epochs');
  return { kind: 'step', stepSize: Math.round(f.stepEpochs * stepsPerEpoch), gamma: f.gamma, warmupSteps };
}

function augmentation(text: string): { augmentation?: Augmentation } {
  if (text === 'none') return {};
  const aug: Augmentation = {};
  for (const part of text.split(',').map((s) => s.trim())) {
    const [name, arg] = part.split(':');
    if (name === 'flip' && arg === undefined) aug.flip = true;
    else if (name === 'crop') {
      const p = arg === undefined ? 4 : Number(arg);
      if (!Number.isInteger(p) || p < 1) throw new UserError(`--augment crop:<padding> expects a positive integer padding, got "${arg}"`);
      aug.cropPadding = p;
    } else throw new UserError(`--augment expects none, or crop[:padding] and/or flip, got "${part}"`);
  }
  return { augmentation: aug };
}
