/**
 * Which dataset class each model output stands for. A component cut from a 10-class
 * model has 3 outputs that map to classes {0,1,2}; an assembled model may map outputs to
 * classes of several datasets. Scoring always compares dataset labels with the class of
 * the arg-max output, so models with different output sets are scored on the same images.
 */
import type { Model } from '../onnx/types.js';
import { getLabels, identityLabels, type OutputLabel } from '../onnx/metadata.js';
import type { Dataset } from '../data/types.js';
import { OptionError, UserError } from '../util/errors.js';
import { warn } from '../util/progress.js';

/** Files already warned about an ignored --labels (one warning per model per process). */
const warnedLabels = new Set<string>();

export interface OutputMap {
  labels: OutputLabel[];
  /** output index -> dataset class id, or -1 when the output belongs to another dataset */
  classOf: Int32Array;
}

export function outputCount(model: Model): number {
  const out = model.graph.outputs[0];
  const k = out?.shape?.[out.shape.length - 1];
  return typeof k === 'number' ? k : -1;
}

/** Maps a classifier's outputs onto the classes of `ds`. */
export function mapOutputs(model: Model, ds: Pick<Dataset, 'name' | 'classes' | 'classNames' | 'outputLabels'>, file = 'model'): OutputMap {
  const k = outputCount(model);
  let labels = getLabels(model);
  if (!labels && ds.outputLabels) {
    if (k !== -1 && ds.outputLabels.length !== k) {
      const given = ds.outputLabels.length;
      throw new OptionError((o) => `${file} has ${k} outputs but ${o('labels')} gives ${given} labels; give one class per output`);
    }
    labels = ds.outputLabels.map((c) =>
      c >= 0 ? { dataset: ds.name, class: c, ...(ds.classNames?.[c] ? { name: ds.classNames[c] } : {}) } : { dataset: '(none)', class: 0 },
    );
  } else if (!labels) {
    if (k !== -1 && k !== ds.classes) {
      throw new OptionError(
        (o) =>
          `${file} has ${k} outputs and carries no label metadata, but ${ds.name} has ${ds.classes} classes; cannot tell which output is which class: give ${o('labels')} (e.g. ${o('labels', `0-${Math.min(k, ds.classes) - 1}`)} or ${o('labels', 'file:names.txt')})`,
      );
    }
    labels = identityLabels(ds.name, ds.classes, ds.classNames);
  } else if (ds.outputLabels && !warnedLabels.has(file)) {
    warnedLabels.add(file);
    warn(`${file} carries label metadata; --labels applies only to models without it and is ignored for this one`);
  }
  if (k !== -1 && labels.length !== k) {
    throw new UserError(`${file}: label metadata lists ${labels.length} classes but the model has ${k} outputs`);
  }
  const classOf = Int32Array.from(labels, (l) => (sameDataset(l.dataset, ds.name) && l.class < ds.classes ? l.class : -1));
  if (classOf.every((c) => c < 0)) {
    const names = [...new Set(labels.map((l) => l.dataset))].join(', ');
    throw new UserError(`${file} classifies classes of ${names}, none of which belong to dataset ${ds.name}`);
  }
  return { labels, classOf };
}

/** Dataset names match ignoring case and a "-sample" suffix (the shipped sample is the same dataset). */
export function sameDataset(a: string, b: string): boolean {
  const norm = (s: string): string => s.toLowerCase().replace(/-sample$/, '');
  return norm(a) === norm(b);
}
