import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createOptimizer, decayMatrices, type OptimizerConfig } from '../../src/autodiff/optim.js';
import { float32 } from '../../src/onnx/tensor.js';
import { createModel, emptyGraph } from '../../src/onnx/graph.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/random.js';

const params = (...values: number[][]): Map<string, Float32Array> => new Map(values.map((v, i) => [`p${i}`, Float32Array.from(v)]));

/** float32 storage rounds every step: compare to the float64 formulas to ~1e-6 relative. */
function assertClose(actual: ArrayLike<number>, expected: readonly number[], what: string): void {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) {
    const tol = 2e-6 * Math.max(1, Math.abs(expected[i]!));
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

// PyTorch's update rules (torch.optim.SGD / Adam / AdamW), written out in float64.
function torchSgd(p: number[], grads: number[][], lr: number, mu: number, wd: number, nesterov: boolean): number[] {
  const buf: number[] = [];
  const x = [...p];
  grads.forEach((g, t) => {
    for (let i = 0; i < x.length; i++) {
      const d = g[i]! + wd * x[i]!;
      buf[i] = t === 0 ? d : mu * buf[i]! + d;
      x[i] = x[i]! - lr * (nesterov ? d + mu * buf[i]! : buf[i]!);
    }
  });
  return x;
}

function torchAdam(p: number[], grads: number[][], lr: number, wd: number, decoupled: boolean, b1 = 0.9, b2 = 0.999, eps = 1e-8): number[] {
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  const x = [...p];
  grads.forEach((g, t) => {
    const step = t + 1;
    for (let i = 0; i < x.length; i++) {
      if (decoupled) x[i] = x[i]! * (1 - lr * wd);
      const d = decoupled ? g[i]! : g[i]! + wd * x[i]!;
      m[i] = b1 * m[i]! + (1 - b1) * d;
      v[i] = b2 * v[i]! + (1 - b2) * d * d;
      const mHat = m[i]! / (1 - b1 ** step);
      const vHat = v[i]! / (1 - b2 ** step);
      x[i] = x[i]! - (lr * mHat) / (Math.sqrt(vHat) + eps);
    }
  });
  return x;
}

function run(config: OptimizerConfig, p: number[], grads: number[][], lr: number): Float32Array {
  const opt = createOptimizer(config);
  const ps = params(p);
  for (const g of grads) opt.step(ps, params(g), lr);
  assert.equal(opt.steps, grads.length);
  return ps.get('p0')!;
}

test('SGD with momentum 0.9 and weight decay matches hand-computed values over 3 steps', () => {
  const g = [
    [0.5, -1],
    [0.5, -1],
    [0.5, -1],
  ];
  const cfg: OptimizerConfig = { kind: 'sgd', momentum: 0.9, weightDecay: 0.1 };
  assertClose(run(cfg, [1, 2], g.slice(0, 1), 0.1), [0.94, 2.08], 'step 1 (buffer = first gradient)');
  assertClose(run(cfg, [1, 2], g.slice(0, 2), 0.1), [0.8266, 2.2312], 'step 2');
  assertClose(run(cfg, [1, 2], g, 0.1), [0.666274, 2.444968], 'step 3');
  assertClose(run(cfg, [1, 2], g, 0.1), torchSgd([1, 2], g, 0.1, 0.9, 0.1, false), 'formula');
});

test('Nesterov SGD uses g + momentum * buf', () => {
  const g = [
    [0.5, -1],
    [0.5, -1],
    [-0.25, 3],
  ];
  const cfg: OptimizerConfig = { kind: 'sgd', momentum: 0.9, nesterov: true, weightDecay: 0.1 };
  assertClose(run(cfg, [1, 2], g.slice(0, 1), 0.1), [0.886, 2.152], 'step 1');
  assertClose(run(cfg, [1, 2], g.slice(0, 2), 0.1), [0.725566, torchSgd([1, 2], g.slice(0, 2), 0.1, 0.9, 0.1, true)[1]!], 'step 2');
  assertClose(run(cfg, [1, 2], g, 0.1), torchSgd([1, 2], g, 0.1, 0.9, 0.1, true), 'formula');
  assertClose(run({ kind: 'sgd', momentum: 0 }, [1, 2], g, 0.1), [1 - 0.1 * 0.75, 2 - 0.1 * 1], 'plain SGD');
});

test('Adam corrects the bias of its moments at steps 1 and 2', () => {
  const g = [
    [0.5, -1],
    [0.1, 2],
  ];
  // Step 1: m^ = g and v^ = g^2, so each parameter moves by lr * g / (|g| + eps), i.e. ~lr.
  assertClose(run({ kind: 'adam' }, [1, 2], g.slice(0, 1), 0.01), [1 - (0.01 * 0.5) / (0.5 + 1e-8), 2 + 0.01 / (1 + 1e-8)], 'step 1');
  const m = 0.9 * 0.05 + 0.1 * 0.1;
  const v = 0.999 * 0.00025 + 0.001 * 0.01;
  const p2 = 0.99 - (0.01 * (m / 0.19)) / (Math.sqrt(v / (1 - 0.999 ** 2)) + 1e-8);
  assertClose([run({ kind: 'adam' }, [1, 2], g, 0.01)[0]!], [p2], 'step 2');
  assertClose(run({ kind: 'adam', weightDecay: 0.05 }, [1, 2], g, 0.01), torchAdam([1, 2], g, 0.01, 0.05, false), 'Adam with L2');
  assertClose(run({ kind: 'adamw', weightDecay: 0.05 }, [1, 2], g, 0.01), torchAdam([1, 2], g, 0.01, 0.05, true), 'AdamW');
  const b = { beta1: 0.5, beta2: 0.9, eps: 1e-3 };
  assertClose(run({ kind: 'adam', ...b }, [1, 2], g, 0.01), torchAdam([1, 2], g, 0.01, 0, false, 0.5, 0.9, 1e-3), 'custom betas');
});

test('AdamW differs from Adam exactly by the decoupled decay', () => {
  const rng = new Rng(1);
  const p0 = Array.from({ length: 64 }, () => rng.normal());
  const g = Array.from({ length: 64 }, () => rng.normal());
  const adam = createOptimizer({ kind: 'adam', weightDecay: 0 });
  const adamw = createOptimizer({ kind: 'adamw', weightDecay: 0.1 });
  const pa = params(p0);
  const pw = params(p0);
  adam.step(pa, params(g), 0.01);
  adamw.step(pw, params(g), 0.01);
  const diff = Array.from(pw.get('p0')!, (x, i) => x - pa.get('p0')![i]!);
  assertClose(
    diff,
    p0.map((x) => -0.01 * 0.1 * x),
    'p_adamw - p_adam = -lr * wd * p',
  );
  // The decay never enters the gradient, so the moments are the same.
  assert.deepEqual(adamw.state(), adam.state());
  const l2 = createOptimizer({ kind: 'adam', weightDecay: 0.1 });
  l2.step(params(p0), params(g), 0.01);
  assert.notDeepEqual(l2.state().get('p0/exp_avg'), adam.state().get('p0/exp_avg'), 'Adam puts the decay in the moments');
});

test('default weight decay follows PyTorch: AdamW 0.01, Adam and SGD 0', () => {
  assertClose(run({ kind: 'adamw' }, [1], [[0]], 0.1), [1 - 0.1 * 0.01], 'AdamW, zero gradient');
  assertClose(run({ kind: 'adam' }, [1], [[0]], 0.1), [1], 'Adam, zero gradient');
  assertClose(run({ kind: 'sgd' }, [1], [[0]], 0.1), [1], 'SGD, zero gradient');
});

test('a decay predicate exempts parameters (e.g. biases) from weight decay', () => {
  const opt = createOptimizer({ kind: 'sgd', momentum: 0, weightDecay: 0.5 }, { decay: (n) => n !== 'p1' });
  const ps = params([1], [1]);
  opt.step(ps, params([0], [0]), 0.1);
  assert.deepEqual([...ps.get('p0')!], [Math.fround(0.95)]);
  assert.deepEqual([...ps.get('p1')!], [1]);
  const g = emptyGraph('m');
  g.initializers.set('fc.weight', float32([2, 3]));
  g.initializers.set('fc.bias', float32([2]));
  const decays = decayMatrices(createModel(g));
  assert.deepEqual([decays('fc.weight'), decays('fc.bias')], [true, false]);
});

test('state() and loadState() round trip: a resumed optimiser continues bit for bit', () => {
  const rng = new Rng(7);
  const p0 = [Array.from({ length: 33 }, () => rng.normal()), Array.from({ length: 5 }, () => rng.normal())];
  const grads = Array.from({ length: 6 }, () => params(...p0.map((p) => p.map(() => rng.normal()))));
  const configs: OptimizerConfig[] = [
    { kind: 'sgd', momentum: 0.9, weightDecay: 5e-4 },
    { kind: 'sgd', momentum: 0.8, nesterov: true },
    { kind: 'adam', weightDecay: 1e-3 },
    { kind: 'adamw' },
  ];
  for (const config of configs) {
    const straight = createOptimizer(config);
    const a = params(...p0);
    for (const g of grads) straight.step(a, g, 0.05);

    const first = createOptimizer(config);
    const b = params(...p0);
    for (const g of grads.slice(0, 2)) first.step(b, g, 0.05);
    const saved = new Map([...first.state()].map(([k, v]) => [k, Float32Array.from(v)]));
    const names = config.kind === 'sgd' ? ['p0/momentum', 'p1/momentum'] : ['p0/exp_avg', 'p0/exp_avg_sq', 'p1/exp_avg', 'p1/exp_avg_sq'];
    assert.deepEqual([...saved.keys()].sort(), names, config.kind);

    const resumed = createOptimizer(config);
    resumed.loadState(saved, first.steps);
    assert.equal(resumed.steps, 2);
    for (const g of grads.slice(2)) resumed.step(b, g, 0.05);
    assert.deepEqual(b, a, `${JSON.stringify(config)}: resumed equals straight`);
    assert.deepEqual(resumed.state(), straight.state());
  }
});

test('loaded state that does not fit the parameters is refused on the next step', () => {
  const resume =
    (state: Map<string, Float32Array>): (() => void) =>
    () => {
      const opt = createOptimizer({ kind: 'adam' });
      opt.loadState(state, 3);
      opt.step(params([1, 2]), params([0, 0]), 0.1);
    };
  const f2 = (): Float32Array => new Float32Array(2);
  assert.throws(resume(new Map([['p0/exp_avg', f2()]])), (e) => e instanceof UserError && /lacks "p0\/exp_avg_sq"/.test(e.message));
  assert.throws(
    resume(
      new Map([
        ['p0/exp_avg', f2()],
        ['p0/exp_avg_sq', new Float32Array(3)],
      ]),
    ),
    (e) => e instanceof UserError && /3 values/.test(e.message),
  );
  assert.throws(
    resume(
      new Map([
        ['p0/exp_avg', f2()],
        ['p0/exp_avg_sq', f2()],
        ['old/exp_avg', f2()],
      ]),
    ),
    (e) => e instanceof UserError && /"old\/exp_avg" belongs to no parameter/.test(e.message),
  );
  assert.doesNotThrow(
    resume(
      new Map([
        ['p0/exp_avg', f2()],
        ['p0/exp_avg_sq', f2()],
      ]),
    ),
  );
});

test('bad settings and inputs are refused', () => {
  assert.throws(
    () => createOptimizer({ kind: 'sgd', momentum: 0, nesterov: true }),
    (e) => e instanceof UserError && /Nesterov/.test(e.message),
  );
  assert.throws(
    () => createOptimizer({ kind: 'adam', beta1: 1 }),
    (e) => e instanceof UserError && /beta1/.test(e.message),
  );
  assert.throws(
    () => createOptimizer({ kind: 'adamw', weightDecay: -1 }),
    (e) => e instanceof UserError && /weight decay/.test(e.message),
  );
  assert.throws(
    () => createOptimizer({ kind: 'rmsprop' } as unknown as OptimizerConfig),
    (e) => e instanceof UserError && /rmsprop/.test(e.message),
  );
  const opt = createOptimizer({ kind: 'sgd' });
  assert.throws(
    () => opt.step(params([1]), params([1]), NaN),
    (e) => e instanceof UserError && /learning rate/.test(e.message),
  );
  assert.throws(() => opt.step(params([1, 2]), params([1]), 0.1), /p0/);
  const ps = params([1], [2, 3]);
  assert.throws(() => opt.step(ps, params([1], [1]), 0.1), /p1/);
  assert.deepEqual(
    [...ps.values()].map((p) => [...p]),
    [[1], [2, 3]],
    'nothing updated by a failed step',
  );
  assert.equal(opt.steps, 0);
  assert.throws(() => opt.step(params([1]), new Map(), 0.1), /no gradient/);
});
