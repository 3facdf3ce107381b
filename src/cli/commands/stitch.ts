import { addInputOptions } from '../data-options.js';
import type { Command } from 'commander';
import { openModel } from '../../onnx/open.js';
import { listCuts } from '../../stitch/cuts.js';
import { PAIR_KINDS, PAIR_TITLES, RANDOM_BATCHNORM, type RandomBatchNorm } from '../../stitch/controls.js';
import { stitchGrid } from '../../stitch/run.js';
import type { CellOptions } from '../../stitch/cell.js';
import { globals, withOutputFlags } from './common.js';
import { pct, table } from '../output.js';
import { parseChoice, parseInteger, parsePositiveInt, parsePositiveNumber } from '../parse.js';
import { UserError } from '../../util/errors.js';

interface StitchFlags {
  data?: string;
  mode: string;
  controls?: boolean;
  epochs: number;
  batch: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  schedule: string;
  init: string;
  flat: string;
  bn?: string;
  senders?: string;
  receivers?: string;
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
  output?: string;
}

const list = (s?: string): string[] | undefined => s?.split(',').map((x) => x.trim()).filter(Boolean);

export function registerStitch(program: Command): void {
  addInputOptions(withOutputFlags(program.command('stitch <A> [B]').description('stitch A\'s layers into B\'s at every pair of cut points (task-trained, least-squares or copy stitches, with random-network controls); matrix.json and heatmaps')))
    .option('--data <spec>', 'dataset: its train split trains the stitches, its test split scores them')
    .option('--list-cuts', 'list the cut points of A (and B) with their shapes, and stop')
    .option('--mode <mode>', 'task (train on cross-entropy) | lsq (closed-form least squares) | copy (also train to copy B\'s activation; EV/ES/SV)', 'task')
    .option('--controls', 'also compute the three controls: random sender, random receiver, both random')
    .option('--epochs <n>', 'stitch training epochs', parsePositiveInt('--epochs'), 4)
    .option('--batch <n>', 'batch size', parsePositiveInt('--batch'), 256)
    .option('--lr <x>', 'SGD learning rate', parsePositiveNumber('--lr'), 0.01)
    .option('--momentum <x>', 'SGD momentum', Number, 0.9)
    .option('--weight-decay <x>', 'weight decay', Number, 0.01)
    .option('--schedule <name>', 'constant | cosine', 'constant')
    .option('--init <how>', 'initial stitch for training: random | lsq', 'random')
    .option('--flat <how>', 'into the classifier from a spatial tensor: pool (global average pool + linear) | flatten (flatten + linear)', 'pool')
    .option('--bn <where>', 'BatchNorm around the stitch: before, after or before,after')
    .option('--senders <cuts>', 'sender cut names of A, comma-separated (default: stem and every block)')
    .option('--receivers <cuts>', 'receiver cut names of B (default: into every block and into the classifier)')
    .option('--workers <n>', 'parallel worker processes', parsePositiveInt('--workers'), 1)
    .option('--worker-threads <n>', 'ONNX Runtime threads per worker (default 1 with several workers, else --threads)', parsePositiveInt('--worker-threads'))
    .option('--train-limit <n>', 'train stitches on a seeded subset of this many training images', parsePositiveInt('--train-limit'))
    .option('--test-limit <n>', 'score on a seeded subset of this many test images', parsePositiveInt('--test-limit'))
    .option('--cache-mb <n>', 'cap on cached activations per worker, MiB (0: recompute every batch)', parseInteger('--cache-mb'), 1024)
    .option('--stop-after <n>', 'stop after this many cells (rerun to continue)', parsePositiveInt('--stop-after'))
    .option('--seed <n>', 'seed for stitch initialisation, image order and the random networks', parseInteger('--seed'), 0)
    .option('--random-bn <how>', 'BatchNorm statistics of the random control networks: data (re-estimated on 2048 training images) | init (0/1 as initialised)', parseChoice('--random-bn', RANDOM_BATCHNORM), 'data')
    .option('-o, --output <dir>', 'grid folder (rerunning with the same folder resumes)')
    .action(async (aFile: string, bFile: string | undefined, flags: StitchFlags, cmd: Command) => {
      const { out, session } = globals(cmd);
      if (flags.listCuts) {
        const models = [aFile, ...(bFile ? [bFile] : [])].map((f) => ({ file: f, cuts: listCuts(openModel(f), f) }));
        for (const m of models) {
          out.line(`${m.file}:`);
          out.line(table([['cut', 'tensor', 'kind', 'shape'], ...m.cuts.map((c) => [c.name, c.tensor, c.kind, c.shape.join('x')])]));
        }
        out.json({ models });
        return;
      }
      if (!bFile) throw new UserError('stitch needs two models: modelsmith stitch A.onnx B.onnx --data <spec> -o grid/ (or --list-cuts)');
      if (!flags.data) throw new UserError('stitch needs --data <spec>');
      if (!flags.output) throw new UserError('stitch needs -o <grid folder>');
      if (flags.cacheMb < 0) throw new UserError(`--cache-mb must be 0 or more, got ${flags.cacheMb}`);
      const bn = list(flags.bn) ?? [];
      for (const b of bn) if (b !== 'before' && b !== 'after') throw new UserError(`--bn expects before, after or before,after, got "${flags.bn}"`);
      const options: Partial<CellOptions> = {
        mode: flags.mode as CellOptions['mode'], epochs: flags.epochs, batchSize: flags.batch, lr: flags.lr, momentum: flags.momentum, weightDecay: flags.weightDecay,
        schedule: flags.schedule as CellOptions['schedule'], init: flags.init as CellOptions['init'], flat: flags.flat as CellOptions['flat'],
        bnBefore: bn.includes('before'), bnAfter: bn.includes('after'), seed: flags.seed, randomBatchNorm: flags.randomBn,
      };
      const senders = list(flags.senders), receivers = list(flags.receivers);
      const threads = flags.workerThreads ?? (flags.workers > 1 ? 1 : session.threads);
      const r = await stitchGrid({
        a: aFile, b: bFile, data: flags.data, out: flags.output, kinds: flags.controls ? [...PAIR_KINDS] : ['trained'], options,
        ...(senders ? { senders } : {}), ...(receivers ? { receivers } : {}),
        ...(flags.trainLimit ? { trainLimit: flags.trainLimit } : {}), ...(flags.testLimit ? { testLimit: flags.testLimit } : {}),
        ...(flags.mean ? { mean: flags.mean } : {}), ...(flags.std ? { std: flags.std } : {}),
        cacheMb: flags.cacheMb, workers: flags.workers, ...(threads ? { threads } : {}), session, ...(flags.stopAfter ? { stopAfter: flags.stopAfter } : {}),
      });
      const m = r.matrix;
      for (const kind of m.kinds) {
        const values = m.matrices.accuracy?.[kind];
        if (!values) continue;
        out.line(`${PAIR_TITLES[kind]} (rows: sender cuts of ${aFile}; columns: receiver cuts of ${bFile})`);
        out.line(table([['', ...m.receivers], ...m.senders.map((s, i) => [s, ...values[i]!.map((v) => (v === null ? '-' : pct(v)))])]));
        const t = m.triangles[kind];
        if (t) out.line(`mean accuracy: lower-left triangle ${t.lowerLeft === null ? '-' : pct(t.lowerLeft)}, elsewhere ${t.elsewhere === null ? '-' : pct(t.elsewhere)}`);
        out.line();
      }
      out.line(`networks' own test accuracy: ${Object.entries(m.base).map(([k, v]) => `${k} ${pct(v)}`).join(', ')}`);
      out.line(`${r.ran} cells computed now, ${r.resumed} found finished; ${m.cells.done}/${m.cells.total} done${m.complete ? '' : ' (rerun the same command to continue)'}`);
      out.line(`wrote ${m.files.join(', ')}`);
      out.json(r);
    });
}
