/**
 * Block-level cut points of any graph, found from its structure: the stem, the output of
 * every block (residual, Inception, Dense, Fire, inverted-residual, transformer
 * encoder layer...) and of the plain layers between blocks, and the pooled features
 * (the classifier's input). Only tensors on the dominator chain (dominators.ts) are
 * candidates; the structure decides which of them start and end blocks, and node names
 * give the modules (PyTorch exports name nodes by module scope:
 * `/layer1/layer1.0/relu_1/Relu` is in module `layer1.0`).
 *
 * The chain splits the graph into steps between consecutive chain tensors. A step is a
 * *branch* when paths fork inside it and one of them holds a weighted operator
 * (residual, Inception, squeeze-excitation, attention); a pointwise gate such as SiLU
 * (x * sigmoid(x)) or an unfused GELU forks too but holds no weight, so it counts as a
 * plain step. The module tree then groups steps: a module holding one branch, or a
 * branch that is its own (a residual Add at the module's scope), is one block; a module
 * whose branches all sit in its children is a container and its children are examined;
 * a module without branches beside blocks is a layer. Graphs without scoped names fall
 * back to one block per branch and one layer per weighted operator.
 */
import type { Model, Node } from './types.js';
import type { CutPoint } from './metadata.js';
import { batchLayouts, chainBefore, dataFlow, type DataFlow } from './dominators.js';

/** A named cut point found from the structure. */
export interface FoundCut {
  name: string;
  tensor: string;
  kind: CutPoint['kind'];
}

/** Operators with learned matrices: what makes a step a layer and a fork a block. */
const WEIGHTED_OPS = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul', 'ConvInteger', 'MatMulInteger', 'QLinearConv', 'QLinearMatMul', 'Einsum']);

/** Operators a layer's output extends over (its activation, normalisation, local pooling). */
const TRAILING_OPS = new Set([
  'Relu',
  'LeakyRelu',
  'PRelu',
  'Elu',
  'Selu',
  'Celu',
  'Gelu',
  'Sigmoid',
  'HardSigmoid',
  'HardSwish',
  'Tanh',
  'Softplus',
  'Softsign',
  'Mish',
  'Erf',
  'Clip',
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Pow',
  'Sqrt',
  'Exp',
  'Neg',
  'Abs',
  'Min',
  'Max',
  'BatchNormalization',
  'InstanceNormalization',
  'Dropout',
  'Identity',
  'MaxPool',
  'AveragePool',
  'LpPool',
]);

const POOL_OPS = new Set(['MaxPool', 'AveragePool', 'LpPool']);

interface Step {
  /** position of its end tensor in the chain */
  at: number;
  tensor: string;
  nodes: Node[];
  scope: string[];
  branch: boolean;
  weighted: boolean;
  /** a layer's output may extend over this step */
  trailing: boolean;
}

interface Item {
  type: 'block' | 'layer' | 'plain';
  steps: Step[];
  /** module path (node-name scope), or [] for a step outside any module */
  module: string[];
}

const cache = new WeakMap<Model, FoundCut[]>();

/**
 * The default cut points of a model without recorded ones: 'stem', the blocks and layers
 * by module name (`layer1.0`, `features.3`, `encoder_layer_2`), and 'features'.
 *
 * @example blockCuts(openModel('resnet18.onnx')).map((c) => c.name) // ['stem', 'layer1.0', ..., 'layer4.1', 'features']
 */
