/**
 * Structural pruning (spec section 4): removes every channel outside the kept masks
 * consistently across the graph. Producing layers lose output channels (weights and
 * bias), consuming layers lose input channels (Flatten blocks and Concat offsets come
 * from the channel refs), BatchNorm and other per-channel constants are sliced, and the
 * classifier keeps only the task's rows. The input model is not changed.
 *
 * @example
 *   const component = pruneModel(cg, keep, [0, 1, 2]);
 */
import type { Model, Tensor, TensorData } from '../onnx/types.js';
import { cloneModel, constantValue, int, producers, uniqueName } from '../onnx/graph.js';
import { removeUnused } from '../onnx/prune.js';
import { numel, toNumbers } from '../onnx/tensor.js';
import { UserError } from '../util/errors.js';
import type { ChannelGraph, ChannelRef, SpaceMasks } from './channels.js';
import { indicesOf, maskOf, refSize } from './channels.js';

/** Copy of `t` keeping only indices `keep` along `axis`. */
export function sliceAxis(t: Tensor, axis: number, keep: readonly number[]): Tensor {
  const dims = [...t.dims];
  const outer = numel(dims.slice(0, axis));
  const inner = numel(dims.slice(axis + 1));
  const n = dims[axis]!;
  dims[axis] = keep.length;
  const Ctor = t.data.constructor as new (n: number) => TensorData;
  const out = new Ctor(outer * keep.length * inner);
  for (let a = 0; a < outer; a++) {
    for (let j = 0; j < keep.length; j++) {
      const src = (a * n + keep[j]!) * inner;
      const dst = (a * keep.length + j) * inner;
      (out as Float32Array).set((t.data as Float32Array).subarray(src, src + inner), dst);
    }
  }
  return { dtype: t.dtype, dims, data: out };
}

/**
 * The pruned model. `keep` holds the kept channels of every space (computeMasks);
 * fixed spaces must be whole there.
 */
export function pruneModel(cg: ChannelGraph, keep: SpaceMasks): Model {
  const out = cloneModel(cg.model);
  const g = out.graph;
  const prod = producers(g);
  const users = new Map<string, number>();
  for (const n of g.nodes) for (const i of n.inputs) if (i) users.set(i, (users.get(i) ?? 0) + 1);
  const kept = (ref: ChannelRef): number[] | undefined => {
    const m = maskOf(cg, ref, keep);
    return m.every((x) => x) ? undefined : indicesOf(m);
  };
  /** Replaces input `slot` of node `index` by a new constant value. */
  const replace = (index: number, slot: number, value: Tensor): void => {
    const node = g.nodes[index]!;
    const name = node.inputs[slot]!;
    if (g.initializers.has(name) && users.get(name) === 1) {
      g.initializers.set(name, value);
      return;
    }
    const fresh = uniqueName(g, `${name}.pruned`);
    g.initializers.set(fresh, value);
    node.inputs[slot] = fresh;
  };
  const constant = (name: string): Tensor | undefined => constantValue(g, name, prod) ?? cg.known.get(name)?.tensor;
  // The clone's nodes are in the original order; roles are keyed by the original nodes.
  const original = cg.model.graph.nodes;
  original.forEach((node, index) => {
    const role = cg.roles.get(node);
    if (!role || role === 'ignore' || role === 'concat') return;
    const copy = g.nodes[index]!;
    if (role === 'layer') {
      const layer = cg.layers.find((l) => l.node === node)!;
      const outKeep = kept(cg.refs.get(layer.output)!);
      const inKeep = kept(cg.refs.get(layer.input)!);
      let w = constant(copy.inputs[1]!)!;
      if (layer.kind === 'conv') {
        if (layer.depthwise) {
          if (outKeep) {
            w = sliceAxis(w, 0, outKeep);
            copy.attributes = { ...copy.attributes, group: int(outKeep.length) };
          }
        } else if (layer.conv!.groups === 1) {
          if (outKeep) w = sliceAxis(w, 0, outKeep);
          if (inKeep) w = sliceAxis(w, 1, inKeep);
        }
      } else {
        const [oAxis, iAxis] = layer.transposed ? [1, 0] : [0, 1];
        if (outKeep) w = sliceAxis(w, oAxis, outKeep);
        if (inKeep) w = sliceAxis(w, iAxis, inKeep);
      }
      if (outKeep || inKeep) replace(index, 1, w);
      const biasName = copy.inputs[2];
      if (outKeep && biasName) {
        const b = constant(biasName);
        if (!b) throw new UserError(`node "${node.name}" (${node.opType}): bias "${biasName}" is not a constant`);
        const size = layer.outChannels;
        if (b.dims.length >= 1 && b.dims[b.dims.length - 1] === size) replace(index, 2, sliceAxis(b, b.dims.length - 1, outKeep));
        else if (numel(b.dims) !== 1) throw new UserError(`node "${node.name}" (${node.opType}): bias of shape [${b.dims.join(',')}] cannot be pruned`);
      }
      return;
    }
    if (role === 'flatten') {
      if (node.opType !== 'Reshape') return;
      const shape = constant(copy.inputs[1]!);
      const ref = cg.refs.get(node.outputs[0]!)!;
      const before = cg.known.get(node.outputs[0]!)?.shape?.[1];
      const after = refSizeKept(cg, ref, keep);
      if (shape && typeof before === 'number' && before !== after) {
        const values = toNumbers(shape);
        if (values[1] === before) {
          values[1] = after;
          replace(index, 1, { dtype: shape.dtype, dims: [...shape.dims], data: shape.dtype === 'int64' ? BigInt64Array.from(values.map(BigInt)) : Int32Array.from(values) });
        }
      }
      return;
    }
    // elementwise: per-channel constants
    const ref = cg.refs.get(node.outputs[0]!)!;
    const chKeep = kept(ref);
    if (!chKeep) return;
    const c = refSize(cg, ref);
    const rank = cg.known.get(node.outputs[0]!)?.shape?.length ?? 4;
    node.inputs.forEach((name, slot) => {
      if (!name || cg.refs.has(name)) return;
      const t = constant(name);
      if (!t) return;
      if (node.opType === 'BatchNormalization' || node.opType === 'InstanceNormalization') {
        if (t.dims.length === 1 && t.dims[0] === c) replace(index, slot, sliceAxis(t, 0, chKeep));
        return;
      }
      // numpy broadcasting: the channel axis of a rank-r activation is the (r-1)-th axis from the end
      const axis = t.dims.length - (rank - 1);
      if (axis >= 0 && t.dims[axis] === c && c > 1) replace(index, slot, sliceAxis(t, axis, chKeep));
    });
  });
  g.valueInfo = new Map();
  const logits = g.outputs[0]!;
  const k = refSizeKept(cg, cg.refs.get(cg.logits)!, keep);
  g.outputs[0] = { ...logits, shape: logits.shape ? [logits.shape[0] ?? 'N', k] : ['N', k] };
  removeUnused(g);
  return out;
}

