/**
 * Seeded parameter initialisation. Every parameter draws from its own stream, derived
 * from the model seed and the parameter's name, so adding or removing a layer leaves
 * every other layer's weights unchanged and the same seed always gives the same bits.
 */
import { Rng, hashSeed } from '../util/random.js';
import { numel } from '../onnx/tensor.js';

/** How one parameter tensor starts out. */
export type InitSpec =
  /** N(0, gain^2 / fanIn): Kaiming (He) normal, fan_in mode */
  | { kind: 'kaimingNormal'; fanIn: number; gain?: number }
  /** U(-bound, bound): PyTorch's default for nn.Linear weight and bias is bound = 1/sqrt(fan_in) */
  | { kind: 'uniform'; bound: number }
  /** N(0, std^2) */
  | { kind: 'normal'; std: number }
  /** N(0, std^2) redrawn outside [-limit, limit]: PyTorch's trunc_normal_ (its default limit is 2, absolute) */
  | { kind: 'truncNormal'; std: number; limit?: number }
  /** U(-b, b), b = sqrt(6 / (fanIn + fanOut)): Glorot (Xavier) uniform, as torch.nn.init.xavier_uniform_ */
  | { kind: 'xavierUniform'; fanIn: number; fanOut: number }
  | { kind: 'constant'; value: number };

/** ReLU's gain: Kaiming's sqrt(2). */
export const RELU_GAIN = Math.SQRT2;

/** The random stream of one parameter: depends only on the seed and the name. */
export function parameterRng(seed: number, name: string): Rng {
  return new Rng(hashSeed(seed, name));
}

export function initValues(spec: InitSpec, dims: readonly number[], seed: number, name: string): Float32Array {
  const out = new Float32Array(numel(dims));
  switch (spec.kind) {
    case 'constant':
      out.fill(spec.value);
      return out;
    case 'uniform': {
      const rng = parameterRng(seed, name);
      for (let i = 0; i < out.length; i++) out[i] = rng.uniform(-spec.bound, spec.bound);
      return out;
    }
    case 'normal': {
      const rng = parameterRng(seed, name);
      for (let i = 0; i < out.length; i++) out[i] = rng.normal() * spec.std;
      return out;
    }
    case 'truncNormal': {
      const rng = parameterRng(seed, name);
      const limit = spec.limit ?? 2;
      if (!(limit > 0)) throw new Error(`truncNormal limit must be positive, got ${limit}`);
      for (let i = 0; i < out.length; i++) {
        let v: number;
        do v = rng.normal() * spec.std;
        while (Math.abs(v) > limit);
        out[i] = v;
      }
      return out;
    }
    case 'xavierUniform': {
      const rng = parameterRng(seed, name);
      const bound = Math.sqrt(6 / (spec.fanIn + spec.fanOut));
      for (let i = 0; i < out.length; i++) out[i] = rng.uniform(-bound, bound);
      return out;
    }
    case 'kaimingNormal': {
      const rng = parameterRng(seed, name);
      const std = (spec.gain ?? RELU_GAIN) / Math.sqrt(spec.fanIn);
      for (let i = 0; i < out.length; i++) out[i] = rng.normal() * std;
      return out;
    }
  }
}

/** PyTorch's nn.Linear / nn.Conv default bound for a layer with this fan-in. */
export const defaultUniformBound = (fanIn: number): number => 1 / Math.sqrt(fanIn);