export function blockCuts(model: Model): FoundCut[] {
  const have = cache.get(model);
  if (have) return have;
  const flow = dataFlow(model);
  const layouts = batchLayouts(model);
  const chain = flow.chain;
  const shape = (t: string): number[] | undefined => {
    const l = layouts.get(t);
    return typeof l === 'object' ? l.shape : undefined;
  };
  // Positions per image (pixels, tokens); 1 for a flat vector.
  const extent = (t: string): number => {
    const s = shape(t);
    if (!s) return Infinity;
    return s.length <= 1 ? 1 : s.length === 2 ? s[0]! : s.slice(-2).reduce((a, b) => a * b, 1);
  };
  // The body ends at the last image or token tensor; the pooled features are the first flat vector after it.
  const last = chain.length - 1;
  let bodyEnd = 0;
  for (let i = 1; i < last; i++) if ((shape(chain[i]!)?.length ?? 2) >= 2) bodyEnd = i;
  let features: string | undefined;
  for (let i = bodyEnd + 1; i < last; i++) {
    const s = shape(chain[i]!);
    if (s && s.length === 1) {
      features = chain[i];
      break;
    }
  }

  const steps = chainSteps(flow, bodyEnd, extent);
  const ext = new Map(steps.map((st) => [st.at, extent(st.tensor)]));
  const anyBranch = steps.some((s) => s.branch);
  const items = decompose([], steps, anyBranch);
  const found = unitsOf(items, chain, (at) => ext.get(at) ?? 1);
  const named = nameUnits(found);
  if (features && !named.some((c) => c.tensor === features)) named.push({ name: 'features', tensor: features, kind: 'features' });
  cache.set(model, named);
  return named;
}

/** The steps chain[1..end], each with the nodes computing it from the previous chain tensor. */
function chainSteps(flow: DataFlow, end: number, extent: (t: string) => number): Step[] {
  const chain = flow.chain;
  const pos = new Map(chain.map((t, i) => [t, i]));
  const inside = new Map<number, Node[]>();
  for (const t of flow.order) {
    if (!flow.live.has(t) || flow.chainSet.has(t)) continue;
    const at = pos.get(chainBefore(flow, t))! + 1;
    if (at > end) continue;
    const node = flow.producer.get(t);
    if (node) inside.set(at, [...(inside.get(at) ?? []), node]);
  }
  const isData = (name: string): boolean => flow.index.has(name);
  const weightedNode = (n: Node): boolean => WEIGHTED_OPS.has(n.opType) && n.inputs.some((i) => i && !isData(i));
  const steps: Step[] = [];
  for (let at = 1; at <= end; at++) {
    const tensor = chain[at]!;
    const own = flow.producer.get(tensor);
    const region = [...new Set(inside.get(at) ?? [])];
    const nodes = own ? [...region.filter((n) => n !== own), own] : region;
    const branch = region.length > 0 && region.some(weightedNode);
    const trailing = !branch && nodes.every((n) => TRAILING_OPS.has(n.opType) && (!POOL_OPS.has(n.opType) || extent(tensor) > 1));
    steps.push({ at, tensor, nodes, scope: commonScope(nodes), branch, weighted: !branch && nodes.some(weightedNode), trailing });
  }
  return steps;
}

/** The module path of a node from its name: `/layer1/layer1.0/conv1/Conv` -> [layer1, layer1.0, conv1]. */
export function scopeOf(node: Node): string[] {
  const parts = node.name.split('/').filter(Boolean);
  return parts.slice(0, -1);
}

function commonScope(nodes: Node[]): string[] {
  if (!nodes.length) return [];
  let common = scopeOf(nodes[0]!);
  for (const n of nodes.slice(1)) {
    const s = scopeOf(n);
    let k = 0;
    while (k < common.length && k < s.length && common[k] === s[k]) k++;
    common = common.slice(0, k);
  }
  return common;
}

/** Groups the steps owned by `module` into blocks, layers and plain steps. */
function decompose(module: string[], steps: Step[], anyBranch: boolean): Item[] {
  const depth = module.length;
  const items: Item[] = [];
  let k = 0;
  while (k < steps.length) {
    const child = steps[k]!.scope.length > depth ? steps[k]!.scope[depth]! : undefined;
    let e = k + 1;
    while (e < steps.length && (steps[e]!.scope.length > depth ? steps[e]!.scope[depth] : undefined) === child) e++;
    const group = steps.slice(k, e);
    k = e;
    if (child === undefined) {
      for (const s of group) items.push({ type: s.branch ? 'block' : s.weighted ? 'layer' : 'plain', steps: [s], module: s.scope });
      continue;
    }
    const path = [...module, child];
    const branches = group.filter((s) => s.branch);
    const own = branches.some((s) => s.scope.length === path.length);
    if (branches.length === 1 || (branches.length > 1 && own)) items.push({ type: 'block', steps: group, module: path });
    else if (branches.length > 1 || !anyBranch) items.push(...decompose(path, group, anyBranch));
    else items.push({ type: group.some((s) => s.weighted) ? 'layer' : 'plain', steps: group, module: path });
  }
  return items;
}

