import { addInputOptions } from '../data-options.js';
import type { Command } from 'commander';
import { openModel } from '../../onnx/open.js';
import { saveModel } from '../../onnx/proto.js';
import { modelStats } from '../../onnx/stats.js';
import { openDataset } from '../../data/resolve.js';
import { parseClasses } from '../../data/classes.js';
import { evaluate } from '../../runtime/evaluate.js';
import { fileHash } from '../../autodiff/train.js';
import { disassemble, saveMasks } from '../../lego/disassemble.js';
import { DEFAULT_BATCHNORM_SAMPLES } from '../../lego/types.js';
import { checkOutputs, dataInputs, globals, outputFile, withOutputFlags } from './common.js';
import { compact, pct, table } from '../output.js';
import { parseInteger, parsePositiveInt } from '../parse.js';
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
  bnSamples: number;
  output: string;
}

const threshold = (flag: string) => (text: string): number => {
  const v = Number(text);
  if (!Number.isFinite(v) || v < 0 || v > 1) throw new UserError(`${flag} expects a number in [0, 1], got "${text}"`);
  return v;
};

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
  addInputOptions(withOutputFlags(program.command('disassemble <model>').description('cut the sub-network for a task (a set of classes) out of a classifier as a smaller standalone model (Model LEGO)')))
    .requiredOption('--data <spec>', 'dataset: the train split chooses representative samples, the test split scores base and component')
    .requiredOption('--task <classes>', 'the task\'s classes, e.g. 0-2 or 1,5,7')
    .option('--samples <n>', 'representative samples per class (most confident training images)', parsePositiveInt('--samples'), 50)
    .option('--alpha-conv <x>', 'conv contribution threshold (default 0.3)', threshold('--alpha-conv'))
    .option('--beta-conv <x>', 'conv input-mask threshold (default 0.2)', threshold('--beta-conv'))
    .option('--alpha-linear <x>', 'linear contribution threshold (default 0.4)', threshold('--alpha-linear'))
    .option('--beta-linear <x>', 'linear input-mask threshold (default 0.3)', threshold('--beta-linear'))
    .option('--batch <n>', 'batch size', parsePositiveInt('--batch'))
    .option('--unbalanced <lo,hi>', 'a random number of samples per class in [lo, hi] instead of --samples')
    .option('--seed <n>', 'seed for --unbalanced and for the images that re-estimate BatchNorm statistics', parseInteger('--seed'), 0)
    .option('--bn-samples <n>', `training images of the task's classes that re-estimate the component's BatchNorm statistics; 0 keeps the parent's`, parseInteger('--bn-samples'), DEFAULT_BATCHNORM_SAMPLES)
    .option('--masks <file>', 'also write the masks (per layer and class) as JSON')
    .requiredOption('-o, --output <file>', 'where to write the component .onnx')
    .action(async (file: string, flags: DisassembleFlags, cmd: Command) => {
      const { out, session } = globals(cmd);
      checkOutputs([outputFile(flags.output), ...(flags.masks !== undefined ? [outputFile(flags.masks, '--masks')] : [])], [file, ...dataInputs(flags.data)]);
      const model = openModel(file);
      const train = await openDataset(flags.data, 'train');
      const task = parseTaskClasses(flags.task, train.classes);
      const norm = { ...(flags.mean ? { mean: flags.mean } : {}), ...(flags.std ? { std: flags.std } : {}) };
      const started = Date.now();
      const c = await disassemble(model, train, {
        task, samplesPerClass: flags.samples, session, parentHash: fileHash(file), ...norm, batchNormSamples: flags.bnSamples, seed: flags.seed,
        ...(flags.unbalanced ? { unbalanced: parseUnbalanced(flags.unbalanced, flags.seed) } : {}),
        ...(flags.batch ? { batchSize: flags.batch } : {}),
        ...(flags.alphaConv !== undefined ? { alphaConv: flags.alphaConv } : {}), ...(flags.betaConv !== undefined ? { betaConv: flags.betaConv } : {}),
        ...(flags.alphaLinear !== undefined ? { alphaLinear: flags.alphaLinear } : {}), ...(flags.betaLinear !== undefined ? { betaLinear: flags.betaLinear } : {}),
      });
      const seconds = (Date.now() - started) / 1000;
      saveModel(c.model, flags.output);
      if (flags.masks) saveMasks(c.masks, flags.masks);
      const test = await openDataset(flags.data, 'test');
      const evalOpts = { ...session, classes: c.task, ...norm, ...(flags.batch ? { batchSize: flags.batch } : {}) };
      const base = await evaluate(model, test, { ...evalOpts, file, label: 'eval base' });
      const comp = await evaluate(c.model, test, { ...evalOpts, file: flags.output, label: 'eval component' });
      const s0 = modelStats(model);
      const s1 = modelStats(c.model);
      out.line(`wrote ${flags.output}: component for classes ${c.task.join(',')} (${seconds.toFixed(1)} s)${flags.masks ? `; masks in ${flags.masks}` : ''}`);
      out.line(table([
        ['model', 'accuracy on task images', 'parameters', 'FLOPs/image'],
        [`base (${s0.outputs[0]?.shape?.[1] ?? '?'}-way)`, pct(base.accuracy), compact(s0.parameters), compact(s0.flopsPerImage)],
        [`component (${c.task.length}-way)`, pct(comp.accuracy), compact(s1.parameters), compact(s1.flopsPerImage)],
      ]));
      out.line(`scored on ${comp.samples} ${test.split} images of classes ${c.task.join(',')} (${test.source})`);
      if (c.warnings.length) out.line(`${c.warnings.length} warning(s), see above`);
      out.json({
        output: flags.output, task: c.task, seconds,
        base: { accuracy: base.accuracy, perClass: base.perClass, parameters: s0.parameters, flopsPerImage: s0.flopsPerImage },
        component: { accuracy: comp.accuracy, perClass: comp.perClass, parameters: s1.parameters, flopsPerImage: s1.flopsPerImage },
        samples: comp.samples, data: test.source, thresholds: c.masks.thresholds, samplesPerClass: c.masks.samples, batchNormSamples: flags.bnSamples,
        warnings: c.warnings, ...(flags.masks ? { masks: flags.masks } : {}),
      });
    });
}

/** --task parsing: parseClasses with the flag named --task in messages. */
function parseTaskClasses(text: string, classes: number): number[] {
  try {
    return parseClasses(text, classes);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(e.message.replace(/--classes/g, '--task'));
    throw e;
  }
}
