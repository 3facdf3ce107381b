import type { Command } from 'commander';
import { writeCkaGrid, DEFAULT_CKA_SAMPLES, DEFAULT_CKA_MEMORY_MIB } from '../../stitch/cka-grid.js';
import { checkCkaSplit, runCkaJob, type CkaJob, type CkaJobOptions } from '../../stitch/cka-job.js';
import { ckaGridText } from '../../stitch/tables.js';
import { addDataOptions, type DataFlags } from '../data-options.js';
import type { RandomBatchNorm } from '../../stitch/controls.js';
import { checkOutputs, dataInputs, globals, outputFolder, withOutputFlags } from './common.js';
import { parseChoice, parsePositiveInt } from '../parse.js';
import { CKA_POOLS, type CkaPool } from '../../stitch/views.js';
import { writeRunReport } from '../../report/html/report.js';
import { parseQueueUrl } from '../../queue/connection.js';
import { ckaOnQueue } from '../../queue/cka.js';
import { cutsOption, queueOption, randomBatchNormOption, seedOption } from '../options.js';

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

export function registerCka(program: Command): void {
  const cmd = withOutputFlags(
    program
      .command('cka <A> <B>')
      .description('linear CKA (biased and debiased) between every sender cut of A and every receiver cut of B, as matrix.json and heatmaps'),
  )
    .option('--samples <n>', `images compared, a seeded sample of the split (default ${DEFAULT_CKA_SAMPLES})`, parsePositiveInt('--samples'))
    .addOption(seedOption('seed of the image sample and of the random control networks (default 0)'))
    .option('--debiased', 'print and report the debiased estimator as the main values (both are always computed)')
    .option(
      '--controls',
      'also the random controls: random sender -> B, A -> random receiver, random -> random (the random networks of modelsmith stitch --controls with the same --seed)',
    )
    .addOption(cutsOption('senders'))
    .addOption(cutsOption('receivers'))
    .addOption(randomBatchNormOption())
    .option(
      '--pool <how>',
      'features per image: none (every cut flattened) | tokens (token cuts averaged over their tokens) ' + '| all (also image cuts averaged over pixels)',
      parseChoice('--pool', CKA_POOLS),
      'none',
    )
    .option('--memory <MiB>', `memory for activations and Gram matrices (default ${DEFAULT_CKA_MEMORY_MIB})`, parsePositiveInt('--memory'))
    .addOption(queueOption('the pair (one job: its Gram matrices serve every cell)'))
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
    checkCkaSplit(flags.split);
    if (flags.queue) parseQueueUrl(flags.queue);
    const job: CkaJob = {
      a: fileA,
      b: fileB,
      data: flags.data,
      split: flags.split,
      ...(flags.classes !== undefined ? { classes: flags.classes } : {}),
      options,
    };
    const r = flags.queue ? await ckaOnQueue(flags.queue, job) : await runCkaJob(job, session);
    const files = await writeCkaGrid(r, flags.output);
    files.push(await writeRunReport(flags.output));
    out.line(ckaGridText(r));
    out.line(`wrote ${files.join(', ')}`);
    out.json({ ...r, files });
  });
}
