/**
 * Shape checks for what arrives from Redis (job payloads on a worker, results on the
 * coordinator): nothing in a job is trusted. Each check names the field and what was
 * expected; the meaning of the values is then checked by the same library functions the
 * CLI calls. Written by hand because the project has no schema library and these few
 * checks (objects with known fields, bounded strings, numbers and lists) need none.
 */
import { UserError } from '../util/errors.js';
import { oneOf, shown } from '../util/choice.js';

/** Sizes nothing legitimate comes near. */
export const LIMITS = { string: 4096, list: 100_000, payloadBytes: 4 * 2 ** 20 } as const;

/** An object with only the given fields (required ones must be present). */
export function fields(v: unknown, what: string, required: readonly string[], optional: readonly string[] = []): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UserError(`${what} must be an object, got ${shown(v)}`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!required.includes(k) && !optional.includes(k)) throw new UserError(`${what} has an unexpected field "${k.slice(0, 40)}"`);
  }
  for (const k of required) if (o[k] === undefined) throw new UserError(`${what} lacks the field "${k}"`);
  return o;
}

export function str(v: unknown, what: string, max: number = LIMITS.string): string {
  if (typeof v !== 'string') throw new UserError(`${what} must be a string, got ${shown(v)}`);
  if (v.length > max) throw new UserError(`${what} is ${v.length} characters long, more than ${max}`);
  return v;
}

export function int(v: unknown, what: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new UserError(`${what} must be an integer, got ${shown(v)}`);
  if (v < min || v > max) throw new UserError(`${what} must be in ${min}..${max}, got ${v}`);
  return v;
}

export function num(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new UserError(`${what} must be a finite number, got ${shown(v)}`);
  return v;
}

export function bool(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') throw new UserError(`${what} must be true or false, got ${shown(v)}`);
  return v;
}

export function list<T>(v: unknown, what: string, item: (x: unknown, what: string) => T, max: number = LIMITS.list): T[] {
  if (!Array.isArray(v)) throw new UserError(`${what} must be a list, got ${shown(v)}`);
  if (v.length > max) throw new UserError(`${what} has ${v.length} items, more than ${max}`);
  return v.map((x, i) => item(x, `${what}[${i}]`));
}

export { oneOf };

/** A check of one value, naming it as `what` in its errors. */
export type Check<T> = (v: unknown, what: string) => T;

/** One check for every field of T. */
export type Checks<T> = { readonly [K in keyof T]-?: Check<NonNullable<T[K]>> };

/**
 * An object of optional fields, one check each: unknown fields are refused, absent (or
 * null) ones left out. The table has an entry for every field of T, so an option added to
 * the type cannot be forgotten here.
 */
export function optionalFields<T extends object>(v: unknown, what: string, checks: Checks<T>): T {
  const keys = Object.keys(checks) as (keyof T & string)[];
  const o = fields(v, what, [], keys);
  const out: Partial<T> = {};
  for (const k of keys) {
    const value = opt(o, k, what, checks[k]);
    if (value !== undefined) out[k] = value;
  }
  return out as T;
}

/** The fields of `o` that `checks` lists and `o` has: what a job carries of its caller's options. */
export function presentFields<T extends object>(o: T, checks: Checks<T>): T {
  const out: Partial<T> = {};
  for (const k of Object.keys(checks) as (keyof T)[]) if (o[k] !== undefined) out[k] = o[k];
  return out as T;
}

/** `check(o[key])` when the field is present; undefined otherwise. */
export function opt<T>(o: Record<string, unknown>, key: string, what: string, check: (v: unknown, what: string) => T): T | undefined {
  return o[key] === undefined || o[key] === null ? undefined : check(o[key], `${what}.${key}`);
}

/** JSON with sorted keys, so equal values hash equally whatever order they were built in. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(
          Object.entries(x as Record<string, unknown>)
            .filter(([, y]) => y !== undefined)
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : x,
  );
}

/** Replaces every occurrence of each key of `map` in every string of `v` (deeply). */
export function substitute<T>(v: T, map: ReadonlyMap<string, string>): T {
  if (!map.size) return v;
  const fix = (s: string): string => {
    let out = s;
    for (const [from, to] of map) if (from) out = out.split(from).join(to);
    return out;
  };
  const walk = (x: unknown): unknown => {
    if (typeof x === 'string') return fix(x);
    if (Array.isArray(x)) return x.map(walk);
    if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x as Record<string, unknown>).map(([k, y]) => [k, walk(y)]));
    return x;
  };
  return walk(v) as T;
}
