/**
 * Cut points by name: a model's recorded cut points (zoo metadata) or, for any other
 * model, the block-level cuts found from its structure (blocks.ts), or any tensor that
 * every path from the input to the output passes through (dominators.ts). Every
 * command that takes a cut name resolves it here, so an unknown name or a tensor that
 * is not a cut always gets the same one-line error.
 */
import type { Dim, Model, Node } from './types.js';
import { monomial } from './dims.js';
import { getCuts, type CutPoint } from './metadata.js';
import { cloneModel, int, producers, tensorNames, topoSort, uniqueName } from './graph.js';
import { int64 } from './tensor.js';
import { blockCuts } from './blocks.js';
import { batchLayouts, batchedShapes, checkCut, dataFlow } from './dominators.js';
import { extractSubgraph } from './extract.js';
import { OptionError, UserError, type OptionNamer } from '../util/errors.js';

/** The recorded cut points, or else the block-level cuts found from the graph. */
export function cutPoints(model: Model): CutPoint[] {
  return getCuts(model) ?? blockCuts(model);
}

/** Whether the cut points were recorded by modelsmith (true) or found from the structure. */
export function hasRecordedCuts(model: Model): boolean {
  return getCuts(model) !== undefined;
}

/**
 * Every tensor the model can be cut at (on every path from the input to the output),
 * from the input side to the output side, the input and output themselves excluded.
 */
export function validCutTensors(model: Model): string[] {
  const chain = dataFlow(model).chain;
  return chain.slice(1, -1);
}

/**
 * Resolves a cut point name or tensor name to a tensor name of the graph, refusing a
 * tensor that is not a cut (inside a block, shape arithmetic, a weight, not leading to
 * the output) with the reason and the nearest cuts around it.
 */
export function resolveCut(model: Model, name: string, file = 'the model'): string {
  const cuts = cutPoints(model);
  const cut = cuts.find((c) => c.name === name);
  if (cut) return cut.tensor;
  if (tensorNames(model.graph).has(name)) {
    const nameOf = new Map(cuts.map((c) => [c.tensor, c.name]));
    checkCut(model, name, file, (t) => (nameOf.has(t) ? `"${nameOf.get(t)}" (${t})` : `"${t}"`));
    return name;
  }
  const hint = (o: OptionNamer): string =>
    cuts.length
      ? `its cut points are: ${cuts.map((c) => c.name).join(', ')}`
      : `it has no block-level cut points; names like ${suggest(model, name).join(', ')} exist (see ${o('listCuts')})`;
  throw new OptionError((o) => `cut "${name}" does not exist in ${file}; ${hint(o)}`);
}

/** A few valid cut tensors close to `name`, for error messages. */
function suggest(model: Model, name: string): string[] {
  const all = validCutTensors(model);
  const score = (t: string): number => (t.includes(name) || name.includes(t) ? 0 : 1) + Math.abs(t.length - name.length) / 100;
  return all.sort((a, b) => score(a) - score(b)).slice(0, 5);
}

/**
 * The model with every shape read that the part after `tensor` makes of tensors before
 * it (torchvision's ViT reads the batch size from the input image to expand its class
 * token) rebuilt from `tensor`'s own shape: known sizes become constants, the batch size
 * is read from `tensor`'s batch axis. Then the part after the cut needs nothing from
 * before it, and extracting it from `tensor` works. The model is returned unchanged when
 * there is no such read.
 *
 * @example extractSubgraph(detachShapeReads(vit, '/conv_proj/Conv_output_0', 0), ['/conv_proj/Conv_output_0'], ['logits'])
 */
