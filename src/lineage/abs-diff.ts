/**
 * The reference's clustering distance, mean |W_u - W_v| for every pair of rows of a
 * layer stack, blocked over the columns: a block of all n rows is widened to float64
 * (TypedArray.set: native and exact) and stays in cache while every pair of rows is
 * summed over it, and the blocks' n x n partial sums are added in block order, so the
 * result is the same whichever thread computed which block (layer-pool.ts).
 *
 * The pairs are summed by a WebAssembly SIMD kernel built below, because neither
 * JavaScript nor ONNX Runtime does this well and no library does it: there is no product
 * form for L1 distances (no GEMM, unlike the Gram of gram.ts), an ONNX graph has to write
 * all n^2 x block differences before reducing them (measured 2.7 ns per weight pair with
 * Sub/Abs/ReduceSum, single-threaded), and V8 does not vectorise JavaScript (0.46 ns per
 * weight pair with a register-blocked loop, 1.1-1.3 ns for the plain per-pair loop),
 * while the kernel's 2-lane float64 SIMD takes 0.26 ns (105 x 131,072 float32 weights,
 * CPU time on an AMD EPYC, node 20). Most calls take a tile of 2 x 4 rows: the 6 rows are
 * loaded once per column pair for 8 pairs.
 *
 * Exactness: the difference of two float32 values is exact in float64, its absolute
 * value too; only the float64 additions round (even and odd columns in two lanes,
 * lanes added per tile and block, blocks in order), within 1e-12 relative of a plain
 * sequential loop on layers of millions of weights (test/lineage/abs-diff.test.ts).
 *
 * @example
 *   const engine = new AbsDiffEngine();
 *   const d = meanAbsFromSums(engine.sums(stack, n, p), n, p);   // d[i * n + j] = mean |row i - row j|
 */
import { addBlock } from './gram.js';

/** widened float64 block per call: all n rows of it stay in L2 */
const BLOCK_BYTES = 1024 * 1024;
/** ...but at least this many columns, so a tile call's work outweighs its call and the block's n x n partial sums */
const MIN_BLOCK_COLUMNS = 256;
/** bytes of one float64x2 vector */
const V128 = 16;
/** the widest tile: rows a_0, a_1 against b_0..b_3, whose 6 values and 8 accumulators fit the 16 vector registers */
const MAX_A = 2,
  MAX_B = 4;
/** tile shapes [a rows, b rows] the kernel module exports: full tiles and the narrower ones that finish a row of tiles without waste */
const TILES = [
  [2, 4],
  [2, 1],
  [1, 4],
  [1, 1],
] as const;

/** The column blocks of an [n x p] stack: their width (even, the kernel takes two columns per step; the last may be narrower) and count. */
export function absDiffBlocks(n: number, p: number): { cols: number; count: number } {
  const wanted = Math.max(MIN_BLOCK_COLUMNS, Math.floor(BLOCK_BYTES / (8 * n)));
  const cols = Math.max(2, Math.min(p + (p % 2), wanted - (wanted % 2)));
  return { cols, count: Math.ceil(p / cols) };
}

/**
 * The kernels, as WebAssembly bytes: `tileRxS(a0, a1, b0, b1, b2, b3, bytes, out)` sums
 * |a_r[k] - b_s[k]| over the float64 rows at byte offsets a_r (r < R), b_s (s < S),
 * `bytes` long (a positive multiple of 16), into R x S float64x2 accumulators written at
 * `out` (pair r, s at out + 16 (S r + s): lane 0 the even columns, lane 1 the odd ones);
 * offsets past R and S are ignored. Written out here rather than compiled from a source
 * file so the project needs no WebAssembly toolchain.
 */
