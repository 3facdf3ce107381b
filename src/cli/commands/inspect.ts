import type { Command } from 'commander';
import { openModel } from '../../onnx/open.js';
import { describeModel, modelReportText } from '../../report/inspect.js';
import { globals, withOutputFlags } from './common.js';

export function registerInspect(program: Command): void {
  withOutputFlags(
    program.command('inspect <model>').description('inputs, outputs, parameters, FLOPs per image, operators, cut points and metadata of a model'),
  ).action((file: string, _flags: unknown, cmd: Command) => {
    const { out } = globals(cmd);
    const report = describeModel(openModel(file), file);
    out.line(modelReportText(report));
    out.json(report);
  });
}
