/**
 * The one check of enumerated values: a value must be one of the constant list its type
 * is derived from (`export const MODES = [...] as const; type Mode = (typeof MODES)[number]`).
 * The CLI's flags, the queue's job payloads and the library's options all check through it,
 * so the choices a message lists are always the ones the code accepts.
 *
 * @example
 *   const mode = oneOf(text, '--mode', STITCH_MODES);   // '--mode expects task, lsq or copy, got "x"'
 */
import { UserError } from './errors.js';
import { alternatives } from './format.js';

/** A value as an error message shows it: JSON, cut to 60 characters. */
export function shown(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** `value` when it is one of `choices`; otherwise a UserError naming `what`, the choices and the value. */
export function oneOf<T extends string>(value: unknown, what: string, choices: readonly T[]): T {
  if (typeof value !== 'string' || !(choices as readonly string[]).includes(value))
    throw new UserError(`${what} expects ${alternatives(choices)}, got ${shown(value)}`);
  return value as T;
}
