/**
 * Optimisers over float32 parameters held in TypeScript typed arrays (the training loop
 * feeds them to the ONNX training graph each step and updates them here). The update
 * rules are PyTorch's torch.optim.SGD, Adam and AdamW (no amsgrad, no maximize), so
 * hyper-parameters carry over; intermediates are computed in double precision and
 * stored as float32. The loops run over up to ~25M values every step, so each update is
 * one pass per parameter with branches hoisted out of the loop.
 */
import type { Model } from '../onnx/types.js';
import { UserError } from '../util/errors.js';

export type OptimizerConfig =
  | { kind: 'sgd'; momentum?: number; nesterov?: boolean; weightDecay?: number }
  | { kind: 'adam' | 'adamw'; beta1?: number; beta2?: number; eps?: number; weightDecay?: number };

export interface Optimizer {
  readonly config: OptimizerConfig;
  /** Updates `params` in place from `grads` (every parameter needs a gradient of its length). */
  step(params: Map<string, Float32Array>, grads: Map<string, Float32Array>, lr: number): void;
  /**
   * The moment buffers, named "<param>/momentum" (SGD) or "<param>/exp_avg" and
   * "<param>/exp_avg_sq" (Adam, AdamW) as in PyTorch's state dict. These are the live
   * buffers: copy them to keep them past the next step.
   */
  state(): Map<string, Float32Array>;
  /** Continues from saved buffers (copied) after `stepCount` steps. */
  loadState(state: Map<string, Float32Array>, stepCount: number): void;
  /** number of step() calls so far (Adam's bias correction uses it) */
  readonly steps: number;
}

export interface OptimizerOptions {
  /**
   * Which parameters get weight decay (default: all, like PyTorch). Common: none for
   * biases and normalisation parameters, see `decayMatrices`.
   */
  decay?: (param: string) => boolean;
}

/** Default weight decay per kind, as PyTorch's constructors have it. */
const DEFAULT_DECAY: Readonly<Record<OptimizerConfig['kind'], number>> = { sgd: 0, adam: 0, adamw: 0.01 };

/** The optimiser kinds (the keys of a per-kind table, so the list cannot miss one). */
export const OPTIMIZER_KINDS = Object.keys(DEFAULT_DECAY) as readonly OptimizerConfig['kind'][];

export function createOptimizer(config: OptimizerConfig, options: OptimizerOptions = {}): Optimizer {
  const decay = options.decay ?? (() => true);
  switch (config.kind) {
    case 'sgd':
      return new Sgd(config, decay);
    case 'adam':
    case 'adamw':
      return new Adam(config, decay);
    default:
      throw new UserError(`optimizer kind ${JSON.stringify((config as { kind: unknown }).kind)} is not known (expected sgd, adam or adamw)`);
  }
}

/** Decay for weight matrices and kernels only: parameters of rank >= 2 in the model. */
export function decayMatrices(model: Model): (param: string) => boolean {
  const ranked = new Set([...model.graph.initializers].filter(([, t]) => t.dims.length >= 2).map(([n]) => n));
  return (param) => ranked.has(param);
}

/**
 * What SGD and Adam share: buffer bookkeeping, checks of the inputs, and the check
 * that loaded state matches the parameters on the first step after loadState.
 */
abstract class BaseOptimizer implements Optimizer {
  protected buffers = new Map<string, Float32Array>();
  private count = 0;
  private loaded = false;

  constructor(
    readonly config: OptimizerConfig,
    private readonly decay: (param: string) => boolean,
    private readonly slots: readonly string[],
  ) {}

  get steps(): number {
    return this.count;
  }

  state(): Map<string, Float32Array> {
    return new Map(this.buffers);
  }

  loadState(state: Map<string, Float32Array>, stepCount: number): void {
    if (!Number.isSafeInteger(stepCount) || stepCount < 0) throw new UserError(`optimizer step count must be a non-negative integer, got ${stepCount}`);
    this.buffers = new Map([...state].map(([k, v]) => [k, Float32Array.from(v)]));
    this.count = stepCount;
    this.loaded = true;
  }

