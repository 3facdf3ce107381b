import type { Command } from 'commander';
import { openModel } from '../../onnx/open.js';
import { describeModel, type ModelReport } from '../../report/inspect.js';
import { globals, withOutputFlags } from './common.js';
import { compact, table, type Output } from '../output.js';

export function registerInspect(program: Command): void {
  withOutputFlags(
    program.command('inspect <model>').description('inputs, outputs, parameters, FLOPs per image, operators, cut points and metadata of a model'),
  ).action((file: string, _flags: unknown, cmd: Command) => {
    const { out } = globals(cmd);
    const report = describeModel(openModel(file), file);
    printReport(out, report);
    out.json(report);
  });
}

const shape = (s: unknown[] | null): string => (s ? `[${s.map((d) => (d === null ? '?' : String(d))).join(', ')}]` : '?');

function printReport(out: Output, r: ModelReport): void {
  out.line(`${r.file}  (opset ${r.opset}${r.producer ? `, produced by ${r.producer}` : ''})`);
  if (r.arch) out.line(`architecture: ${JSON.stringify(r.arch)}`);
  for (const i of r.inputs) out.line(`input   ${i.name}: ${i.dtype} ${shape(i.shape)}`);
  for (const o of r.outputs) out.line(`output  ${o.name}: ${o.dtype} ${shape(o.shape)}`);
  out.line(`parameters: ${r.parameters.toLocaleString('en-US')} (${compact(r.parameters)})`);
  out.line(`FLOPs per image: ${r.flopsPerImage.toLocaleString('en-US')} (${compact(r.flopsPerImage)})`);
  if (r.input?.mean) out.line(`normalisation: mean ${r.input.mean.join(',')} std ${r.input.std?.join(',')}`);
  if (r.labels) out.line(`classes: ${r.labels.map((l) => `${l.dataset}:${l.class}${l.name ? ` ${l.name}` : ''}`).join(', ')}`);
  if (r.provenance)
    out.line(
      `provenance: ${r.provenance.operation}${r.provenance.parents.length ? ` from ${r.provenance.parents.map((p) => p.slice(0, 12)).join(', ')}` : ''}`,
    );
  out.line('operators:');
  out.line(table(Object.entries(r.operators).map(([op, n]) => [`  ${op}`, n])));
  if (r.cuts.length) {
    out.line('cut points:');
    out.line(table(r.cuts.map((c) => [`  ${c.name}`, c.kind, c.tensor])));
  } else {
    out.line('cut points: none recorded (any tensor name can be used as a cut)');
  }
}
