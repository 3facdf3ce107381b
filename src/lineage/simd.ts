/**
 * WebAssembly SIMD kernels for lineage's loops over every weight, where JavaScript runs
 * one float64 operation at a time and ONNX Runtime has no fused operator: the pairwise
 * |dW| sums (abs-diff.ts), the weight moments behind kurtosis and norms (kurtosis.ts) and
 * the Gram's differences to the reference row (gram.ts).
 * The module is written out here as bytes from a few lines of instructions each, rather
 * than compiled from a source file, so the project needs no WebAssembly toolchain; every
 * kernel is checked against a plain loop in test/lineage.
 *
 * Each thread has its own instance (kernels()), with its own memory: callers copy their
 * data to `scratch` (past the results area) and read the results from `out`. A GramEngine
 * makes one of its own, since its memory is a session's input across an await.
 *
 * @example
 *   const k = kernels();
 *   k.floats(x.length).set(x);
 *   k.sums(x.length);   // k.out[0..7]: per lane, sums of x and x^2
 */

/** bytes of one 128-bit vector */
export const V128 = 16;
/** the widest |dW| tile: rows a_0, a_1 against b_0..b_3, whose 6 values and 8 accumulators fit the 16 vector registers */
export const MAX_A = 2,
  MAX_B = 4;
/** |dW| tile shapes [a rows, b rows] exported: full tiles and the narrower ones that finish a row of tiles without waste */
export const TILES = [
  [2, 4],
  [2, 1],
  [1, 4],
  [1, 1],
] as const;
/** results area at the start of memory, the scratch data after it */
const OUT_BYTES = V128 * MAX_A * MAX_B;
export const SCRATCH_AT = OUT_BYTES;

/** `tileRxS(a0, a1, b0, b1, b2, b3, bytes, out)`: see abs-diff.ts; offsets past R and S are ignored */
export type Tile = (a0: number, a1: number, b0: number, b1: number, b2: number, b3: number, bytes: number, out: number) => void;

// ---- a minimal WebAssembly binary writer (core 2.0 + fixed-width SIMD) ----
const leb = (v: number): number[] => {
  const out: number[] = [];
  do {
    const low = v & 0x7f;
    v >>>= 7;
    out.push(v ? low | 0x80 : low);
  } while (v);
  return out;
};
const vec = (items: number[][]): number[] => [...leb(items.length), ...items.flat()];
const section = (id: number, bytes: number[]): number[] => [id, ...leb(bytes.length), ...bytes];
const name = (s: string): number[] => vec([...new TextEncoder().encode(s)].map((b) => [b]));
const I32 = 0x7f,
  F64 = 0x7c,
  VEC = 0x7b;
const op = {
  loop: [0x03, 0x40],
  brIf0: [0x0d, 0],
  end: [0x0b],
  i32Const: (v: number): number[] => [0x41, ...leb(v)], // small non-negative constants only
  i32Add: [0x6a],
  i32LtU: [0x49],
  get: (i: number): number[] => [0x20, ...leb(i)],
  set: (i: number): number[] => [0x21, ...leb(i)],
  tee: (i: number): number[] => [0x22, ...leb(i)],
};
const ALIGN_8 = 3,
  ALIGN_16 = 4;
const simd = (code: number, ...immediates: number[]): number[] => [0xfd, ...leb(code), ...immediates];
const v = {
  load: (offset = 0): number[] => simd(0x00, ALIGN_16, ...leb(offset)),
  /** two float32 into the low half */
  load64Zero: (offset = 0): number[] => simd(0x5d, ALIGN_8, ...leb(offset)),
  store: (offset = 0): number[] => simd(0x0b, ALIGN_16, ...leb(offset)),
  f64x2Splat: simd(0x14),
  promoteLow: simd(0x5f),
  abs: simd(0xec),
  add: simd(0xf0),
  sub: simd(0xf1),
  mul: simd(0xf2),
};

/** A function body: its extra locals (count, type) and code. */
function body(locals: [number, number][], code: number[]): number[] {
  const l = vec(locals.map(([count, type]) => [...leb(count), type]));
  return [...leb(l.length + code.length + 1), ...l, ...code, ...op.end];
}

/** `do { step; k += stride } while (k < end)`, k and end being locals. */
const counted = (k: number, end: number, stride: number, step: number[]): number[] => [
  ...op.loop,
  ...step,
  ...op.get(k),
  ...op.i32Const(stride),
  ...op.i32Add,
  ...op.tee(k),
  ...op.get(end),
  ...op.i32LtU,
  ...op.brIf0,
  ...op.end,
];