  step(params: Map<string, Float32Array>, grads: Map<string, Float32Array>, lr: number): void {
    if (!Number.isFinite(lr) || lr < 0) throw new UserError(`learning rate must be a finite non-negative number, got ${lr}`);
    if (this.loaded) this.checkLoaded(params);
    // Checked before any update, so that a failed call leaves nothing half-stepped.
    for (const [name, p] of params) {
      const g = grads.get(name);
      if (!g || g.length !== p.length)
        throw new Error(`optimizer: parameter "${name}" (${p.length} values) has ${g ? `a gradient of ${g.length} values` : 'no gradient'}`);
    }
    this.count++;
    for (const [name, p] of params) this.update(name, p, grads.get(name)!, lr, this.decay(name));
  }

  protected abstract update(name: string, p: Float32Array, g: Float32Array, lr: number, decays: boolean): void;

  /** A buffer, zero-filled on the parameter's first step. */
  protected buffer(name: string, slot: string, length: number): Float32Array {
    const key = `${name}/${slot}`;
    let b = this.buffers.get(key);
    if (!b) this.buffers.set(key, (b = new Float32Array(length)));
    return b;
  }

  /** Resumed state must cover exactly the parameters being trained, at their sizes. */
  private checkLoaded(params: Map<string, Float32Array>): void {
    this.loaded = false;
    const expected = new Set<string>();
    for (const [name, p] of params) {
      for (const slot of this.slots) {
        const key = `${name}/${slot}`;
        expected.add(key);
        const b = this.buffers.get(key);
        if (!b && this.count > 0)
          throw new UserError(`optimizer state after ${this.count} steps lacks "${key}": was the checkpoint written for other trainable parameters?`);
        if (b && b.length !== p.length) throw new UserError(`optimizer state "${key}" has ${b.length} values; parameter "${name}" has ${p.length}`);
      }
    }
    for (const key of this.buffers.keys()) {
      if (!expected.has(key)) throw new UserError(`optimizer state "${key}" belongs to no parameter being trained`);
    }
  }
}

type SgdConfig = Extract<OptimizerConfig, { kind: 'sgd' }>;

/** torch.optim.SGD with dampening 0. */
class Sgd extends BaseOptimizer {
  private readonly momentum: number;
  private readonly nesterov: boolean;
  private readonly weightDecay: number;

  constructor(config: SgdConfig, decay: (param: string) => boolean) {
    const momentum = config.momentum ?? 0.9;
    super(config, decay, momentum === 0 ? [] : ['momentum']);
    this.momentum = nonNegative(momentum, 'SGD momentum');
    this.nesterov = config.nesterov ?? false;
    this.weightDecay = nonNegative(config.weightDecay ?? DEFAULT_DECAY.sgd, 'weight decay');
    if (this.nesterov && this.momentum === 0) throw new UserError('Nesterov SGD needs a momentum above 0');
  }

  protected update(name: string, p: Float32Array, g: Float32Array, lr: number, decays: boolean): void {
    const wd = decays ? this.weightDecay : 0;
    if (this.momentum === 0) return sgdPlain(p, g, lr, wd);
    // PyTorch starts the buffer at the first (decayed) gradient: momentum * 0 + g is
    // exactly that, so a zero-filled new buffer needs no special first step.
    const buf = this.buffer(name, 'momentum', p.length);
    if (this.nesterov) sgdNesterov(p, g, buf, lr, wd, this.momentum);
    else sgdMomentum(p, g, buf, lr, wd, this.momentum);
  }
}

