/**
 * The float64 reference interpreter: importing this module registers every reference
 * operator (elementwise, shape, linear here; conv, pool, norm, resize from the
 * convolution side) and exposes runReference.
 */
import './elementwise.js';
import './shape.js';
import './linear.js';
import './conv.js';
import './pool.js';
import './norm.js';
import './resize.js';

export { runReference, toRef } from './runner.js';
export { REF_OPS, registerRefOp, type RefOp, type RefTensor } from './registry.js';
export { refTensor } from './elementwise.js';
