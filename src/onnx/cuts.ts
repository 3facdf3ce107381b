/**
 * Cut points by name: a model's recorded cut points (zoo metadata) or any tensor of its
 * graph. Every command that takes a cut or tap name resolves it here, so an unknown
 * name always gets the same helpful error.
 */
import type { Model } from './types.js';
import { getCuts, type CutPoint } from './metadata.js';
import { tensorNames } from './graph.js';
import { UserError } from '../util/errors.js';

/** The recorded cut points, or none. */
export function cutPoints(model: Model): CutPoint[] {
  return getCuts(model) ?? [];
}

/** Resolves a cut point name or tensor name to a tensor name of the graph. */
export function resolveCut(model: Model, name: string, file = 'the model'): string {
  const cut = cutPoints(model).find((c) => c.name === name);
  if (cut) return cut.tensor;
  if (tensorNames(model.graph).has(name)) return name;
  const cuts = cutPoints(model).map((c) => c.name);
  const hint = cuts.length
    ? `its cut points are: ${cuts.join(', ')}`
    : `it records no cut points; names like ${suggest(model, name).join(', ')} exist (see modelsmith inspect)`;
  throw new UserError(`cut "${name}" does not exist in ${file}; ${hint}`);
}

/** A few tensor names close to `name`, for error messages. */
function suggest(model: Model, name: string): string[] {
  const all = [...tensorNames(model.graph)].filter((t) => !model.graph.initializers.has(t));
  const score = (t: string): number => (t.includes(name) || name.includes(t) ? 0 : 1) + Math.abs(t.length - name.length) / 100;
  return all.sort((a, b) => score(a) - score(b)).slice(0, 5);
}
