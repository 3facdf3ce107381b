/**
 * Low-rank adaptation (LoRA) as a graph rewrite: a Linear layer Y = X W^T + b becomes
 * Y = X W0^T + (X A^T) B^T + b with W0 frozen, A [r, in] random and B [out, r] zero, so
 * training starts from the parent's function and can only move W within rank r.
 * After training the adapter is merged, W = W0 + B A, and the saved model has the
 * plain architecture again: rank(W_child - W_parent) <= r on every adapted layer.
 *
 * @example
 *   const { model: m, adapters } = addLora(model, loraTargets(model), 4, new Rng(seed));
 *   // train adapters' a/b (and the head) with TrainingSession, then:
 *   const merged = mergeLora(model, session.params, adapters);
 */
import type { Model, Node } from '../../onnx/types.js';
import { attrFloat, attrInt, attrInts, cloneModel, consumers, int, ints, producers, tensorNames, uniqueName, isDefaultDomain } from '../../onnx/graph.js';
import { float32, toFloat32 } from '../../onnx/tensor.js';
import type { Rng } from '../../util/random.js';
import { UserError } from '../../util/errors.js';

export interface LoraAdapter {
  /** the adapted weight initializer, [out, in] */
  weight: string;
  /** trainable factors: a [rank, in], b [out, rank] */
  a: string;
  b: string;
  rank: number;
  out: number;
  in: number;
}

/**
 * How a Linear layer Y = X W^T (+ b) appears in a graph, with W an [out, in] initializer:
 * - gemm: Gemm(X, W, b) with transB=1 (flat inputs [N, in]; the zoo's MLPs, heads);
 * - matmul: MatMul(X, Transpose(W)) then Add(b) (token tensors [N, T, in]; the ViT's
 *   attention and MLP projections, see GraphBuilder.tokenLinear).
 * Each form says which node is a Linear of its kind and how to write the adapter's
 * X A^T B^T in the same form (so it takes the same input ranks).
 */
interface LinearForm {
  /** the weight and bias initializers when `n` is a Linear of this form */
  match(model: Model, n: Node, prod: Map<string, Node>, cons: Map<string, Node[]>): { weight: string; bias?: string } | undefined;
  /** nodes computing `out` = x A^T B^T */
  lowRank(x: string, a: string, b: string, out: string, fresh: (base: string) => string, stem: string): Node[];
}

const initializer2d = (model: Model, name: string | undefined): boolean => {
  const t = name === undefined ? undefined : model.graph.initializers.get(name);
  return !!t && t.dims.length === 2;
};

const LINEAR_FORMS: Readonly<Record<string, LinearForm>> = {
  gemm: {
    match(model, n) {
      if (n.opType !== 'Gemm' || !isDefaultDomain(n.domain) || !initializer2d(model, n.inputs[1])) return undefined;
      if (attrInt(n, 'transB', 0) !== 1 || attrInt(n, 'transA', 0) !== 0 || attrFloat(n, 'alpha', 1) !== 1) return undefined;
      const bias = n.inputs[2] && model.graph.initializers.has(n.inputs[2]) && attrFloat(n, 'beta', 1) === 1 ? n.inputs[2] : undefined;
      return { weight: n.inputs[1]!, ...(bias ? { bias } : {}) };
    },
    lowRank(x, a, b, out, fresh, stem) {
      const down = fresh(`${out}.lora_down`);
      return [
        { name: fresh(`${stem}.lora_down`), opType: 'Gemm', inputs: [x, a], outputs: [down], attributes: { transB: int(1) } },
        { name: fresh(`${stem}.lora_up`), opType: 'Gemm', inputs: [down, b], outputs: [out], attributes: { transB: int(1) } },
      ];
    },
  },
  matmul: {
    match(model, n, prod, cons) {
      if (n.opType !== 'MatMul' || !isDefaultDomain(n.domain)) return undefined;
      const t = prod.get(n.inputs[1] ?? '');
      if (!t || t.opType !== 'Transpose' || !initializer2d(model, t.inputs[0])) return undefined;
      const perm = attrInts(t, 'perm', [1, 0]);
      if (perm[0] !== 1 || perm[1] !== 0) return undefined;
      const users = cons.get(n.outputs[0]!) ?? [];
      const add = users.length === 1 && users[0]!.opType === 'Add' ? users[0]! : undefined;
      const bias = add?.inputs.find((i) => i !== n.outputs[0] && model.graph.initializers.get(i)?.dims.length === 1);
      return { weight: t.inputs[0]!, ...(bias ? { bias } : {}) };
    },
    lowRank(x, a, b, out, fresh, stem) {
      const at = fresh(`${a}_t`),
        bt = fresh(`${b}_t`),
        down = fresh(`${out}.lora_down`);
      const perm = { perm: ints([1, 0]) };
      return [
        { name: fresh(`${stem}.lora_a_t`), opType: 'Transpose', inputs: [a], outputs: [at], attributes: perm },
        { name: fresh(`${stem}.lora_b_t`), opType: 'Transpose', inputs: [b], outputs: [bt], attributes: perm },
        { name: fresh(`${stem}.lora_down`), opType: 'MatMul', inputs: [x, at], outputs: [down], attributes: {} },
        { name: fresh(`${stem}.lora_up`), opType: 'MatMul', inputs: [down, bt], outputs: [out], attributes: {} },
      ];
    },
  },
};

