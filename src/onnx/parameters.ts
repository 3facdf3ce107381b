/**
 * Which initializers are learned parameters. BatchNorm running statistics are stored
 * as initializers too, but PyTorch counts them as buffers, not parameters; published
 * parameter counts (and optimisers) leave them out.
 */
import type { Graph } from './types.js';

/** Initializers read as BatchNormalization's running mean (input 3) or variance (input 4). */
export function runningStatistics(graph: Graph): Set<string> {
  const s = new Set<string>();
  for (const n of graph.nodes) {
    if (n.opType !== 'BatchNormalization') continue;
    for (const i of n.inputs.slice(3, 5)) if (i && graph.initializers.has(i)) s.add(i);
  }
  return s;
}

/** Floating-point initializers that are not running statistics, in graph order. */
export function trainableParameters(graph: Graph): string[] {
  const stats = runningStatistics(graph);
  const out: string[] = [];
  for (const [name, t] of graph.initializers) {
    if (stats.has(name)) continue;
    if (t.dtype === 'float32' || t.dtype === 'float64' || t.dtype === 'float16' || t.dtype === 'bfloat16') out.push(name);
  }
  return out;
}

/** Number of learned parameters, as PyTorch's sum(p.numel() for p in model.parameters()). */
export function trainableParameterCount(graph: Graph): number {
  let n = 0;
  for (const name of trainableParameters(graph)) n += graph.initializers.get(name)!.data.length;
  return n;
}
