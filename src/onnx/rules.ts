/** The operator table: every operator modelsmith understands, with its shape rule and arity. */
import type { OpRule } from './op-context.js';
import { ELEMENTWISE_RULES } from './rules-elementwise.js';
import { NN_RULES } from './rules-nn.js';
import { SHAPE_RULES } from './rules-shape.js';
import { TENSOR_RULES } from './rules-tensor.js';
import { isDefaultDomain } from './graph.js';

export const RULES: Readonly<Record<string, OpRule>> = {
  ...ELEMENTWISE_RULES,
  ...NN_RULES,
  ...SHAPE_RULES,
  ...TENSOR_RULES,
};

/** Operators (default ONNX domain) that inference, validation and the passes support, sorted. */
export const SUPPORTED_OPS: readonly string[] = Object.keys(RULES).sort();

/** The rule for a node's operator; undefined for other domains and unknown operators. */
export function ruleFor(opType: string, domain = ''): OpRule | undefined {
  if (!isDefaultDomain(domain)) return undefined;
  return Object.prototype.hasOwnProperty.call(RULES, opType) ? RULES[opType] : undefined;
}