// The loops below compute g + wd * p even when wd is 0 (exact for finite p): a branch
// in the loop made the step 1.3-2x slower (measured on 11M values), and a NaN parameter
// is reported by the training loop anyway.
function sgdPlain(p: Float32Array, g: Float32Array, lr: number, wd: number): void {
  const n = p.length;
  for (let i = 0; i < n; i++) {
    const x = p[i]!;
    p[i] = x - lr * (g[i]! + wd * x);
  }
}

function sgdMomentum(p: Float32Array, g: Float32Array, buf: Float32Array, lr: number, wd: number, mu: number): void {
  const n = p.length;
  for (let i = 0; i < n; i++) {
    const x = p[i]!;
    const b = mu * buf[i]! + (g[i]! + wd * x);
    buf[i] = b;
    p[i] = x - lr * b;
  }
}

function sgdNesterov(p: Float32Array, g: Float32Array, buf: Float32Array, lr: number, wd: number, mu: number): void {
  const n = p.length;
  for (let i = 0; i < n; i++) {
    const x = p[i]!;
    const d = g[i]! + wd * x;
    const b = mu * buf[i]! + d;
    buf[i] = b;
    p[i] = x - lr * (d + mu * b);
  }
}

type AdamConfig = Extract<OptimizerConfig, { kind: 'adam' | 'adamw' }>;

/** torch.optim.Adam (L2 decay added to the gradient) and AdamW (decoupled decay). */
class Adam extends BaseOptimizer {
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;
  private readonly decoupled: boolean;

  constructor(config: AdamConfig, decay: (param: string) => boolean) {
    super(config, decay, ['exp_avg', 'exp_avg_sq']);
    this.beta1 = beta(config.beta1 ?? 0.9, 'beta1');
    this.beta2 = beta(config.beta2 ?? 0.999, 'beta2');
    this.eps = nonNegative(config.eps ?? 1e-8, 'Adam eps');
    this.weightDecay = nonNegative(config.weightDecay ?? DEFAULT_DECAY[config.kind], 'weight decay');
    this.decoupled = config.kind === 'adamw';
  }

  protected update(name: string, p: Float32Array, g: Float32Array, lr: number, decays: boolean): void {
    const m = this.buffer(name, 'exp_avg', p.length);
    const v = this.buffer(name, 'exp_avg_sq', p.length);
    const wd = decays ? this.weightDecay : 0;
    const t = this.steps;
    const k = {
      b1: this.beta1,
      b2: this.beta2,
      eps: this.eps,
      stepSize: lr / (1 - this.beta1 ** t),
      sqrtBc2: Math.sqrt(1 - this.beta2 ** t),
      // AdamW shrinks the parameter before the update; Adam folds decay into the gradient.
      shrink: this.decoupled ? 1 - lr * wd : 1,
      l2: this.decoupled ? 0 : wd,
    };
    adamUpdate(p, g, m, v, k);
  }
}

interface AdamStep {
  b1: number;
  b2: number;
  eps: number;
  stepSize: number;
  sqrtBc2: number;
  shrink: number;
  l2: number;
}

function adamUpdate(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, k: AdamStep): void {
  const { b1, b2, eps, stepSize, shrink, l2 } = k;
  const c1 = 1 - b1;
  const c2 = 1 - b2;
  const invBc2 = 1 / k.sqrtBc2;
  const n = p.length;
  for (let i = 0; i < n; i++) {
    const x = p[i]!;
    const d = g[i]! + l2 * x;
    const mi = b1 * m[i]! + c1 * d;
    const vi = b2 * v[i]! + c2 * d * d;
    m[i] = mi;
    v[i] = vi;
    p[i] = x * shrink - (stepSize * mi) / (Math.sqrt(vi) * invBc2 + eps);
  }
}
function nonNegative(x: number, what: string): number {
  if (!Number.isFinite(x) || x < 0) throw new UserError(`${what} must be a finite number >= 0, got ${x}`);
  return x;
}

function beta(x: number, what: string): number {
  if (!(x >= 0 && x < 1)) throw new UserError(`Adam ${what} must be in [0, 1), got ${x}`);
  return x;
}
