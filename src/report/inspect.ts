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
