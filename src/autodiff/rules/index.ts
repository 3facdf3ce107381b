/**
 * Every gradient rule, by operator. The differentiator looks rules up here; an operator
 * missing from this table cannot be on a differentiated path.
 */
import type { GradRule } from '../types.js';
import { RULES as ELEMENTWISE } from './elementwise.js';
import { RULES as LINEAR } from './linear.js';
import { RULES as SHAPE } from './shape.js';
import { RULES as CONV } from './conv.js';
import { RULES as POOL } from './pool.js';
import { RULES as NORM } from './norm.js';
import { RULES as RESIZE } from './resize.js';

export const GRAD_RULES: Readonly<Record<string, GradRule>> = {
  ...ELEMENTWISE,
  ...LINEAR,
  ...SHAPE,
  ...CONV,
  ...POOL,
  ...NORM,
  ...RESIZE,
};

/** Operators with a gradient rule, sorted. */
export const DIFFERENTIABLE_OPS: readonly string[] = Object.keys(GRAD_RULES).sort();
