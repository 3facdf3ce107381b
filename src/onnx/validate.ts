/**
 * Model validation before any work starts, so that a bad file fails with one clear
 * sentence (file, node, reason) instead of a runtime error deep inside ONNX Runtime.
 */
import type { Dim, Graph, Model } from './types.js';
import { topoSort } from './graph.js';
import { numel, formatDims } from './tensor.js';
import { ruleFor, SUPPORTED_OPS } from './rules.js';
import { analyzeShapes, unsupportedMessage } from './shapes.js';
import { UserError } from '../util/errors.js';

export { SUPPORTED_OPS };

/**
 * Throws a UserError describing the first problem found, prefixed with `file` when
 * given. Checks, in order: supported operators; tensors defined twice; initializer
 * sizes; node inputs and graph outputs that nothing produces; cycles; operator arity,
 * required attributes and shape conflicts (through shape inference); declared output
 * shapes that contradict the inferred ones.
 *
 * Duplicate node names are accepted: ONNX does not require unique node names and
 * modelsmith's messages name the operator too.
 *
 * @example validateModel(loadModel(path), path);
 */
export function validateModel(model: Model, file?: string): void {
  try {
    checkStructure(model.graph);
    const { known } = analyzeShapes(model);
    for (const o of model.graph.outputs) {
      const inferred = known.get(o.name)?.shape;
      if (o.shape && inferred && conflicts(o.shape, inferred)) {
        throw new UserError(`graph output "${o.name}" is declared as ${formatDims(o.shape)} but the graph computes ${formatDims(inferred)}`);
      }
    }
  } catch (e) {
    if (e instanceof UserError && file) throw new UserError(`${file}: ${e.message}`, { cause: e });
    throw e;
  }
}

function checkStructure(g: Graph): void {
  for (const n of g.nodes) if (!ruleFor(n.opType, n.domain)) throw new UserError(unsupportedMessage(n));
  const definedBy = new Map<string, string>();
  const define = (name: string, by: string): void => {
    const other = definedBy.get(name);
    if (other !== undefined) throw new UserError(`tensor "${name}" is defined twice: by ${other} and by ${by}`);
    definedBy.set(name, by);
  };
  for (const v of g.inputs) define(v.name, 'a graph input');
  for (const [name, t] of g.initializers) {
    if (t.data.length !== numel(t.dims)) {
      throw new UserError(`initializer "${name}" has shape ${formatDims(t.dims)} (${numel(t.dims)} values) but holds ${t.data.length}`);
    }
    if (!definedBy.has(name)) define(name, 'an initializer');
  }
  for (const n of g.nodes) for (const o of n.outputs) if (o) define(o, `node "${n.name}" (${n.opType})`);
  for (const n of g.nodes) {
    for (const i of n.inputs) {
      if (i && !definedBy.has(i)) throw new UserError(`node "${n.name}" (${n.opType}) reads tensor "${i}", which no node, input or initializer produces`);
    }
  }
  for (const o of g.outputs) {
    if (!definedBy.has(o.name)) throw new UserError(`graph output "${o.name}" is never produced`);
  }
  topoSort(g);
}

/** Two shapes contradict when ranks differ or a fixed dim differs; symbols match anything. */
function conflicts(a: Dim[], b: Dim[]): boolean {
  if (a.length !== b.length) return true;
  return a.some((d, i) => typeof d === 'number' && typeof b[i] === 'number' && d !== b[i]);
}
