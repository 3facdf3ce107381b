/**
 * Synthetic model families for tests and benchmarks (not for accuracy claims: real zoos
 * come from `modelsmith lineage-zoo`). Each tree's root has random heavy-tailed weights;
 * every child is its parent plus a seeded Gaussian update (full) or a rank-r update
 * (lowrank). Files are safetensors named by node; truth lists the parent-child edges.
 *
 * @example
 *   const { files, truth } = writeSyntheticZoo('tmp/zoo', { trees: 2, children: 2, depth: 2, layers: 2, size: 16, seed: 1 });
 */
import { join } from 'node:path';
import { writeSafetensors } from '../io/safetensors.js';
import { float32 } from '../onnx/tensor.js';
import { Rng, hashSeed } from '../util/random.js';
import { writeJsonAtomic } from '../util/atomic.js';

export interface SyntheticZooOptions {
  trees: number;
  /** children per node */
  children: number;
  /** levels below the root */
  depth: number;
  /** square layers per model */
  layers: number;
  /** side of each square layer */
  size: number;
  seed: number;
  /** relative size of each fine-tuning update (default 0.05) */
  step?: number;
  /** rank of each update; full rank when omitted */
  rank?: number;
  /** extra non-square tensors written too (checks the default selection) */
  extras?: boolean;
}

export interface SyntheticZoo {
  files: string[];
  names: string[];
  truth: { edges: [string, string][] };
}

/** Builds the family in memory and writes one safetensors file per model plus truth.json. */
export function writeSyntheticZoo(dir: string, o: SyntheticZooOptions): SyntheticZoo {
  const files: string[] = [];
  const names: string[] = [];
  const edges: [string, string][] = [];
  const p = o.size * o.size;
  const step = o.step ?? 0.05;
  const write = (name: string, weights: Float32Array[]): void => {
    const tensors: [string, ReturnType<typeof float32>][] = weights.map((w, l) => [`layer${l}.weight`, float32([o.size, o.size], w)]);
    if (o.extras) {
      tensors.push(['head.weight', float32([3, o.size], weights[0]!.subarray(0, 3 * o.size))]);
      tensors.push(['layer0.bias', float32([o.size], weights[0]!.subarray(0, o.size))]);
    }
    const f = join(dir, `${name}.safetensors`);
    writeSafetensors(f, tensors);
    files.push(f);
    names.push(name);
  };
  const grow = (name: string, weights: Float32Array[], level: number): void => {
    write(name, weights);
    if (level >= o.depth) return;
    for (let c = 0; c < o.children; c++) {
      const child = `${name}-${c}`;
      const rng = new Rng(hashSeed(o.seed, child));
      const next = weights.map((w) => update(w, o.size, step, rng, o.rank));
      edges.push([name, child]);
      grow(child, next, level + 1);
    }
  };
  for (let t = 0; t < o.trees; t++) {
    const rng = new Rng(hashSeed(o.seed, `root${t}`));
    const weights = Array.from({ length: o.layers }, () => {
      const w = new Float32Array(p);
      // Student-t-like tails (normal / sqrt(chi2-ish)) so kurtosis is not ~0
      for (let i = 0; i < p; i++) w[i] = rng.normal() / Math.sqrt(0.5 + rng.next()) / o.size;
      return w;
    });
    grow(`t${t}`, weights, 0);
  }
  const truth = { edges };
  writeJsonAtomic(join(dir, 'truth.json'), truth);
  return { files, names, truth };
}

function update(w: Float32Array, size: number, step: number, rng: Rng, rank?: number): Float32Array {
  const out = Float32Array.from(w);
  let norm = 0;
  for (const x of w) norm += x * x;
  const scale = step * Math.sqrt(norm / w.length);
  if (rank === undefined) {
    for (let i = 0; i < out.length; i++) out[i]! += scale * rng.normal();
    return out;
  }
  for (let r = 0; r < rank; r++) {
    const a = Array.from({ length: size }, () => rng.normal());
    const b = Array.from({ length: size }, () => rng.normal());
    for (let i = 0; i < size; i++) for (let j = 0; j < size; j++) out[i * size + j]! += (scale * a[i]! * b[j]!) / Math.sqrt(rank);
  }
  return out;
}