/**
 * |dW| tile R x S: sums |a_r[k] - b_s[k]| over float64 rows at byte offsets a_r, b_s,
 * `bytes` long (a positive multiple of 16), into R x S float64x2 accumulators stored at
 * `out` (pair r, s at out + 16 (S r + s): lane 0 the even columns, lane 1 the odd ones).
 */
function tile(rows: number, cols: number): number[] {
  const B = MAX_A,
    BYTES = MAX_A + MAX_B,
    OUT = BYTES + 1,
    K = OUT + 1,
    ROW = K + 1;
  const used = [...Array.from({ length: rows }, (_, r) => r), ...Array.from({ length: cols }, (_, s) => B + s)];
  const value = (param: number): number => ROW + used.indexOf(param);
  const ACC = ROW + used.length;
  const step: number[] = [];
  for (const param of used) step.push(...op.get(param), ...op.get(K), ...op.i32Add, ...v.load(), ...op.set(value(param)));
  for (let r = 0; r < rows; r++)
    for (let s = 0; s < cols; s++) {
      const acc = ACC + r * cols + s;
      step.push(...op.get(acc), ...op.get(value(r)), ...op.get(value(B + s)), ...v.sub, ...v.abs, ...v.add, ...op.set(acc));
    }
  const code = counted(K, BYTES, V128, step);
  for (let a = 0; a < rows * cols; a++) code.push(...op.get(OUT), ...op.get(ACC + a), ...v.store(V128 * a));
  return body(
    [
      [1, I32],
      [used.length + rows * cols, VEC],
    ],
    code,
  );
}

/**
 * Weight moments, two passes over float32 values at byte offset `at`, `bytes` long (a
 * positive multiple of 16: four values per step, two float64x2 lanes pairs each).
 * `sums(at, bytes, out)`: sum of x and of x^2; `central(at, bytes, mean, out)`: sum of
 * (x - mean)^2, of (x - mean)^4 and of (x - mean)^3 (the third lets chunks' moments be
 * merged, kurtosis.ts). Stored at out as [first sum: 2 vectors, second: 2 vectors(, third: 2)].
 */
function moments(central: boolean): number[] {
  const AT = 0,
    BYTES = 1,
    MEAN = 2,
    OUT = central ? 3 : 2,
    K = OUT + 1,
    M = K + 1, // the splatted mean
    X = M + 1, // two vectors of values
    S = X + 2, // first sums (two accumulators), then second sums (two), then (central) third sums (two)
    T = S + (central ? 6 : 4); // a square
  const step: number[] = [];
  for (const h of [0, 1]) step.push(...op.get(AT), ...op.get(K), ...op.i32Add, ...v.load64Zero(8 * h), ...v.promoteLow, ...op.set(X + h));
  for (const h of [0, 1]) {
    if (central) {
      // d = x - mean; s += d^2; q += d^4; c += d^3
      step.push(...op.get(X + h), ...op.get(M), ...v.sub, ...op.tee(X + h), ...op.get(X + h), ...v.mul, ...op.set(T));
      step.push(...op.get(S + h), ...op.get(T), ...v.add, ...op.set(S + h));
      step.push(...op.get(S + 2 + h), ...op.get(T), ...op.get(T), ...v.mul, ...v.add, ...op.set(S + 2 + h));
      step.push(...op.get(S + 4 + h), ...op.get(T), ...op.get(X + h), ...v.mul, ...v.add, ...op.set(S + 4 + h));
    } else {
      // s += x; q += x^2
      step.push(...op.get(S + h), ...op.get(X + h), ...v.add, ...op.set(S + h));
      step.push(...op.get(S + 2 + h), ...op.get(X + h), ...op.get(X + h), ...v.mul, ...v.add, ...op.set(S + 2 + h));
    }
  }
  const code = central ? [...op.get(MEAN), ...v.f64x2Splat, ...op.set(M)] : [];
  code.push(...counted(K, BYTES, V128, step));
  for (let a = 0; a < (central ? 6 : 4); a++) code.push(...op.get(OUT), ...op.get(S + a), ...v.store(V128 * a));
  return body(
    [
      [1, I32],
      [T - M + 1, VEC],
    ],
    code,
  );
}

/**
 * `minus(src, ref, dst, bytes)`: dst = src - ref in float64, over the float32 values at
 * src and ref (`bytes` long, a positive multiple of 8), written as float64 at dst (twice
 * as long). Exact: a float32 difference fits a float64. The Gram's differences to the
 * reference row (gram.ts).
 */
