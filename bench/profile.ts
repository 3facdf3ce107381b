/**
 * ONNX Runtime's per-node profile of a training step, summarised: where the step's time
 * goes by kind of work (layout reorders, forward and gradient convolutions, BatchNorm
 * forward and backward, the rest by operator type), next to what happens outside the
 * runtime (feeding and reading tensors, the optimiser). Used by `bench/training.ts --profile`.
 *
 * Nodes are recognised by how modelsmith names them (nodeKind): the gradient rules name
 * their nodes `grad/<forward node>/<hint>` (src/autodiff/grad.ts), the NCHWc lowering
 * `<conv>_nchwc_*` (src/runtime/nchwc.ts); ORT's own rewrites keep the original node name
 * as a prefix (fusions) or add Reorder nodes of their own.
 */
import { readFileSync } from 'node:fs';

interface TraceEvent {
  cat?: string;
  name?: string;
  dur?: number;
  ts?: number;
  args?: { op_name?: string };
}

/**
 * The kind of work a profiled node does, from its name and operator type. `forwardOps`
 * maps the forward model's node names to their operator types: a gradient node
 * `grad/<forward node>/<hint>` is the backward of that node's operator (with the Conv
 * rule's hints telling input, weight and bias gradients apart); a node named after a
 * forward node (itself, or the nodes the training graph writes for it, e.g. a BatchNorm's
 * batch statistics `<bn>/batch_mean`) is that operator's forward.
 */
export function nodeKind(node: string, op: string, forwardOps: ReadonlyMap<string, string>): string {
  if (/_nchwc_w/.test(node)) return 'weight reorder for NCHWc (ReorderInput/Reshape)';
  if (op === 'ReorderInput' || op === 'ReorderOutput') return 'layout reorder (ReorderInput/Output)';
  const backward = node.startsWith('grad/');
  const rest = backward ? node.slice(5) : node;
  const owner = longestOwner(rest, forwardOps);
  const fop = owner === undefined ? undefined : forwardOps.get(owner)!;
  if (backward) {
    if (fop === 'Conv') {
      const hint = rest.slice(owner!.length + 1);
      if (hint.startsWith('conv_dw')) return 'Conv backward: weight gradient (dW)';
      if (hint.startsWith('conv_dx')) return 'Conv backward: input gradient (dX)';
      if (hint.startsWith('conv_db')) return 'Conv backward: bias gradient';
    }
    return fop ? `${fop} backward` : `other backward (${op})`;
  }
  // ORT fuses a forward Conv with the BatchNorm and ReLU after it and may name the fused node after either
  if (op === 'Conv' || op === 'FusedConv') return 'Conv forward (with fused BatchNorm/ReLU)';
  return fop ? `${fop} forward` : `other (${op})`;
}

/** The longest forward node name that `name` is, or starts with followed by a separator. */
function longestOwner(name: string, forwardOps: ReadonlyMap<string, string>): string | undefined {
  let best: string | undefined;
  for (const k of forwardOps.keys()) {
    if (!k || (best && k.length <= best.length)) continue;
    if (name === k || (name.startsWith(k) && '/_'.includes(name[k.length]!))) best = k;
  }
  return best;
}

export interface ProfileSummary {
  /** runs counted (the first `skip` runs are warm-up and left out) */
  runs: number;
  /** ms per run: ORT's model_run, and the sum of node kernel times */
  runMs: number;
  kernelMs: number;
  /** ms per run by category and by operator type, largest first */
  categories: { name: string; ms: number; nodes: number }[];
  ops: { op: string; ms: number }[];
  /** the costliest nodes */
  nodes: { node: string; op: string; ms: number }[];
}

/** Summarises an ORT profile file, leaving out the first `skip` runs. */
export function summariseProfile(file: string, skip: number, forwardOps: ReadonlyMap<string, string>): ProfileSummary {
  const events = JSON.parse(readFileSync(file, 'utf8')) as TraceEvent[];
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((a, b) => a.ts! - b.ts!);
  const counted = runs.slice(skip);
  if (!counted.length) throw new Error(`profile ${file}: ${runs.length} runs, none left after skipping ${skip}`);
  const from = counted[0]!.ts!;
  const nodes = events.filter((e) => e.cat === 'Node' && e.name?.endsWith('_kernel_time') && e.ts! >= from);
  const byCategory = new Map<string, { ms: number; nodes: Set<string> }>();
  const byOp = new Map<string, number>();
  const byNode = new Map<string, { op: string; ms: number }>();
  const kinds = new Map<string, string>();
  let kernel = 0;
  for (const e of nodes) {
    const node = e.name!.slice(0, -'_kernel_time'.length);
    const op = e.args?.op_name ?? '?';
    const ms = e.dur! / 1000;
    kernel += ms;
    let cat = kinds.get(node);
    if (cat === undefined) kinds.set(node, (cat = nodeKind(node, op, forwardOps)));
    const perNode = byNode.get(node) ?? { op, ms: 0 };
    perNode.ms += ms;
    byNode.set(node, perNode);
    const entry = byCategory.get(cat) ?? { ms: 0, nodes: new Set<string>() };
    entry.ms += ms;
    entry.nodes.add(node);
    byCategory.set(cat, entry);
    byOp.set(op, (byOp.get(op) ?? 0) + ms);
  }
  const n = counted.length;
  return {
    runs: n,
    runMs: counted.reduce((s, e) => s + e.dur! / 1000, 0) / n,
    kernelMs: kernel / n,
    categories: [...byCategory].map(([name, v]) => ({ name, ms: v.ms / n, nodes: v.nodes.size })).sort((a, b) => b.ms - a.ms),
    ops: [...byOp].map(([op, ms]) => ({ op, ms: ms / n })).sort((a, b) => b.ms - a.ms),
    nodes: [...byNode].map(([node, v]) => ({ node, op: v.op, ms: v.ms / n })).sort((a, b) => b.ms - a.ms),
  };
}

/** Lines of a summary with the step's JavaScript-side times (ms per step). */
export function formatProfile(p: ProfileSummary, js: { stepMs: number; runMs: number; optimizerMs: number }, top = 12): string[] {
  const pct = (ms: number): string => `${((100 * ms) / js.stepMs).toFixed(1).padStart(5)}%`;
  const row = (name: string, ms: number, extra = ''): string => `  ${name.padEnd(46)} ${ms.toFixed(2).padStart(9)} ms ${pct(ms)}${extra}`;
  const lines = [`per step (mean of ${p.runs} profiled steps): ${js.stepMs.toFixed(1)} ms in all`];
  lines.push(row('ORT kernels (sum of node times)', p.kernelMs));
  for (const c of p.categories) lines.push(row(`  ${c.name}`, c.ms, ` (${c.nodes} nodes)`));
  lines.push(row('ORT run outside kernels (executor, allocation)', p.runMs - p.kernelMs));
  lines.push(row('JS <-> runtime (feeds, outputs, binding)', js.runMs - p.runMs));
  lines.push(row('optimiser (JS)', js.optimizerMs));
  lines.push(row('rest of the JS step', js.stepMs - js.runMs - js.optimizerMs));
  lines.push(
    `  by operator type (ms): ${p.ops
      .slice(0, top)
      .map((o) => `${o.op} ${o.ms.toFixed(1)}`)
      .join(', ')}`,
  );
  lines.push(
    `  costliest nodes (ms): ${p.nodes
      .slice(0, top)
      .map((o) => `${o.node} [${o.op}] ${o.ms.toFixed(1)}`)
      .join(', ')}`,
  );
  return lines;
}
