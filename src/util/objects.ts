/**
 * `o` without its undefined properties: optional settings passed on only when given, so
 * that a result, a fingerprint or a JSON file does not grow `key: undefined` entries.
 *
 * @example definedProps({ hidden: [64], patch: undefined }) // { hidden: [64] }
 */
export function definedProps<T extends object>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}
