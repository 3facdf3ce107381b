import type { Command } from 'commander';
import { ZOO, createZooModel } from '../../nn/zoo.js';
import { saveModel } from '../../onnx/proto.js';
import { modelStats } from '../../onnx/stats.js';
import { checkOutputs, globals, outputFile, withOutputFlags } from './common.js';
import { compact, table } from '../output.js';
import { definedProps } from '../../util/objects.js';
import { parseIntList, parsePositiveInt, parsePositiveNumber, parseShape } from '../parse.js';
import { seedOption } from '../options.js';

interface CreateFlags {
  blocks?: number[];
  hidden?: number[];
  patch?: number;
  layers?: number;
  heads?: number;
  mlp?: number;
  input: [number, number, number];
  classes: number;
  width: number;
  seed: number;
  output: string;
}

export function registerZoo(program: Command): void {
  const zoo = program.command('zoo').description('the built-in model architectures');
  withOutputFlags(zoo.command('list').description('list the architectures')).action((_opts, cmd: Command) => {
    const { out } = globals(cmd);
    const rows = Object.entries(ZOO).map(([name, z]) => ({ name, description: z.description }));
    out.line(table([['architecture', 'description'], ...rows.map((r) => [r.name, r.description])]));
    out.json({ architectures: rows });
  });
  withOutputFlags(zoo.command('create <arch>').description('create a freshly initialised model (seeded Kaiming init)'))
    .option('--blocks <list>', 'residual blocks per stage for "resnet", e.g. 1,1,1,1', parseIntList('--blocks'))
    .option('--hidden <list>', 'hidden layer sizes for "mlp", e.g. 256,128; the embedding size for "vit", e.g. 128', parseIntList('--hidden'))
    .option('--patch <n>', 'patch size for "vit" (default 4)', parsePositiveInt('--patch'))
    .option('--layers <n>', 'encoder layers for "vit" (default 4)', parsePositiveInt('--layers'))
    .option('--heads <n>', 'attention heads for "vit" (default 4)', parsePositiveInt('--heads'))
    .option('--mlp <n>', 'MLP hidden size for "vit" (default 512)', parsePositiveInt('--mlp'))
    .option('--input <CxHxW>', 'input shape', parseShape('--input'), [1, 28, 28])
    .option('--classes <n>', 'number of classes', parsePositiveInt('--classes'), 10)
    .option('--width <x>', 'width multiplier for every layer', parsePositiveNumber('--width'), 1)
    .addOption(seedOption('initialisation seed', 0))
    .requiredOption('-o, --output <file>', 'where to write the .onnx model')
    .action((arch: string, flags: CreateFlags, cmd: Command) => {
      const { out } = globals(cmd);
      checkOutputs([outputFile(flags.output)]);
      const model = createZooModel(arch, {
        input: flags.input,
        classes: flags.classes,
        width: flags.width,
        seed: flags.seed,
        ...definedProps({ blocks: flags.blocks, hidden: flags.hidden, patch: flags.patch, layers: flags.layers, heads: flags.heads, mlp: flags.mlp }),
      });
      saveModel(model, flags.output);
      const stats = modelStats(model);
      out.line(
        `wrote ${flags.output}: ${arch}, input ${flags.input.join('x')}, ${flags.classes} classes, ${compact(stats.parameters)} parameters, ${compact(stats.flopsPerImage)}FLOPs per image`,
      );
      out.json({
        file: flags.output,
        arch,
        input: flags.input,
        classes: flags.classes,
        width: flags.width,
        seed: flags.seed,
        parameters: stats.parameters,
        flopsPerImage: stats.flopsPerImage,
      });
    });
}
