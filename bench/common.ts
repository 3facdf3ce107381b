/** Shared pieces of the benchmarks: timing loops, the machine's MatMul peak, reporting. */
import { cpus } from 'node:os';
import type { Model } from '../src/onnx/types.js';
import { createModel, emptyGraph } from '../src/onnx/graph.js';
import { float32 } from '../src/onnx/tensor.js';
import { ModelSession } from '../src/runtime/session.js';
import { Rng } from '../src/util/random.js';

export interface Timing {
  iterations: number;
  seconds: number;
  /** seconds per iteration, median of the timed iterations */
  median: number;
  /**
   * CPU seconds (user + system, all threads of the process) per timed iteration, mean: on
   * a shared machine wall time mostly measures the neighbours, CPU time much less so
   */
  cpu: number;
}

/** Runs fn warm-up times, then until minSeconds have passed; returns the median time per call. */
export async function time(fn: () => Promise<unknown>, minSeconds: number, warmup = 2): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  while ((performance.now() - start) / 1000 < minSeconds || times.length < 3) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  const cpu = process.cpuUsage(cpuStart);
  times.sort((a, b) => a - b);
  return {
    iterations: times.length,
    seconds: (performance.now() - start) / 1000,
    median: times[Math.floor(times.length / 2)]!,
    cpu: (cpu.user + cpu.system) / 1e6 / times.length,
  };
}

export function randomInput(n: number, seed = 0): Float32Array {
  const rng = new Rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.normal();
  return x;
}

/** A one-node MatMul model [n x n] x [n x n]: the runtime's attainable peak on this machine. */
export function matmulModel(n: number): Model {
  const g = emptyGraph('matmul_peak');
  g.inputs.push({ name: 'a', dtype: 'float32', shape: [n, n] });
  g.initializers.set('b', float32([n, n], randomInput(n * n, 1)));
  g.nodes.push({ name: 'mm', opType: 'MatMul', inputs: ['a', 'b'], outputs: ['c'], attributes: {} });
  g.outputs.push({ name: 'c', dtype: 'float32', shape: [n, n] });
  return createModel(g);
}

export async function matmulPeak(threads: number, seconds: number, n = 2048): Promise<number> {
  const s = await ModelSession.create(matmulModel(n), { threads });
  const a = { dims: [n, n], data: randomInput(n * n, 2) };
  const t = await time(() => s.run({ a }), seconds);
  await s.release();
  return (2 * n ** 3) / t.median / 1e9;
}

export function machine(): string {
  const c = cpus();
  return `${c.length} x ${c[0]?.model ?? 'unknown CPU'}`;
}
