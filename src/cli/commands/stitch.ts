import { addInputOptions } from '../data-options.js';
import type { Command } from 'commander';
import { openModel } from '../../onnx/open.js';
import { cutListingText, describeCuts, stitchGridText } from '../../stitch/tables.js';
import { flagNamer } from '../flags.js';
import { PAIR_KINDS, type RandomBatchNorm } from '../../stitch/controls.js';
import { stitchGrid } from '../../stitch/run.js';
import { STITCH_INITS, STITCH_MODES, STITCH_SCHEDULES, type CellOptions, type StitchMode } from '../../stitch/cell.js';
import { FLAT_FROMS } from '../../stitch/plan.js';
import { checkOutputs, dataInputs, globals, outputFolder, withOutputFlags } from './common.js';
import { parseChoice, parseInteger, parseNameList, parsePositiveInt, parsePositiveNumber } from '../parse.js';
import { UserError } from '../../util/errors.js';
import { writeRunReport } from '../../report/html/report.js';
import { parseQueueUrl } from '../../queue/connection.js';
import { stitchDispatch } from '../../queue/stitch.js';
import { batchOption, cutsOption, queueOption, randomBatchNormOption, seedOption } from '../options.js';

interface StitchFlags {
  data?: string;
  mode: StitchMode;
  controls?: boolean;
  epochs: number;
  batch: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  schedule: CellOptions['schedule'];
  init: CellOptions['init'];
  flat: CellOptions['flat'];
  bn?: string[];
  senders?: string[];
  receivers?: string[];
  workers: number;
  workerThreads?: number;
  trainLimit?: number;
  testLimit?: number;
  cacheMb: number;
  stopAfter?: number;
  seed: number;
  randomBn: RandomBatchNorm;
  mean?: number[];
  std?: number[];
  listCuts?: boolean;
  overwrite?: boolean;
  output?: string;
  queue?: string;
}

