/**
 * What `modelsmith inspect` shows: a model's interface, size, cost, operators, cut
 * points and modelsmith metadata.
 *
 * @example
 *   const r = describeModel(loadModel('m.onnx'), 'm.onnx');
 *   console.log(r.parameters, r.flopsPerImage, r.cuts.map((c) => c.name));
 */
import type { Dim, Model } from '../onnx/types.js';
import { modelStats } from '../onnx/stats.js';
import { compact, table } from '../util/format.js';
import { isDefaultDomain } from '../onnx/graph.js';
import {
  getArch,
  getCuts,
  getInputSpec,
  getLabels,
  getProvenance,
  type ArchInfo,
  type CutPoint,
  type InputSpec,
  type OutputLabel,
  type Provenance,
} from '../onnx/metadata.js';

export interface TensorSummary {
  name: string;
  dtype: string;
  shape: Dim[] | null;
}

export interface ModelReport {
  file: string;
  producer: string;
  opset: number;
  inputs: TensorSummary[];
  outputs: TensorSummary[];
  parameters: number;
  flopsPerImage: number;
  operators: Record<string, number>;
  cuts: CutPoint[];
  arch: ArchInfo | null;
  input: InputSpec | null;
  labels: OutputLabel[] | null;
  provenance: Provenance | null;
}

/**
 * What `modelsmith inspect` prints: inputs, outputs, operators, parameters, FLOPs, labels, cuts, provenance.
 *
 * @example
 *   const r = describeModel(openModel('m.onnx'), 'm.onnx');
 *   console.log(r.parameters, r.flopsPerImage, r.cuts.map((c) => c.name));
 */
export function describeModel(model: Model, file: string): ModelReport {
  const stats = modelStats(model);
  const summary = (v: { name: string; dtype: string; shape?: Dim[] }): TensorSummary => ({ name: v.name, dtype: v.dtype, shape: v.shape ?? null });
  const opset = model.opsets.find((o) => isDefaultDomain(o.domain))?.version ?? 0;
  return {
    file,
    producer: [model.producerName, model.producerVersion].filter(Boolean).join(' '),
    opset,
    inputs: stats.inputs.map(summary),
    outputs: stats.outputs.map(summary),
    parameters: stats.parameters,
    flopsPerImage: stats.flopsPerImage,
    operators: Object.fromEntries(Object.entries(stats.opHistogram).sort((a, b) => b[1] - a[1])),
    cuts: getCuts(model) ?? [],
    arch: getArch(model) ?? null,
    input: getInputSpec(model) ?? null,
    labels: getLabels(model) ?? null,
    provenance: getProvenance(model) ?? null,
  };
}

const shapeText = (s: unknown[] | null): string => (s ? `[${s.map((d) => (d === null ? '?' : String(d))).join(', ')}]` : '?');

/**
 * A model report as text: inputs, outputs, size, normalisation, classes, provenance,
 * operator counts and cut points.
 *
 * @example console.log(modelReportText(describeModel(openModel('r.onnx'), 'r.onnx')));
 */
export function modelReportText(r: ModelReport): string {
  const lines = [`${r.file}  (opset ${r.opset}${r.producer ? `, produced by ${r.producer}` : ''})`];
  if (r.arch) lines.push(`architecture: ${JSON.stringify(r.arch)}`);
  for (const i of r.inputs) lines.push(`input   ${i.name}: ${i.dtype} ${shapeText(i.shape)}`);
  for (const o of r.outputs) lines.push(`output  ${o.name}: ${o.dtype} ${shapeText(o.shape)}`);
  lines.push(`parameters: ${r.parameters.toLocaleString('en-US')} (${compact(r.parameters)})`);
  lines.push(`FLOPs per image: ${r.flopsPerImage.toLocaleString('en-US')} (${compact(r.flopsPerImage)})`);
  if (r.input?.mean) lines.push(`normalisation: mean ${r.input.mean.join(',')} std ${r.input.std?.join(',')}`);
  if (r.labels) lines.push(`classes: ${r.labels.map((l) => `${l.dataset}:${l.class}${l.name ? ` ${l.name}` : ''}`).join(', ')}`);
  if (r.provenance)
    lines.push(
      `provenance: ${r.provenance.operation}${r.provenance.parents.length ? ` from ${r.provenance.parents.map((p) => p.slice(0, 12)).join(', ')}` : ''}`,
    );
  lines.push('operators:');
  lines.push(table(Object.entries(r.operators).map(([op, n]) => [`  ${op}`, n])));
  if (r.cuts.length) {
    lines.push('cut points:');
    lines.push(table(r.cuts.map((c) => [`  ${c.name}`, c.kind, c.tensor])));
  } else {
    lines.push('cut points: none recorded (any tensor name can be used as a cut)');
  }
  return lines.join('\n');
}