function kernelBytes(): Uint8Array<ArrayBuffer> {
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
  // opcodes (WebAssembly core 2.0)
  const I32 = 0x7f,
    VEC = 0x7b,
    LOCAL_GET = 0x20,
    LOCAL_SET = 0x21,
    LOCAL_TEE = 0x22,
    I32_CONST = 0x41,
    I32_ADD = 0x6a,
    I32_LT_U = 0x49,
    LOOP = 0x03,
    BR_IF = 0x0d,
    END = 0x0b,
    VOID = 0x40;
  const simd = (op: number, ...immediates: number[]): number[] => [0xfd, ...leb(op), ...immediates];
  const V128_LOAD = 0x00,
    V128_STORE = 0x0b,
    F64X2_ABS = 0xec,
    F64X2_ADD = 0xf0,
    F64X2_SUB = 0xf1;
  const ALIGN_16 = 4;
  const get = (i: number): number[] => [LOCAL_GET, ...leb(i)];
  const set = (i: number): number[] => [LOCAL_SET, ...leb(i)];

  // locals: params (a offsets, b offsets, bytes, out), then k, the rows' vectors, the accumulators
  const B = MAX_A,
    BYTES = MAX_A + MAX_B,
    OUT = BYTES + 1,
    K = OUT + 1,
    ROW = K + 1;
  const tile = (rows: number, cols: number): number[] => {
    const used = [...Array.from({ length: rows }, (_, r) => r), ...Array.from({ length: cols }, (_, s) => B + s)];
    const value = (param: number): number => ROW + used.indexOf(param);
    const ACC = ROW + used.length;
    const code: number[] = [LOOP, VOID];
    for (const param of used) code.push(...get(param), ...get(K), I32_ADD, ...simd(V128_LOAD, ALIGN_16, 0), ...set(value(param)));
    for (let r = 0; r < rows; r++)
      for (let s = 0; s < cols; s++) {
        const acc = ACC + r * cols + s;
        code.push(...get(acc), ...get(value(r)), ...get(value(B + s)), ...simd(F64X2_SUB), ...simd(F64X2_ABS), ...simd(F64X2_ADD), ...set(acc));
      }
    // k += 16; loop while k < bytes
    code.push(...get(K), I32_CONST, V128, I32_ADD, LOCAL_TEE, ...leb(K), ...get(BYTES), I32_LT_U, BR_IF, 0, END);
    for (let a = 0; a < rows * cols; a++) code.push(...get(OUT), ...get(ACC + a), ...simd(V128_STORE, ALIGN_16, ...leb(V128 * a)));
    code.push(END);
    const locals = vec([
      [1, I32],
      [used.length + rows * cols, VEC],
    ]);
    return [...leb(locals.length + code.length), ...locals, ...code];
  };
  const params = Array.from({ length: OUT + 1 }, () => [I32]);
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0],
    ...section(1, vec([[0x60, ...vec(params), 0]])), // one type: (i32 x 8) -> ()
    ...section(3, vec(TILES.map(() => [0]))), // every function of that type
    ...section(5, vec([[0, 1]])), // memory: one page to start
    ...section(7, vec([...TILES.map(([r, s], f) => [...name(`tile${r}x${s}`), 0, f]), [...name('memory'), 2, 0]])),
    ...section(10, vec(TILES.map(([r, s]) => tile(r, s)))),
  ]);
}

let compiled: WebAssembly.Module | undefined;

type Tile = (a0: number, a1: number, b0: number, b1: number, b2: number, b3: number, bytes: number, out: number) => void;

/** One thread's kernel instance and its memory (the tile's sums, then a block of rows). */
export class AbsDiffEngine {
  /** tile[R][S]: R rows against S */
  private readonly tile: Tile[][] = [];
  private readonly memory: WebAssembly.Memory;
  private block = new Float64Array(0);
  private out = new Float64Array(0);
  /** the block starts after the tile's sums */
  private static readonly BLOCK_AT = V128 * MAX_A * MAX_B;