export function registerStitch(program: Command): void {
  addInputOptions(
    withOutputFlags(
      program
        .command('stitch <A> [B]')
        .description(
          "stitch A's layers into B's at every pair of cut points (task-trained, least-squares or copy stitches, with random-network controls); matrix.json and heatmaps",
        ),
    ),
  )
    .option('--data <spec>', 'dataset: its train split trains the stitches, its test split scores them')
    .option('--list-cuts', 'list the cut points of A (and B) with their shapes, and stop')
    .option(
      '--mode <mode>',
      "task (train on cross-entropy) | lsq (closed-form least squares) | copy (also train to copy B's activation; EV/ES/SV)",
      parseChoice('--mode', STITCH_MODES),
      'task',
    )
    .option('--controls', 'also compute the three controls: random sender, random receiver, both random')
    .option('--epochs <n>', 'stitch training epochs', parsePositiveInt('--epochs'), 4)
    .addOption(batchOption(256))
    .option('--lr <x>', 'SGD learning rate', parsePositiveNumber('--lr'), 0.01)
    .option('--momentum <x>', 'SGD momentum', Number, 0.9)
    .option('--weight-decay <x>', 'weight decay', Number, 0.01)
    .option('--schedule <name>', 'constant | cosine', parseChoice('--schedule', STITCH_SCHEDULES), 'constant')
    .option('--init <how>', 'initial stitch for training: random | lsq', parseChoice('--init', STITCH_INITS), 'random')
    .option(
      '--flat <how>',
      'into the classifier from an image or tokens: pool (global average pool / mean of the tokens + linear) ' +
        "| flatten (flatten + linear) | class (a token sender's class token + linear)",
      parseChoice('--flat', FLAT_FROMS),
      'pool',
    )
    .option('--bn <where>', 'BatchNorm around the stitch: before, after or before,after', parseNameList)
    .addOption(cutsOption('senders'))
    .addOption(cutsOption('receivers'))
    .option('--workers <n>', 'parallel worker processes', parsePositiveInt('--workers'), 1)
    .option('--worker-threads <n>', 'ONNX Runtime threads per worker (default 1 with several workers, else --threads)', parsePositiveInt('--worker-threads'))
    .option('--train-limit <n>', 'train stitches on a seeded subset of this many training images', parsePositiveInt('--train-limit'))
    .option('--test-limit <n>', 'score on a seeded subset of this many test images', parsePositiveInt('--test-limit'))
    .option('--cache-mb <n>', 'cap on cached activations per worker, MiB (0: recompute every batch)', parseInteger('--cache-mb'), 1024)
    .option('--stop-after <n>', 'stop after this many cells (rerun to continue)', parsePositiveInt('--stop-after'))
    .addOption(seedOption('seed for stitch initialisation, image order and the random networks', 0))
    .addOption(randomBatchNormOption())
    .addOption(queueOption('the cells'))
    .option('-o, --output <dir>', 'grid folder (rerunning with the same folder resumes)')
    .option('--overwrite', 'start afresh when the folder holds a grid computed with other models, data or options (its finished cells are discarded)')
    .action(async (aFile: string, bFile: string | undefined, flags: StitchFlags, cmd: Command) => {
      const { out, session } = globals(cmd);
      if (flags.listCuts) {
        const models = [aFile, ...(bFile ? [bFile] : [])].map((f) => describeCuts(openModel(f), f));
        for (const m of models) {
          out.line(cutListingText(m, flagNamer));
          out.line();
        }
        out.json({ models });
        return;
      }
      if (!bFile) throw new UserError('stitch needs two models: modelsmith stitch A.onnx B.onnx --data <spec> -o grid/ (or --list-cuts)');
      if (!flags.data) throw new UserError('stitch needs --data <spec>');
      if (flags.output === undefined) throw new UserError('stitch needs -o <grid folder>');
      checkOutputs([outputFolder(flags.output)], [aFile, bFile, ...dataInputs(flags.data)]);
      if (flags.cacheMb < 0) throw new UserError(`--cache-mb must be 0 or more, got ${flags.cacheMb}`);
      if (flags.queue) {
        parseQueueUrl(flags.queue);
        if (flags.workers > 1)
          throw new UserError('--workers starts local processes; with --queue start workers on any machine with: modelsmith worker --queue <url>');
      }
      const bn = flags.bn ?? [];
      for (const b of bn) if (b !== 'before' && b !== 'after') throw new UserError(`--bn expects before, after or before,after, got "${bn.join(',')}"`);
      const options: Partial<CellOptions> = {
        mode: flags.mode,
        epochs: flags.epochs,
        batchSize: flags.batch,
        lr: flags.lr,
        momentum: flags.momentum,
        weightDecay: flags.weightDecay,
        schedule: flags.schedule,
        init: flags.init,
        flat: flags.flat,
        bnBefore: bn.includes('before'),
        bnAfter: bn.includes('after'),
        seed: flags.seed,
        randomBatchNorm: flags.randomBn,
      };
      const { senders, receivers } = flags;
      const threads = flags.workerThreads ?? (flags.workers > 1 ? 1 : session.threads);
      const r = await stitchGrid({
        a: aFile,
        b: bFile,
        data: flags.data,
        out: flags.output,
        kinds: flags.controls ? [...PAIR_KINDS] : ['trained'],
        options,
        ...(senders ? { senders } : {}),
        ...(receivers ? { receivers } : {}),
        ...(flags.trainLimit ? { trainLimit: flags.trainLimit } : {}),
        ...(flags.testLimit ? { testLimit: flags.testLimit } : {}),
        ...(flags.mean ? { mean: flags.mean } : {}),
        ...(flags.std ? { std: flags.std } : {}),
        ...(flags.overwrite ? { overwrite: true } : {}),
        cacheMb: flags.cacheMb,
        workers: flags.workers,
        ...(threads ? { threads } : {}),
        session,
        ...(flags.stopAfter ? { stopAfter: flags.stopAfter } : {}),
        ...(flags.queue ? { dispatch: stitchDispatch(flags.queue) } : {}),
      });
      out.line(stitchGridText(r, { a: aFile, b: bFile }));
      const report = await writeRunReport(flags.output);
      out.line(`wrote ${r.matrix.files.join(', ')}; report: ${report}`);
      out.json({ ...r, report });
    });
}