export function detachShapeReads(model: Model, tensor: string, batchAxis = 0, outputs: readonly string[] = model.graph.outputs.map((o) => o.name)): Model {
  const flow = dataFlow(model);
  const g = model.graph;
  const after = new Set<string>([tensor]);
  const stack = [tensor];
  while (stack.length)
    for (const s of flow.succs.get(stack.pop()!) ?? [])
      if (!after.has(s)) {
        after.add(s);
        stack.push(s);
      }
  const prod = producers(g);
  const reads: Node[] = [];
  const seen = new Set<string>();
  const pending = [...outputs];
  while (pending.length) {
    const t = pending.pop()!;
    if (seen.has(t) || t === tensor || g.initializers.has(t)) continue;
    seen.add(t);
    const node = prod.get(t);
    if (!node) continue;
    const src = node.inputs[0];
    if (SHAPE_READS.has(node.opType) && src && flow.index.has(src) && !after.has(src)) {
      if (!reads.includes(node)) reads.push(node);
      continue;
    }
    pending.push(...node.inputs.filter(Boolean));
  }
  if (!reads.length) return model;
  const { known, symbol } = batchedShapes(model);
  const m = cloneModel(model);
  const mg = m.graph;
  const batchName = uniqueName(mg, `${tensor}::batch_size`);
  let needBatch = false;
  const replaced = new Set(reads.map((n) => n.outputs[0]!));
  mg.nodes = mg.nodes.filter((n) => !(n.outputs[0] && replaced.has(n.outputs[0]) && SHAPE_READS.has(n.opType)));
  const added: Node[] = [];
  for (const node of reads) {
    const out = node.outputs[0]!;
    const k = known.get(out);
    const values = k?.values;
    // each value a number or a multiple of the batch (Size of [N, 512] is N*512)
    const batchMultiple = (v: Dim): number | undefined => {
      const m = typeof v === 'string' ? monomial([v]) : undefined;
      return m && m.syms.length === 1 && m.syms[0] === symbol ? m.coef : undefined;
    };
    if (!k?.shape || !values || k.shape.length > 1 || !values.every((v) => typeof v === 'number' || batchMultiple(v) !== undefined)) {
      const what = values ? values.join('x') : 'values unknown';
      throw new UserError(
        `the part of the model after "${tensor}" reads the shape of an earlier tensor through node "${node.name}" (${node.opType}) ` +
          `in a way modelsmith cannot rebuild from the cut (${what})`,
      );
    }
    const parts: string[] = [];
    values.forEach((v, i) => {
      const times = batchMultiple(v);
      if (times === 1) {
        needBatch = true;
        parts.push(batchName);
        return;
      }
      if (times !== undefined) {
        needBatch = true;
        const factor = uniqueName(mg, `${out}::${i}::times`);
        const product = uniqueName(mg, `${out}::${i}`);
        mg.initializers.set(factor, int64([1], [times]));
        added.push({ name: product, opType: 'Mul', inputs: [batchName, factor], outputs: [product], attributes: {} });
        parts.push(product);
        return;
      }
      const c = uniqueName(mg, `${out}::${i}`);
      mg.initializers.set(c, int64([1], [v as number]));
      parts.push(c);
    });
    const rank0 = k.shape.length === 0;
    const joined = rank0 ? uniqueName(mg, `${out}::joined`) : out;
    if (parts.length === 1) added.push({ name: `${out}::rebuilt`, opType: 'Identity', inputs: [parts[0]!], outputs: [joined], attributes: {} });
    else added.push({ name: `${out}::rebuilt`, opType: 'Concat', inputs: parts, outputs: [joined], attributes: { axis: int(0) } });
    if (rank0) {
      const shape = uniqueName(mg, `${out}::scalar_shape`);
      mg.initializers.set(shape, int64([0], []));
      added.push({ name: `${out}::scalar`, opType: 'Reshape', inputs: [joined, shape], outputs: [out], attributes: {} });
    }
  }
  if (needBatch) {
    const shapeName = uniqueName(mg, `${tensor}::shape`);
    const axis = uniqueName(mg, `${tensor}::batch_axis`);
    mg.initializers.set(axis, int64([1], [batchAxis]));
    added.unshift(
      { name: shapeName, opType: 'Shape', inputs: [tensor], outputs: [shapeName], attributes: {} },
      { name: batchName, opType: 'Gather', inputs: [shapeName, axis], outputs: [batchName], attributes: { axis: int(0) } },
    );
  }
  mg.nodes.push(...added);
  mg.nodes = topoSort(mg);
  return m;
}

/** Operators that read only a tensor's shape. */
const SHAPE_READS = new Set(['Shape', 'Size']);

/** The part of a model between two cuts, and the tensors it starts and ends at. */
export interface ExtractedCut {
  model: Model;
  from: string;
  to: string;
}

/**
 * The part of a model between two cuts (names or tensors; default the input and the
 * output), both checked to be cuts and in order; shape reads across `from` are rebuilt
 * from it (detachShapeReads).
 *
 * @example extractCut(openModel('resnet18.onnx'), 'layer2.0', 'layer3.1', 'resnet18.onnx').model
 */
export function extractCut(model: Model, fromName: string | undefined, toName: string | undefined, file = 'the model'): ExtractedCut {
  const flow = dataFlow(model);
  const from = fromName ? resolveCut(model, fromName, file) : flow.input;
  const to = toName ? resolveCut(model, toName, file) : flow.output;
  const at = (t: string): number => flow.chain.indexOf(t);
  if (at(from) >= at(to)) {
    const order = from === to ? 'the same tensor as' : 'after';
    throw new OptionError((o) => `${o('from')} "${fromName ?? from}" of ${file} is ${order} ${o('to')} "${toName ?? to}"; nothing lies between them`);
  }
  const source = from === flow.input ? model : detachShapeReads(model, from, batchLayoutOf(model, from), [to]);
  return { model: extractSubgraph(source, [from], [to]), from, to };
}

function batchLayoutOf(model: Model, tensor: string): number {
  const l = batchLayouts(model).get(tensor);
  return typeof l === 'object' ? l.batchAxis : 0;
}
