import type { Command } from 'commander';
import { saveModel } from '../../onnx/proto.js';
import { openModel } from '../../onnx/open.js';
import { extractCut } from '../../onnx/cuts.js';
import { modelStats } from '../../onnx/stats.js';
import { checkOutputs, globals, outputFile, withOutputFlags } from './common.js';
import { compact } from '../output.js';

interface ExtractFlags {
  from?: string;
  to?: string;
  output: string;
}

export function registerExtract(program: Command): void {
  const about = 'cut a model between two cut points (or tensor names every input-to-output path passes through) into a standalone model';
  withOutputFlags(program.command('extract <model>').description(about))
    .option('--from <cut>', 'start at this cut point or tensor (default: the model input)')
    .option('--to <cut>', 'end at this cut point or tensor (default: the model output)')
    .requiredOption('-o, --output <file>', 'where to write the extracted .onnx model')
    .action((file: string, flags: ExtractFlags, cmd: Command) => {
      const { out } = globals(cmd);
      checkOutputs([outputFile(flags.output)], [file]);
      const model = openModel(file);
      const { model: part, from, to } = extractCut(model, flags.from, flags.to, file);
      saveModel(part, flags.output);
      const stats = modelStats(part);
      out.line(`wrote ${flags.output}: ${from} -> ${to}, ${part.graph.nodes.length} nodes, ${compact(stats.parameters)} parameters`);
      out.json({ file: flags.output, from, to, nodes: part.graph.nodes.length, parameters: stats.parameters, flopsPerImage: stats.flopsPerImage });
    });
}
