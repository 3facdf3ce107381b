/**
 * A float64 reference interpreter for tests: finite-difference gradient checks need the
 * forward pass in double precision, which ONNX Runtime's CPU kernels do not offer for
 * every operator (Conv, ConvTranspose). Operators register themselves here; index.ts
 * imports every operator module.
 */
import type { Node } from '../../../src/onnx/types.js';

/** A tensor in the reference interpreter: float64 values whatever the ONNX dtype. */
export interface RefTensor {
  dims: number[];
  data: Float64Array;
}

export type RefOp = (node: Node, inputs: (RefTensor | undefined)[]) => RefTensor[];

export const REF_OPS = new Map<string, RefOp>();

export function registerRefOp(opType: string, op: RefOp): void {
  REF_OPS.set(opType, op);
}
