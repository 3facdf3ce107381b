import type { Command } from 'commander';
import { makeLineageZoo } from '../../lineage/zoo/make.js';
import { parseRanks, parseVariants, type VariantKind } from '../../lineage/zoo/options.js';
import { checkOutputs, dataInputs, globals, outputFolder, withOutputFlags } from './common.js';
import { zooSummary, zooSummaryText } from '../../lineage/zoo/summary.js';
import { parseInteger, parseIntList, parsePositiveInt, parsePositiveNumber } from '../parse.js';
import { parseQueueUrl } from '../../queue/connection.js';
import { queueZooMaker } from '../../queue/zoo.js';
import { definedProps } from '../../util/objects.js';
import { batchOption, queueOption, seedOption } from '../options.js';

interface ZooFlags {
  trees: number;
  children: number;
  depth: number;
  lowrank?: number[];
  arch: string;
  hidden?: number[];
  patch?: number;
  layers?: number;
  heads?: number;
  mlp?: number;
  width: number;
  data: string;
  seed: number;
  steps: number;
  rootSteps: number;
  batch: number;
  variants?: VariantKind[];
  pruneFraction: number;
  onnx?: boolean;
  hf?: boolean;
  hfShardMb?: number;
  output: string;
  queue?: string;
}

export function registerLineageZoo(program: Command): void {
  withOutputFlags(
    program
      .command('lineage-zoo')
      .description(
        'make model families for lineage recovery by really training them: roots from scratch, descendants fine-tuned (fully or LoRA); writes safetensors, truth.json, zoo.json',
      ),
  )
    .option('--trees <n>', 'independent trees (roots)', parseInteger('--trees'), 3)
    .option('--children <n>', 'children per model', parseInteger('--children'), 4)
    .option('--depth <n>', 'levels below each root', parseInteger('--depth'), 2)
    .option('--lowrank <ranks>', 'LoRA fine-tuning with a rank drawn per model from this list, e.g. 4,8 (default: full fine-tuning)', parseRanks)
    .option('--arch <name>', 'zoo architecture (mlp, vit, or any zoo architecture)', 'mlp')
    .option('--hidden <list>', 'MLP hidden sizes (default 128,128,128); for --arch vit the embedding size (default 64)', parseIntList('--hidden'))
    .option('--patch <n>', '--arch vit: patch size (default 7)', parsePositiveInt('--patch'))
    .option('--layers <n>', '--arch vit: encoder layers (default 2)', parsePositiveInt('--layers'))
    .option('--heads <n>', '--arch vit: attention heads (default 4)', parsePositiveInt('--heads'))
    .option('--mlp <n>', '--arch vit: MLP hidden size (default 256)', parsePositiveInt('--mlp'))
    .option('--width <x>', 'width multiplier (non-MLP architectures)', parsePositiveNumber('--width'), 1)
    .requiredOption('--data <spec>', 'dataset: its train split trains, its test split scores each model')
    .addOption(seedOption("zoo seed: every model's seed, task, learning rate and rank derive from it", 0))
    .option('--steps <n>', 'optimiser steps per fine-tuned model', parsePositiveInt('--steps'), 300)
    .option('--root-steps <n>', 'optimiser steps per root', parsePositiveInt('--root-steps'), 600)
    .addOption(batchOption(128))
    .option('--variants <list>', 'also write robustness copies <output>-fp16, -int8, -pruned: any of fp16,int8,pruned', parseVariants)
    .option('--prune-fraction <f>', 'pruned copies: fraction of each weight tensor zeroed', Number, 0.2)
    .option('--onnx', 'also write each model as <output>/onnx/<name>.onnx')
    .addOption(queueOption('the models'))
    .option('--hf', 'also write the zoo as Hugging Face model folders (config.json, model.safetensors, README.md card with base_model) in <output>-hf')
    .option('--hf-shard-mb <n>', 'with --hf: shard weights larger than this many MB (model.safetensors.index.json)', parsePositiveNumber('--hf-shard-mb'))
    .requiredOption('-o, --output <dir>', 'zoo folder (an existing one is continued: models already there are not retrained)')
    .action(async (flags: ZooFlags, cmd: Command) => {
      const { out, session } = globals(cmd);
      checkOutputs([outputFolder(flags.output)], dataInputs(flags.data));
      if (flags.queue) parseQueueUrl(flags.queue);
      const opts = {
        data: flags.data,
        outDir: flags.output,
        trees: flags.trees,
        children: flags.children,
        depth: flags.depth,
        arch: flags.arch,
        width: flags.width,
        seed: flags.seed,
        steps: flags.steps,
        rootSteps: flags.rootSteps,
        batchSize: flags.batch,
        pruneFraction: flags.pruneFraction,
        ...definedProps({
          lowrank: flags.lowrank,
          hidden: flags.hidden,
          patch: flags.patch,
          layers: flags.layers,
          heads: flags.heads,
          mlp: flags.mlp,
          variants: flags.variants,
          onnx: flags.onnx,
          hf: flags.hf,
          hfShardBytes: flags.hfShardMb !== undefined ? Math.round(flags.hfShardMb * 1e6) : undefined,
        }),
        ...session,
      };
      const maker = flags.queue ? queueZooMaker(flags.queue, opts) : undefined;
      let r: Awaited<ReturnType<typeof makeLineageZoo>>;
      try {
        r = await makeLineageZoo(opts, maker);
      } finally {
        await maker?.close();
      }
      const summary = zooSummary(r);
      out.line(zooSummaryText(summary));
      out.json(summary);
    });
}