interface Unit {
  kind: 'stem' | 'block';
  tensor: string;
  module: string[];
  /** the node that names a unit outside any module */
  node?: Node;
}

/** Each block and layer as a cut: where it ends, the stem extended up to the first block or layer after it. */
function unitsOf(items: Item[], chain: string[], extentAt: (at: number) => number): Unit[] {
  const units: Unit[] = [];
  const isUnit = (it: Item): boolean => it.type !== 'plain';
  for (let i = 0; i < items.length; i++) {
    const it = items[i]!;
    if (!isUnit(it)) continue;
    // a module that ends in global pooling (SqueezeNet's classifier) is cut before it
    let end = it.steps[it.steps.length - 1]!.at;
    for (let k = it.steps.length - 1; k > 0 && extentAt(end) === 1 && extentAt(it.steps[k - 1]!.at) > 1; k--) {
      if (it.steps[k]!.weighted || it.steps[k]!.branch) break;
      end = it.steps[k - 1]!.at;
    }
    const stem = units.length === 0 && it.type === 'layer';
    // A layer ends after its activation and local pooling, and so does a fork outside any
    // module (graphs without scoped names); a module block ends where its module does; the
    // stem takes everything up to the next block or layer.
    if (stem || it.type === 'layer' || it.module.length === 0) {
      for (let j = i + 1; j < items.length && !isUnit(items[j]!); j++) {
        if (!stem && !items[j]!.steps.every((s) => s.trailing)) break;
        end = items[j]!.steps[items[j]!.steps.length - 1]!.at;
      }
    }
    const node = it.steps[it.steps.length - 1]!.nodes.at(-1);
    units.push({ kind: stem ? 'stem' : 'block', tensor: chain[end]!, module: it.module, ...(node ? { node } : {}) });
  }
  return units.filter((u, i) => units.findIndex((v) => v.tensor === u.tensor) === i);
}

/**
 * Short readable names: the module path with Sequential prefixes folded (`layer1/layer1.0`
 * -> `layer1.0`), then the shortest suffix of it that no other unit shares.
 */
function nameUnits(units: Unit[]): FoundCut[] {
  const paths = units.map((u) => {
    const p = fold(u.module);
    return p.length ? p : [u.node?.name || u.tensor];
  });
  const names = units.map((u, i) => {
    if (u.kind === 'stem') return 'stem';
    const p = paths[i]!;
    for (let len = 1; len <= p.length; len++) {
      const s = p.slice(-len).join('.');
      if (!paths.some((q, j) => j !== i && q.slice(-len).join('.') === s)) return s;
    }
    return p.join('.');
  });
  const used = new Set(['features']);
  return units.map((u, i) => {
    let name = names[i]!;
    if (used.has(name))
      for (let k = 2; ; k++)
        if (!used.has(`${names[i]}#${k}`)) {
          name = `${names[i]}#${k}`;
          break;
        }
    used.add(name);
    return { name, tensor: u.tensor, kind: u.kind };
  });
}

/** Drops a path segment that the next one repeats as its prefix (`features`, `features.3` -> `features.3`). */
function fold(path: string[]): string[] {
  const out: string[] = [];
  for (const seg of path) {
    const prev = out[out.length - 1];
    if (prev !== undefined && seg.length > prev.length && seg.startsWith(prev) && '.-_'.includes(seg[prev.length]!)) out[out.length - 1] = seg;
    else out.push(seg);
  }
  return out;
}