function minus(): number[] {
  const SRC = 0,
    REF = 1,
    DST = 2,
    BYTES = 3,
    K = 4,
    J = 5;
  const load = (base: number): number[] => [...op.get(base), ...op.get(K), ...op.i32Add, ...v.load64Zero(), ...v.promoteLow];
  const step = [...op.get(DST), ...op.get(J), ...op.i32Add, ...load(SRC), ...load(REF), ...v.sub, ...v.store()];
  step.push(...op.get(J), ...op.i32Const(V128), ...op.i32Add, ...op.set(J));
  return body([[2, I32]], counted(K, BYTES, 8, step));
}

function moduleBytes(): Uint8Array<ArrayBuffer> {
  const TILE_TYPE = 0,
    SUMS_TYPE = 1,
    CENTRAL_TYPE = 2,
    MINUS_TYPE = 3;
  const types = [
    [0x60, ...vec(Array.from({ length: MAX_A + MAX_B + 2 }, () => [I32])), 0],
    [0x60, ...vec([[I32], [I32], [I32]]), 0],
    [0x60, ...vec([[I32], [I32], [F64], [I32]]), 0],
    [0x60, ...vec([[I32], [I32], [I32], [I32]]), 0],
  ];
  const functions: { name: string; type: number; code: number[] }[] = [
    ...TILES.map(([r, s]) => ({ name: `tile${r}x${s}`, type: TILE_TYPE, code: tile(r, s) })),
    { name: 'sums', type: SUMS_TYPE, code: moments(false) },
    { name: 'central', type: CENTRAL_TYPE, code: moments(true) },
    { name: 'minus', type: MINUS_TYPE, code: minus() },
  ];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0],
    ...section(1, vec(types)),
    ...section(3, vec(functions.map((f) => [f.type]))),
    ...section(5, vec([[0, 1]])), // memory: one page to start
    ...section(7, vec([...functions.map((f, i) => [...name(f.name), 0, i]), [...name('memory'), 2, 0]])),
    ...section(10, vec(functions.map((f) => f.code))),
  ]);
}

let compiled: WebAssembly.Module | undefined;
let mine: Kernels | undefined;

/** This thread's kernels. */
export function kernels(): Kernels {
  return (mine ??= new Kernels());
}

export class Kernels {
  /** tile[R][S]: R rows against S */
  readonly tile: Tile[][] = [];
  private readonly memory: WebAssembly.Memory;
  private readonly sumsFn: (at: number, bytes: number, out: number) => void;
  private readonly centralFn: (at: number, bytes: number, mean: number, out: number) => void;
  /** see minus() above: byte offsets into the memory */
  readonly minus: (src: number, ref: number, dst: number, bytes: number) => void;
  /** the results of the last call (a view, renewed when memory grows) */
  out = new Float64Array(0);

  constructor() {
    compiled ??= new WebAssembly.Module(moduleBytes());
    const exports = new WebAssembly.Instance(compiled).exports as Record<string, unknown>;
    for (const [r, s] of TILES) (this.tile[r] ??= [])[s] = exports[`tile${r}x${s}`] as Tile;
    this.sumsFn = exports['sums'] as Kernels['sumsFn'];
    this.centralFn = exports['central'] as Kernels['centralFn'];
    this.minus = exports['minus'] as Kernels['minus'];
    this.memory = exports['memory'] as WebAssembly.Memory;
    this.out = new Float64Array(this.memory.buffer, 0, OUT_BYTES / 8);
  }

  /** The memory, with room for `bytes` of scratch data (growing it detaches earlier views). */
  reserve(bytes: number): ArrayBuffer {
    const need = SCRATCH_AT + bytes;
    if (this.memory.buffer.byteLength < need) {
      this.memory.grow(Math.ceil((need - this.memory.buffer.byteLength) / 65536));
      this.out = new Float64Array(this.memory.buffer, 0, OUT_BYTES / 8);
    }
    return this.memory.buffer;
  }

  /** `count` float64 values of scratch. */
  doubles(count: number): Float64Array {
    return new Float64Array(this.reserve(8 * count), SCRATCH_AT, count);
  }

  /** `count` float32 values of scratch. */
  floats(count: number): Float32Array {
    return new Float32Array(this.reserve(4 * count), SCRATCH_AT, count);
  }

  /** Over the first `count` (a positive multiple of 4) floats of scratch: out[0..3] lanes of sum x, out[4..7] of sum x^2. */
  sums(count: number): void {
    this.sumsFn(SCRATCH_AT, 4 * count, 0);
  }

  /** Over the first `count` (a positive multiple of 4) floats of scratch: out[0..3] lanes of sum (x - mean)^2, out[4..7] of sum (x - mean)^4, out[8..11] of sum (x - mean)^3. */
  central(count: number, mean: number): void {
    this.centralFn(SCRATCH_AT, 4 * count, mean, 0);
  }
}