  constructor() {
    compiled ??= new WebAssembly.Module(kernelBytes());
    const exports = new WebAssembly.Instance(compiled).exports as Record<string, unknown>;
    for (const [r, s] of TILES) (this.tile[r] ??= [])[s] = exports[`tile${r}x${s}`] as Tile;
    this.memory = exports['memory'] as WebAssembly.Memory;
  }

  /** Room for `doubles` float64 values of block; growing the memory detaches the old views. */
  private reserve(doubles: number): void {
    const need = AbsDiffEngine.BLOCK_AT + 8 * doubles;
    if (this.memory.buffer.byteLength < need) this.memory.grow(Math.ceil((need - this.memory.buffer.byteLength) / 65536));
    if (this.block.buffer !== this.memory.buffer || this.block.length < doubles) {
      this.out = new Float64Array(this.memory.buffer, 0, 2 * MAX_A * MAX_B);
      this.block = new Float64Array(this.memory.buffer, AbsDiffEngine.BLOCK_AT, doubles);
    }
  }

  /**
   * Column block `b`'s share of sums(): sum over the block's columns of |row i - row j| at
   * [i * n + j] for i < j (a fresh array: callers may keep or transfer it).
   */
  blockSums(stack: Float32Array, n: number, p: number, b: number): Float64Array {
    const sums = new Float64Array(n * n);
    const { cols } = absDiffBlocks(n, p);
    const c0 = b * cols,
      c = Math.min(cols, p - c0);
    // an odd width gets a zero column: |0 - 0| adds nothing
    const width = c + (c % 2);
    this.reserve(n * width);
    const block = this.block,
      out = this.out;
    for (let i = 0; i < n; i++) {
      block.set(stack.subarray(i * p + c0, i * p + c0 + c), i * width);
      if (width > c) block[i * width + c] = 0;
    }
    const bytes = 8 * width;
    const at = (row: number): number => AbsDiffEngine.BLOCK_AT + Math.min(row, n - 1) * bytes;
    /** rows i..i+rows-1 against j..j+cols-1, every pair of them above the diagonal */
    const run = (i: number, rows: number, j: number, cols: number): void => {
      this.tile[rows]![cols]!(at(i), at(i + 1), at(j), at(j + 1), at(j + 2), at(j + 3), bytes, 0);
      for (let r = 0; r < rows; r++) for (let s = 0; s < cols; s++) sums[(i + r) * n + j + s] = out[2 * (r * cols + s)]! + out[2 * (r * cols + s) + 1]!;
    };
    // per pair of rows i0, i0 + 1: the pair itself, then every later row in tiles of 4 and single rows for the rest
    for (let i0 = 0; i0 < n; i0 += MAX_A) {
      const rows = Math.min(MAX_A, n - i0);
      if (rows === 2) run(i0, 1, i0 + 1, 1);
      for (let j = i0 + rows; j < n; j += n - j >= MAX_B ? MAX_B : 1) run(i0, rows, j, n - j >= MAX_B ? MAX_B : 1);
    }
    return sums;
  }

  /** sum over all columns of |row i - row j| at [i * n + j], i < j: the blocks added in block order. */
  sums(stack: Float32Array, n: number, p: number): Float64Array {
    const total = new Float64Array(n * n);
    for (let b = 0; b < absDiffBlocks(n, p).count; b++) addBlock(total, this.blockSums(stack, n, p, b));
    return total;
  }
}

/** The symmetric n x n mean |row i - row j| from the upper-triangle sums of sums()/blockSums(). */
export function meanAbsFromSums(sums: Float64Array, n: number, p: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) out[i * n + j] = out[j * n + i] = sums[i * n + j]! / p;
  return out;
}

/** Mean absolute difference of every pair of rows of an [n x p] stack (the reference's clustering distance), float64 sums. */
export function meanAbsDistances(stack: Float32Array, n: number, p: number, engine = new AbsDiffEngine()): Float64Array {
  return meanAbsFromSums(engine.sums(stack, n, p), n, p);
}
