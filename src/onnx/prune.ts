/**
 * In-place clean-up helpers for graph rewrites (fold, extract, merge). They edit the
 * graph they are given, so callers apply them to their own copy.
 */
import type { Graph, Node } from './types.js';
import { producers } from './graph.js';

/** Renames a tensor everywhere it appears: node inputs/outputs, graph inputs/outputs, initializers, value info. */
export function renameTensor(g: Graph, from: string, to: string): void {
  if (from === to || !from) return;
  for (const n of g.nodes) {
    n.inputs = n.inputs.map((i) => (i === from ? to : i));
    n.outputs = n.outputs.map((o) => (o === from ? to : o));
  }
  g.inputs = g.inputs.map((v) => (v.name === from ? { ...v, name: to } : v));
  g.outputs = g.outputs.map((v) => (v.name === from ? { ...v, name: to } : v));
  const t = g.initializers.get(from);
  if (t) {
    g.initializers.delete(from);
    g.initializers.set(to, t);
  }
  const vi = g.valueInfo.get(from);
  g.valueInfo.delete(from);
  if (vi && !g.valueInfo.has(to)) g.valueInfo.set(to, { ...vi, name: to });
}

/** Tensors read by some node or listed as graph outputs. */
export function usedTensors(g: Graph): Set<string> {
  const used = new Set(g.outputs.map((o) => o.name));
  for (const n of g.nodes) for (const i of n.inputs) if (i) used.add(i);
  return used;
}

/** Removes nodes none of whose outputs is used, repeatedly (a chain feeding nothing goes entirely). */
export function removeDeadNodes(g: Graph): void {
  for (;;) {
    const used = usedTensors(g);
    const live = g.nodes.filter((n) => n.outputs.some((o) => o && used.has(o)));
    if (live.length === g.nodes.length) return;
    g.nodes = live;
  }
}

/**
 * Keeps only the nodes needed to compute `outputs` (graph outputs by default), not
 * looking upstream of the tensors in `stop`.
 */
export function keepNeeded(g: Graph, outputs: Iterable<string> = g.outputs.map((o) => o.name), stop: ReadonlySet<string> = new Set()): void {
  const prod = producers(g);
  const keep = new Set<Node>();
  const pending = [...outputs];
  while (pending.length) {
    const t = pending.pop()!;
    const n = stop.has(t) ? undefined : prod.get(t);
    if (!n || keep.has(n)) continue;
    keep.add(n);
    for (const i of n.inputs) if (i) pending.push(i);
  }
  g.nodes = g.nodes.filter((n) => keep.has(n));
}

/** Drops initializers nothing reads, and value info of tensors that no node produces any more. */
export function removeUnused(g: Graph): void {
  const used = usedTensors(g);
  for (const name of [...g.initializers.keys()]) if (!used.has(name)) g.initializers.delete(name);
  const made = new Set<string>();
  for (const n of g.nodes) for (const o of n.outputs) if (o) made.add(o);
  for (const name of [...g.valueInfo.keys()]) if (!made.has(name)) g.valueInfo.delete(name);
}
