/** Parsers for CLI option values; each error names the flag and what was expected. */
import { UserError } from '../util/errors.js';
import { alternatives } from '../util/format.js';

export function parseNumberList(flag: string) {
  return (text: string): number[] => {
    const parts = text
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length);
    const values = parts.map(Number);
    if (!parts.length || values.some((v) => !Number.isFinite(v))) throw new UserError(`${flag} expects a comma-separated list of numbers, got "${text}"`);
    return values;
  };
}

export function parseIntList(flag: string) {
  return (text: string): number[] => {
    const values = parseNumberList(flag)(text);
    if (values.some((v) => !Number.isInteger(v) || v < 0)) throw new UserError(`${flag} expects non-negative integers, got "${text}"`);
    return values;
  };
}

export function parsePositiveInt(flag: string) {
  return (text: string): number => {
    const v = Number(text);
    if (!Number.isInteger(v) || v <= 0) throw new UserError(`${flag} expects a positive integer, got "${text}"`);
    return v;
  };
}

export function parseInteger(flag: string) {
  return (text: string): number => {
    const v = Number(text);
    if (!Number.isInteger(v)) throw new UserError(`${flag} expects an integer, got "${text}"`);
    return v;
  };
}

export function parsePositiveNumber(flag: string) {
  return (text: string): number => {
    const v = Number(text);
    if (!Number.isFinite(v) || v <= 0) throw new UserError(`${flag} expects a positive number, got "${text}"`);
    return v;
  };
}

/** A number in [0, 1] (thresholds, accuracy drops). */
export function parseFraction(flag: string) {
  return (text: string): number => {
    const v = Number(text);
    if (!Number.isFinite(v) || v < 0 || v > 1) throw new UserError(`${flag} expects a number in [0, 1], got "${text}"`);
    return v;
  };
}

/** One of a fixed set of words, e.g. parseChoice('--random-bn', ['data', 'init']). */
export function parseChoice<T extends string>(flag: string, choices: readonly T[]) {
  return (text: string): T => {
    if (!(choices as readonly string[]).includes(text)) throw new UserError(`${flag} expects ${alternatives(choices)}, got "${text}"`);
    return text as T;
  };
}

/** "1x28x28" -> [1, 28, 28] */
export function parseShape(flag: string) {
  return (text: string): [number, number, number] => {
    const parts = text.toLowerCase().split('x').map(Number);
    if (parts.length !== 3 || parts.some((v) => !Number.isInteger(v) || v <= 0)) {
      throw new UserError(`${flag} expects CxHxW such as 1x28x28 or 3x32x32, got "${text}"`);
    }
    return parts as [number, number, number];
  };
}
