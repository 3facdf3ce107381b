/**
 * Which parameters to train: all learned parameters, minus those matching `freeze`
 * patterns, or only those matching `trainable` patterns. Patterns are globs over
 * initializer names (`*` any run of characters, `?` one), comma-separated.
 */
import type { Graph } from '../onnx/types.js';
import { trainableParameters } from '../onnx/parameters.js';
import { OptionError, UserError } from '../util/errors.js';

function globToRegExp(glob: string): RegExp {
  const escaped = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}

function matching(names: readonly string[], patterns: string, option: keyof Selection): Set<string> {
  const out = new Set<string>();
  for (const p of patterns
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const re = globToRegExp(p);
    const hits = names.filter((n) => re.test(n));
    if (!hits.length) {
      const sample = names.slice(0, 6).join(', ');
      throw new OptionError((o) => `${o(option)} pattern "${p}" matches no parameter; parameters are named like ${sample}${names.length > 6 ? ', ...' : ''}`);
    }
    hits.forEach((h) => out.add(h));
  }
  return out;
}

export interface Selection {
  freeze?: string;
  trainable?: string;
}

/** The parameters to train, in graph order. */
export function selectTrainable(graph: Graph, sel: Selection = {}): string[] {
  const all = trainableParameters(graph);
  if (sel.freeze && sel.trainable) throw new OptionError((o) => `give ${o('freeze')} or ${o('trainable')}, not both`);
  let chosen = all;
  if (sel.trainable) {
    const keep = matching(all, sel.trainable, 'trainable');
    chosen = all.filter((n) => keep.has(n));
  } else if (sel.freeze) {
    const drop = matching(all, sel.freeze, 'freeze');
    chosen = all.filter((n) => !drop.has(n));
  }
  if (!chosen.length) throw new UserError('nothing left to train: every parameter is frozen');
  return chosen;
}
