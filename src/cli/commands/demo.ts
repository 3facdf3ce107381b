import type { Command } from 'commander';
import { runDemo } from '../../report/demo.js';
import { checkOutputs, dataInputs, globals, outputFolder, withOutputFlags } from './common.js';
import { compact, pct, table } from '../output.js';
import { parsePositiveInt } from '../parse.js';

export function registerDemo(program: Command): void {
  withOutputFlags(program.command('demo').description('the main job: an end-to-end run on the Fashion-MNIST sample shipped with modelsmith'))
    .option('--data <spec>', 'dataset (default: the shipped Fashion-MNIST sample)', 'fashion-mnist-sample')
    .option('-o, --output <dir>', 'where results go', 'runs/demo')
    .option('--epochs <n>', 'training epochs per model', parsePositiveInt('--epochs'), 3)
    .action(async (flags: { data: string; output: string; epochs: number }, cmd: Command) => {
      const { out, session } = globals(cmd);
      checkOutputs([outputFolder(flags.output)], dataInputs(flags.data));
      const r = await runDemo({ ...session, data: flags.data, outDir: flags.output, epochs: flags.epochs });
      out.line(`data: ${r.data}`);
      out.line(
        table([
          ['model', 'parameters', 'FLOPs/image', 'cuts', 'epochs', 'test accuracy'],
          ...r.models.map((m) => [
            m.name,
            compact(m.parameters),
            compact(m.flopsPerImage),
            m.cuts.length,
            m.epochs,
            m.accuracy === null ? '-' : pct(m.accuracy),
          ]),
        ]),
      );
      const lego = r.lego.components.map((c) => `task ${c.task.join(',')}: base ${pct(c.baseAccuracy)} -> component ${pct(c.accuracy)}`).join('; ');
      out.line(`lego (${r.lego.model}): ${lego}; assembled ${pct(r.lego.assembled.scaled)} (unscaled ${pct(r.lego.assembled.unscaled)})`);
      out.line(`lineage: directed accuracy ${pct(r.lineage.full.directed)} (full fine-tuning), ${pct(r.lineage.lowrank.directed)} (LoRA)`);
      out.line(`stitching: ${r.stitch.matrix.senders.length}x${r.stitch.matrix.receivers.length} grid in ${r.stitch.dir}; CKA in ${r.outDir}/cka`);
      out.line(`results: ${r.outDir}/results.json, ${r.outDir}/report.md (${r.seconds.toFixed(1)} s)`);
      out.line(`report: ${r.report} (open it in a browser)`);
      out.json(r);
    });
}
