/** Parsers for CLI option values; each error names the flag and what was expected. */
import { UserError } from '../util/errors.js';
import { oneOf } from '../util/choice.js';

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

/** A parser of one number for a flag: `ok` says whether the value is allowed, `expected` what the flag wants. */
function numberParser(expected: string, ok: (v: number) => boolean) {
  return (flag: string) =>
    (text: string): number => {
      const v = Number(text);
      if (!ok(v)) throw new UserError(`${flag} expects ${expected}, got "${text}"`);
      return v;
    };
}

export const parsePositiveInt = numberParser('a positive integer', (v) => Number.isInteger(v) && v > 0);
export const parseInteger = numberParser('an integer', Number.isInteger);
export const parsePositiveNumber = numberParser('a positive number', (v) => Number.isFinite(v) && v > 0);
/** A number in [0, 1] (thresholds, accuracy drops). */
export const parseFraction = numberParser('a number in [0, 1]', (v) => Number.isFinite(v) && v >= 0 && v <= 1);

/** One of a fixed set of words, e.g. parseChoice('--random-bn', ['data', 'init']). */
export function parseChoice<T extends string>(flag: string, choices: readonly T[]) {
  return (text: string): T => oneOf(text, flag, choices);
}

/** "a, b,,c" -> ['a', 'b', 'c']: names (cuts, BatchNorm places) given comma-separated. */
export function parseNameList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
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
