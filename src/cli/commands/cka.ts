import type { Command } from 'commander';
import { openModel } from '../../onnx/open.js';
import { computeCkaGrid, writeCkaGrid, DEFAULT_CKA_SAMPLES, DEFAULT_CKA_MEMORY_MIB, type CkaGridResult } from '../../stitch/cka-grid.js';
import { addDataOptions, openDataFromFlags, type DataFlags } from '../data-options.js';
import { openDataset } from '../../data/resolve.js';
import { RANDOM_BATCHNORM, type RandomBatchNorm } from '../../stitch/controls.js';
import { checkOutputs, dataInputs, globals, outputFolder, withOutputFlags } from './common.js';
import { parseChoice, parseInteger, parsePositiveInt } from '../parse.js';
import { table } from '../output.js';
import { CKA_POOLS, type CkaPool } from '../../stitch/views.js';
import { writeRunReport } from '../../report/html/report.js';
import { parseQueueUrl } from '../../queue/connection.js';
import { ckaOnQueue, type CkaJobOptions } from '../../queue/cka.js';
import { UserError } from '../../util/errors.js';

interface CkaFlags extends DataFlags {
  samples?: number;
  seed?: number;
  debiased?: boolean;
  controls?: boolean;
  senders?: string[];
  receivers?: string[];
  memory?: number;
  randomBn: RandomBatchNorm;
  pool: CkaPool;
  output: string;
  queue?: string;
}

const nameList = (text: string): string[] =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length);

export function registerCka(program: Command): void {
  const cmd = withOutputFlags(
    program
      .command('cka <A> <B>')
      .description('linear CKA (biased and debiased) between every sender cut of A and every receiver cut of B, as matrix.json and heatmaps'),
  )
    .option('--samples <n>', `images compared, a seeded sample of the split (default ${DEFAULT_CKA_SAMPLES})`, parsePositiveInt('--samples'))
    .option('--seed <n>', 'seed of the image sample and of the random control networks (default 0)', parseInteger('--seed'))
    .option('--debiased', 'print and report the debiased estimator as the main values (both are always computed)')
    .option(
      '--controls',
      'also the random controls: random sender -> B, A -> random receiver, random -> random (the random networks of modelsmith stitch --controls with the same --seed)',
    )
    .option('--senders <cuts>', "A's cuts (rows), comma-separated cut points or tensor names (default: stem and every block)", nameList)
    .option('--receivers <cuts>', "B's cuts (columns) (default: into every block and into the classifier)", nameList)
    .option(
      '--random-bn <how>',
      'BatchNorm statistics of the random control networks: data (re-estimated on 2048 training images, as modelsmith stitch does) | init',
      parseChoice('--random-bn', RANDOM_BATCHNORM),
      'data',
    )
    .option(
      '--pool <how>',
      'features per image: none (every cut flattened) | tokens (token cuts averaged over their tokens) ' + '| all (also image cuts averaged over pixels)',
      parseChoice('--pool', CKA_POOLS),
      'none',
    )
    .option('--memory <MiB>', `memory for activations and Gram matrices (default ${DEFAULT_CKA_MEMORY_MIB})`, parsePositiveInt('--memory'))
    .option(
      '--queue <url>',
      'run the pair (one job: its Gram matrices serve every cell) as jobs on a Redis queue (redis://host:6379, rediss://user:password@host); workers: modelsmith worker --queue <url>',
    )
    .requiredOption('-o, --output <dir>', 'folder for matrix.json and the heatmaps (cka.svg/.png; with --controls also cka-biased.* and cka-debiased.*)');
  addDataOptions(cmd).action(async (fileA: string, fileB: string, flags: CkaFlags, c: Command) => {
    const { out, session } = globals(c);
    checkOutputs([outputFolder(flags.output)], [fileA, fileB, ...dataInputs(flags.data)]);
    const options: CkaJobOptions = {
      ...(flags.samples !== undefined ? { samples: flags.samples } : {}),
      ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
      ...(flags.debiased ? { debiased: true } : {}),
      ...(flags.controls ? { controls: true, randomBatchNorm: flags.randomBn } : {}),
      ...(flags.senders ? { senders: flags.senders } : {}),
      ...(flags.receivers ? { receivers: flags.receivers } : {}),
      ...(flags.memory !== undefined ? { memoryMiB: flags.memory } : {}),
      pool: flags.pool,
      ...(flags.batch ? { batchSize: flags.batch } : {}),
      ...(flags.mean ? { mean: flags.mean } : {}),
      ...(flags.std ? { std: flags.std } : {}),
    };
    let r: CkaGridResult;
    if (flags.queue) {
      parseQueueUrl(flags.queue);
      if (flags.split !== 'train' && flags.split !== 'test') throw new UserError(`--split expects train or test, got "${flags.split}"`);
      r = await ckaOnQueue(flags.queue, {
        a: fileA,
        b: fileB,
        data: flags.data,
        split: flags.split,
        ...(flags.classes !== undefined ? { classes: flags.classes } : {}),
        options,
      });
    } else {
      const a = { model: openModel(fileA), file: fileA };
      const b = { model: openModel(fileB), file: fileB };
      const { ds, classes } = await openDataFromFlags(flags);
      r = await computeCkaGrid(a, b, ds, {
        ...session,
        ...options,
        ...(classes ? { classes } : {}),
        ...(flags.controls ? { train: flags.split === 'train' ? ds : await openDataset(flags.data, 'train') } : {}),
      });
    }
    const files = await writeCkaGrid(r, flags.output);
    files.push(await writeRunReport(flags.output));
    printMatrix(r, (s) => out.line(s));
    out.line(`wrote ${files.join(', ')}`);
    out.json({ ...r, files });
  });
}

function printMatrix(r: CkaGridResult, line: (s: string) => void): void {
  const pooled = r.pool === 'none' ? '' : `, pooled: ${r.pool}`;
  line(`linear CKA (${r.estimator}${pooled}), ${r.samples} ${r.split} images; rows: ${r.a} sender cuts, columns: ${r.b} receiver cuts`);
  const fmt = (v: number | null): string => (v === null ? '-' : v.toFixed(3));
  line(table([['', ...r.receivers], ...r.senders.map((s, i) => [s, ...r.values[i]!.map(fmt)])]));
  for (const kind of r.kinds) {
    const t = r.triangles[r.estimator][kind]!;
    line(`${kind}: mean CKA lower-left triangle ${fmt(t.lowerLeft)}, elsewhere ${fmt(t.elsewhere)}`);
  }
}
