/** Class subsets (`--classes 0-2,5`) and a stratified train/validation split. */
import { OptionError, UserError } from '../util/errors.js';
import { Rng, hashSeed } from '../util/random.js';
import type { Dataset } from './types.js';

const ITEM = /^(\d+)(?:\s*-\s*(\d+))?$/;

/**
 * Parses a class list such as "0-2,5" against a dataset of `classes` classes.
 * Returns the class ids sorted and without repeats. Errors name the list as `option` (the
 * key of the caller's options it came from).
 *
 * @example
 *   parseClasses('0-2,5', 10);   // [0, 1, 2, 5]
 */
export function parseClasses(text: string, classes: number, option = 'classes'): number[] {
  const items = text.split(',').map((s) => s.trim());
  if (text.trim() === '' || items.some((s) => s === '')) {
    throw new OptionError((o) => `${o(option)} "${text}" is not a class list: expected class ids and ranges like 0-2,5`);
  }
  const chosen = new Set<number>();
  for (const item of items) {
    const m = ITEM.exec(item);
    if (!m) throw new OptionError((o) => `${o(option)} "${text}": "${item}" is not a class id or a range like 0-2`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new OptionError((o) => `${o(option)} "${text}": range ${item} runs backwards (expected low-high, like ${hi}-${lo})`);
    if (hi >= classes) {
      throw new OptionError((o) => `${o(option)} ${hi} is out of range: the dataset has ${classes} classes (0-${classes - 1})`);
    }
    for (let c = lo; c <= hi; c++) chosen.add(c);
  }
  return [...chosen].sort((a, b) => a - b);
}

/** Dataset indices (ascending) of the images whose label is in `classList`. */
export function subsetIndices(ds: Dataset, classList: readonly number[], indices?: readonly number[]): number[] {
  for (const c of classList) {
    if (!Number.isInteger(c) || c < 0 || c >= ds.classes) {
      throw new UserError(`class ${c} is out of range: ${ds.name} has ${ds.classes} classes (0-${ds.classes - 1})`);
    }
  }
  const wanted = new Set(classList);
  const out: number[] = [];
  const from = indices ?? range(ds.size);
  for (const i of from) if (wanted.has(ds.label(i))) out.push(i);
  return out;
}

/**
 * Maps a dataset label to its output index in a model trained on `classList`
 * (position in the list), -1 for labels not in it.
 */
export function labelMap(classList: readonly number[], classes: number): Int32Array {
  const map = new Int32Array(classes).fill(-1);
  classList.forEach((c, k) => { map[c] = k; });
  return map;
}

export interface TrainValidation {
  train: number[];
  validation: number[];
}

/**
 * Holds out `fraction` of each class (rounded) as validation, chosen with a seeded
 * shuffle; both parts are returned in ascending index order.
 */
export function splitTrainValidation(ds: Dataset, fraction: number, seed: number, indices?: readonly number[]): TrainValidation {
  if (!(fraction >= 0 && fraction < 1)) {
    throw new UserError(`validation fraction ${fraction} is out of range: expected a number in [0, 1)`);
  }
  const byClass = new Map<number, number[]>();
  for (const i of indices ?? range(ds.size)) {
    const l = ds.label(i);
    let list = byClass.get(l);
    if (!list) byClass.set(l, (list = []));
    list.push(i);
  }
  const train: number[] = [];
  const validation: number[] = [];
  for (const label of [...byClass.keys()].sort((a, b) => a - b)) {
    const list = byClass.get(label)!;
    // a stream per class: which images a class holds out depends on that class alone
    new Rng(hashSeed(seed, `validation:${label}`)).shuffle(list);
    const held = Math.round(list.length * fraction);
    validation.push(...list.slice(0, held));
    train.push(...list.slice(held));
  }
  const asc = (a: number, b: number): number => a - b;
  return { train: train.sort(asc), validation: validation.sort(asc) };
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
