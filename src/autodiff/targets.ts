/**
 * Which dataset classes a training run uses and which output each maps to. A model
 * with label metadata keeps its mapping; `--classes` with as many classes as outputs
 * remaps outputs to those classes; otherwise output i is class i.
 */
import type { Model } from '../onnx/types.js';
import { getLabels, identityLabels, type OutputLabel } from '../onnx/metadata.js';
import type { Dataset } from '../data/types.js';
import { mapOutputs, outputCount } from '../runtime/labels.js';
import { OptionError, UserError } from '../util/errors.js';

export interface Targets {
  /** dataset classes trained on */
  classes: number[];
  /** dataset label -> output index (-1: not trained on) */
  outputOf: Int32Array;
  /** the labels metadata the trained model gets */
  labels: OutputLabel[];
}

export function resolveTargets(model: Model, ds: Pick<Dataset, 'name' | 'classes' | 'classNames'>, classes?: number[], file = 'the model'): Targets {
  const k = outputCount(model);
  if (classes && k === classes.length) {
    return fromList(
      ds,
      classes,
      classes.map((c) => labelFor(ds, c)),
    );
  }
  if (!getLabels(model) && k !== ds.classes) {
    throw new OptionError(
      (o) => `${file} has ${k} outputs but ${ds.name} has ${ds.classes} classes; pass ${o('classes')} with ${k} classes to choose which output is which`,
    );
  }
  const map = mapOutputs(model, ds, file);
  const labels = getLabels(model) ?? identityLabels(ds.name, ds.classes, ds.classNames);
  let wanted = [...new Set(Array.from(map.classOf).filter((c) => c >= 0))].sort((a, b) => a - b);
  if (classes) {
    const missing = classes.filter((c) => !wanted.includes(c));
    if (missing.length)
      throw new UserError(
        `${file} has no output for class${missing.length > 1 ? 'es' : ''} ${missing.join(',')} of ${ds.name} (it has ${k} outputs); pass exactly ${k} classes to remap its outputs`,
      );
    wanted = classes;
  }
  const outputOf = new Int32Array(ds.classes).fill(-1);
  map.classOf.forEach((c, j) => {
    if (c >= 0 && wanted.includes(c)) outputOf[c] = j;
  });
  return { classes: wanted, outputOf, labels };
}

/** Writes the output index of each of the first `n` labels into `target` (the training graph's class input). */
export function writeTargets(target: BigInt64Array, labels: ArrayLike<number>, n: number, outputOf: ArrayLike<number>): void {
  for (let i = 0; i < n; i++) target[i] = BigInt(outputOf[labels[i]!]!);
}

function fromList(ds: Pick<Dataset, 'classes'>, classes: number[], labels: OutputLabel[]): Targets {
  const outputOf = new Int32Array(ds.classes).fill(-1);
  classes.forEach((c, j) => (outputOf[c] = j));
  return { classes, outputOf, labels };
}

function labelFor(ds: Pick<Dataset, 'name' | 'classNames'>, c: number): OutputLabel {
  const name = ds.classNames?.[c];
  return name ? { dataset: ds.name, class: c, name } : { dataset: ds.name, class: c };
}
