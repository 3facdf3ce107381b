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
import { attrFloat, attrInt, cloneModel, int, tensorNames, uniqueName } from '../../onnx/graph.js';
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

/** Linear layers a zoo adapts by default: every Gemm over an [out, in] weight except the classifier (the last). */
export function loraTargets(model: Model): string[] {
  const g = model.graph;
  const weights = g.nodes.filter((n) => isPlainLinear(model, n)).map((n) => n.inputs[1]!);
  return weights.slice(0, -1);
}

function isPlainLinear(model: Model, n: Node): boolean {
  if (n.opType !== 'Gemm' || (n.domain ?? '') !== '') return false;
  const w = model.graph.initializers.get(n.inputs[1] ?? '');
  return !!w && w.dims.length === 2 && attrInt(n, 'transB', 0) === 1 && attrInt(n, 'transA', 0) === 0 && attrFloat(n, 'alpha', 1) === 1;
}

/** A copy of `model` with LoRA adapters of `rank` on the Linear layers whose weights are `weights`. */
export function addLora(model: Model, weights: readonly string[], rank: number, rng: Rng): { model: Model; adapters: LoraAdapter[] } {
  if (!Number.isInteger(rank) || rank < 1) throw new UserError(`LoRA rank must be a positive integer, got ${rank}`);
  const m = cloneModel(model);
  const g = m.graph;
  const taken = tensorNames(g);
  const fresh = (base: string): string => {
    const n = uniqueName(g, base, taken);
    taken.add(n);
    return n;
  };
  const adapters: LoraAdapter[] = [];
  for (const weight of weights) {
    const at = g.nodes.findIndex((n) => n.inputs[1] === weight && isPlainLinear(m, n));
    if (at < 0) throw new UserError(`LoRA: ${weight} is not the weight of a Linear (Gemm, transB=1) layer`);
    const node = g.nodes[at]!;
    const [out, inp] = g.initializers.get(weight)!.dims as [number, number];
    if (rank > Math.min(out, inp)) throw new UserError(`LoRA rank ${rank} is larger than layer ${weight} allows (${out}x${inp}: at most ${Math.min(out, inp)})`);
    const stem = weight.replace(/\.weight$/, '');
    const a = fresh(`${stem}.lora_A`);
    const b = fresh(`${stem}.lora_B`);
    // PEFT's initialisation: A ~ kaiming-uniform(a=sqrt 5) = U(-1/sqrt(in), 1/sqrt(in)), B = 0
    const bound = 1 / Math.sqrt(inp);
    g.initializers.set(a, float32([rank, inp], Float32Array.from({ length: rank * inp }, () => rng.uniform(-bound, bound))));
    g.initializers.set(b, float32([out, rank]));
    const y = node.outputs[0]!;
    const base = fresh(`${y}.lora_base`);
    const down = fresh(`${y}.lora_down`);
    const delta = fresh(`${y}.lora_delta`);
    node.outputs = [base, ...node.outputs.slice(1)];
    const added: Node[] = [
      { name: fresh(`${node.name}.lora_down`), opType: 'Gemm', inputs: [node.inputs[0]!, a], outputs: [down], attributes: { transB: int(1) } },
      { name: fresh(`${node.name}.lora_up`), opType: 'Gemm', inputs: [down, b], outputs: [delta], attributes: { transB: int(1) } },
      { name: fresh(`${node.name}.lora_add`), opType: 'Add', inputs: [base, delta], outputs: [y], attributes: {} },
    ];
    g.nodes.splice(at + 1, 0, ...added);
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
  const last = model.graph.nodes.filter((n) => isPlainLinear(model, n)).at(-1);
  if (!last) return [];
  return last.inputs.slice(1, 3).filter((n) => n && model.graph.initializers.has(n));
}