function refSizeKept(cg: ChannelGraph, ref: ChannelRef, keep: SpaceMasks): number {
  return indicesOf(maskOf(cg, ref, keep)).length;
}

/**
 * The original model with every removed channel zeroed where a layer reads it (the
 * layer's input weights), and with the logits restricted to `outputs` by a Gather. The
 * pruned model must compute exactly this: tests compare the two.
 */
export function maskedOriginal(cg: ChannelGraph, keep: SpaceMasks): Model {
  const out = cloneModel(cg.model);
  const g = out.graph;
  const prod = producers(g);
  for (const layer of cg.layers) {
    const inMask = maskOf(cg, cg.refs.get(layer.input)!, keep);
    if (inMask.every((x) => x) || layer.conv?.groups !== undefined && layer.conv.groups > 1) continue;
    const node = g.nodes[cg.model.graph.nodes.indexOf(layer.node)]!;
    const w = constantValue(g, node.inputs[1]!, prod)!;
    const data = Float32Array.from(w.data as Float32Array);
    const [d0, d1] = [w.dims[0]!, w.dims[1]!];
    const inner = numel(w.dims.slice(2));
    const inAxis = layer.transposed ? 0 : 1;
    for (let a = 0; a < d0; a++) {
      for (let b = 0; b < d1; b++) {
        const i = inAxis === 1 ? b : a;
        if (!inMask[i]) data.fill(0, (a * d1 + b) * inner, (a * d1 + b + 1) * inner);
      }
    }
    const name = uniqueName(g, `${node.inputs[1]}.masked`);
    g.initializers.set(name, { dtype: 'float32', dims: [...w.dims], data });
    node.inputs[1] = name;
  }
  const logitsMask = maskOf(cg, cg.refs.get(cg.logits)!, keep);
  const rows = indicesOf(logitsMask);
  const idx = uniqueName(g, 'masked.rows');
  g.initializers.set(idx, { dtype: 'int64', dims: [rows.length], data: BigInt64Array.from(rows.map(BigInt)) });
  const old = g.outputs[0]!.name;
  const fresh = uniqueName(g, `${old}.full`);
  for (const n of g.nodes) n.outputs = n.outputs.map((o) => (o === old ? fresh : o));
  for (const n of g.nodes) n.inputs = n.inputs.map((i) => (i === old ? fresh : i));
  g.nodes.push({ name: 'masked.gather', opType: 'Gather', inputs: [fresh, idx], outputs: [old], attributes: { axis: int(1) } });
  g.outputs[0] = { name: old, dtype: 'float32', shape: ['N', rows.length] };
  g.valueInfo = new Map();
  removeUnused(g);
  return out;
}
