/**
 * Reading run folders for the report: JSON files with a size bound and one-line errors
 * that name the file and field, and the provenance block a result file carries.
 *
 * @example
 *   const m = readJson('grid/matrix.json');
 *   need(Array.isArray(m.senders), 'grid/matrix.json', 'senders', 'a list of cut names');
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { UserError } from '../../util/errors.js';

/** Result files are small; anything bigger is not one of ours. */
export const MAX_JSON_BYTES = 256 * 2 ** 20;

export type Json = Record<string, unknown>;

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A JSON object from a file, or a UserError naming the file. */
export function readJson(path: string): Json {
  const v = parseJson(readText(path), path);
  if (!isObject(v)) throw new UserError(`${path}: expected a JSON object`);
  return v;
}

/**
 * The JSON in a file when it exists and holds an object, else undefined (for probing a
 * folder's kind). A file that exists but is not JSON is an error: a damaged result file
 * must not silently vanish from the report.
 */
export function tryReadJson(path: string): Json | undefined {
  if (!existsSync(path)) return undefined;
  const v = parseJson(readText(path), path);
  return isObject(v) ? v : undefined;
}

/** tryReadJson for optional extras (decorations of a section): unreadable means absent. */
export function optionalJson(path: string): Json | undefined {
  try {
    return tryReadJson(path);
  } catch {
    return undefined;
  }
}

/** One JSON object per non-empty line. */
export function readJsonLines(path: string): Json[] {
  return readText(path)
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((line, i) => {
      const v = parseJson(line, `${path} line ${i + 1}`);
      if (!isObject(v)) throw new UserError(`${path} line ${i + 1}: expected a JSON object`);
      return v;
    });
}

function readText(path: string): string {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (e) {
    throw new UserError(`cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (size > MAX_JSON_BYTES)
    throw new UserError(`${path} is ${(size / 2 ** 20).toFixed(0)} MiB; result files of modelsmith are at most ${MAX_JSON_BYTES / 2 ** 20} MiB`);
  return readFileSync(path, 'utf8');
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`${where} is not valid JSON (${(e as Error).message})`);
  }
}

/** Throws a UserError "<file>: field <field> must be <expected>" when the condition fails. */
export function need(condition: unknown, file: string, field: string, expected: string): asserts condition {
  if (!condition) throw new UserError(`${file}: field "${field}" must be ${expected}`);
}

export const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** A matrix rows x cols of numbers or nulls. */
export function isMatrix(v: unknown, rows: number, cols: number): v is (number | null)[][] {
  return Array.isArray(v) && v.length === rows && v.every((r) => Array.isArray(r) && r.length === cols && r.every((x) => x === null || typeof x === 'number'));
}

/** The provenance block of a result object, when it has one. */
export function provenanceOf(v: Json): Json | null {
  return isObject(v['provenance']) ? v['provenance'] : null;
}