interface LinearSite {
  node: Node;
  form: LinearForm;
  weight: string;
  bias?: string;
}

/** Every Linear layer of the graph, in node order. */
function linearSites(model: Model): LinearSite[] {
  const g = model.graph;
  const prod = producers(g),
    cons = consumers(g);
  const out: LinearSite[] = [];
  for (const node of g.nodes) {
    for (const form of Object.values(LINEAR_FORMS)) {
      const m = form.match(model, node, prod, cons);
      if (m) {
        out.push({ node, form, ...m });
        break;
      }
    }
  }
  return out;
}

/**
 * Linear layers a zoo adapts by default: every Linear weight [out, in] except the
 * classifier's (the last): an MLP's hidden layers; a ViT's attention in/out projections
 * and MLP weights (its patch embedding is a Conv, its head the last Linear).
 */
export function loraTargets(model: Model): string[] {
  return linearSites(model)
    .map((s) => s.weight)
    .slice(0, -1);
}

/** A copy of `model` with LoRA adapters of `rank` on the Linear layers whose weights are `weights`. */
export function addLora(model: Model, weights: readonly string[], rank: number, rng: Rng): { model: Model; adapters: LoraAdapter[] } {
  if (!Number.isInteger(rank) || rank < 1) throw new UserError(`LoRA rank must be a positive integer, got ${rank}`);
  const m = cloneModel(model);
  const g = m.graph;
  const taken = tensorNames(g);
  for (const n of g.nodes) taken.add(n.name);
  const fresh = (base: string): string => {
    const n = uniqueName(g, base, taken);
    taken.add(n);
    return n;
  };
  const sites = new Map(linearSites(m).map((s) => [s.weight, s]));
  const adapters: LoraAdapter[] = [];
  for (const weight of weights) {
    const site = sites.get(weight);
    if (!site) throw new UserError(`LoRA: ${weight} is not the weight of a Linear layer (Gemm with transB=1, or MatMul by its transpose)`);
    const node = site.node;
    const [out, inp] = g.initializers.get(weight)!.dims as [number, number];
    if (rank > Math.min(out, inp))
      throw new UserError(`LoRA rank ${rank} is larger than layer ${weight} allows (${out}x${inp}: at most ${Math.min(out, inp)})`);
    const stem = weight.replace(/[._]weight$/, '');
    const a = fresh(`${stem}.lora_A`);
    const b = fresh(`${stem}.lora_B`);
    // PEFT's initialisation: A ~ kaiming-uniform(a=sqrt 5) = U(-1/sqrt(in), 1/sqrt(in)), B = 0
    const bound = 1 / Math.sqrt(inp);
    g.initializers.set(
      a,
      float32(
        [rank, inp],
        Float32Array.from({ length: rank * inp }, () => rng.uniform(-bound, bound)),
      ),
    );
    g.initializers.set(b, float32([out, rank]));
    const y = node.outputs[0]!;
    const base = fresh(`${y}.lora_base`);
    const delta = fresh(`${y}.lora_delta`);
    node.outputs = [base, ...node.outputs.slice(1)];
    const added: Node[] = [
      ...site.form.lowRank(node.inputs[0]!, a, b, delta, fresh, node.name),
      { name: fresh(`${node.name}.lora_add`), opType: 'Add', inputs: [base, delta], outputs: [y], attributes: {} },
    ];
    g.nodes.splice(g.nodes.indexOf(node) + 1, 0, ...added);
    adapters.push({ weight, a, b, rank, out, in: inp });
  }
  return { model: m, adapters };
}

/**
 * The merged weights W0 + B A (float64 products, stored float32), by weight name, from
 * the frozen base in `model` and trained factors in `params`.
 */
export function mergeLora(model: Model, params: ReadonlyMap<string, Float32Array>, adapters: readonly LoraAdapter[]): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const ad of adapters) {
    const w0 = toFloat32(model.graph.initializers.get(ad.weight)!);
    const a = params.get(ad.a) ?? toFloat32(model.graph.initializers.get(ad.a)!);
    const b = params.get(ad.b) ?? toFloat32(model.graph.initializers.get(ad.b)!);
    const w = new Float32Array(ad.out * ad.in);
    const row = new Float64Array(ad.in);
    for (let o = 0; o < ad.out; o++) {
      row.fill(0);
      for (let k = 0; k < ad.rank; k++) {
        const bok = b[o * ad.rank + k]!;
        if (bok === 0) continue;
        const ak = k * ad.in;
        for (let i = 0; i < ad.in; i++) row[i] += bok * a[ak + i]!;
      }
      for (let i = 0; i < ad.in; i++) w[o * ad.in + i] = w0[o * ad.in + i]! + row[i]!;
    }
    out.set(ad.weight, w);
  }
  return out;
}

/** The classifier's parameters (weight and bias of the last Linear layer), trained alongside LoRA adapters. */
export function classifierParams(model: Model): string[] {
  const last = linearSites(model).at(-1);
  return last ? [last.weight, ...(last.bias ? [last.bias] : [])] : [];
}
