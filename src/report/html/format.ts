/**
 * Turning result values into HTML: escaping, one table of formatting rules keyed by the
 * field's name (accuracies as percentages, sizes with thousands separators, class lists
 * as ranges), and tables built from rows of objects, so result files with fields this
 * code has never seen still render readably.
 *
 * @example
 *   htmlTable([{ task: [0, 1, 2], baseAccuracy: 0.91, componentParameters: 15137 }]);
 *   // <table>... task "0-2", base accuracy "91.00%", component parameters "15,137" ...</table>
 */

export function esc(text: unknown): string {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

export const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;

/** "0-2" for contiguous runs of three or more, else "1,5,7". */
export function classList(c: readonly number[]): string {
  const s = [...c].sort((a, b) => a - b);
  const contiguous = s.every((x, i) => i === 0 || x === s[i - 1]! + 1);
  return contiguous && s.length > 2 ? `${s[0]}-${s[s.length - 1]}` : s.join(',');
}

export function number(x: number): string {
  if (Number.isInteger(x)) return x.toLocaleString('en-US');
  const a = Math.abs(x);
  return a >= 1000 ? Math.round(x).toLocaleString('en-US') : a >= 1 ? x.toFixed(2) : String(Number(x.toPrecision(3)));
}

const isNumberArray = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number');
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Field names holding a fraction shown as a percentage (accuracies and scores). */
const FRACTION = /accuracy|^own$|^others?mean$|^(un)?scaled$|^finetuned|^(un)?balanced$|^(un)?directed$|^clustering$|perclass|^lower-?left$|^elsewhere$/i;
/** Field names holding a class or a list of classes. */
const CLASSES = /^(task|tasks|classes|class)$/i;

/** How one value of field `key` reads in a table cell: first matching rule wins. */
const RULES: { when: (key: string, v: unknown) => boolean; show: (v: never, key: string) => string }[] = [
  { when: (_, v) => v === null || v === undefined, show: () => '–' },
  { when: (k, v) => typeof v === 'number' && FRACTION.test(k) && v >= 0 && v <= 1, show: (v: number) => pct(v) },
  { when: (k, v) => typeof v === 'number' && /flops/i.test(k), show: (v: number) => `${(v / 1e6).toFixed(2)} M` },
  { when: (_, v) => typeof v === 'number', show: (v: number) => number(v) },
  { when: (_, v) => typeof v === 'boolean', show: (v: boolean) => (v ? 'yes' : 'no') },
  { when: (k, v) => CLASSES.test(k) && isNumberArray(v), show: (v: number[]) => classList(v) },
  { when: (k, v) => CLASSES.test(k) && Array.isArray(v) && v.every(isNumberArray), show: (v: number[][]) => v.map(classList).join(' + ') },
  { when: (_, v) => typeof v === 'string' && /[\\/]/.test(v) && !/\s/.test(v), show: (v: string) => v.split(/[\\/]/).filter(Boolean).pop() ?? v },
  { when: (_, v) => typeof v === 'string', show: (v: string) => v },
  {
    when: (_, v) => Array.isArray(v) && v.every((x) => !isRecord(x) && !Array.isArray(x)),
    show: (v: unknown[], k) => v.map((x) => formatValue(k, x)).join(' / '),
  },
  {
    when: (_, v) => Array.isArray(v),
    show: (v: unknown[], k) =>
      v
        .slice(0, 6)
        .map((x) => compact(k, x))
        .join('; ') + (v.length > 6 ? `; … (${v.length})` : ''),
  },
  { when: (_, v) => isRecord(v), show: (v: Record<string, unknown>, k) => compact(k, v) },
];

/** A value of field `key` as cell text. */
export function formatValue(key: string, v: unknown): string {
  for (const r of RULES) if (r.when(key, v)) return r.show(v as never, key);
  return JSON.stringify(v);
}

/** An object as "k v, k v" (each value formatted by its own key, or by the parent's key for plain numbers). */
function compact(parent: string, v: unknown): string {
  if (!isRecord(v)) return formatValue(parent, v);
  const entries = Object.entries(v);
  // {task: [1], accuracy: 0.5} reads "1: 50.00%"
  if (entries.length === 2 && CLASSES.test(entries[0]![0]))
    return `${formatValue(entries[0]![0], entries[0]![1])}: ${formatValue(entries[1]![0], entries[1]![1])}`;
  return entries.map(([k, x]) => `${k}: ${formatValue(typeof x === 'number' && /^\d+$/.test(k) ? parent : k, x)}`).join(', ');
}

/** Column headings: known names, else the camelCase key as words. */
const TITLES: Record<string, string> = {
  baseAccuracy: 'base accuracy',
  componentAccuracy: 'component accuracy',
  baseFlops: 'base FLOPs',
  componentFlops: 'component FLOPs',
  flops: 'FLOPs',
  flopsPerImage: 'FLOPs/image',
  othersMean: 'other tasks (mean)',
  own: 'own task',
  finetuned: 'scaled + fine-tuned',
  finetunedUnscaled: 'unscaled + fine-tuned',
  perClassBalanced: 'per class (balanced)',
  perClassUnbalanced: 'per class (unbalanced)',
  lowerLeft: 'lower-left triangle',
  elsewhere: 'elsewhere',
};

export function title(key: string): string {
  return (
    TITLES[key] ??
    key
      .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
      .replace(/[_-]+/g, ' ')
      .toLowerCase()
  );
}

export interface TableOptions {
  /** fields left out (default: "key", an internal resume key) */
  omit?: string[];
  /** fields first, in this order; the rest follow in first-seen order */
  order?: string[];
  caption?: string;
  className?: string;
}

/** An HTML table of rows of objects: one column per field found in any row. */
export function htmlTable(rows: readonly Record<string, unknown>[], opts: TableOptions = {}): string {
  const omit = new Set(opts.omit ?? ['key']);
  const seen: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!omit.has(k) && !seen.includes(k)) seen.push(k);
  const order = opts.order ?? [];
  const cols = [...order.filter((k) => seen.includes(k)), ...seen.filter((k) => !order.includes(k))];
  return gridTable(
    cols.map(title),
    rows.map((r) => cols.map((k) => formatValue(k, r[k]))),
    opts,
  );
}

/** An HTML table of ready cell texts. */
export function gridTable(head: readonly string[], body: readonly (readonly string[])[], opts: { caption?: string; className?: string } = {}): string {
  const cls = opts.className ? ` class="${esc(opts.className)}"` : '';
  return [
    `<table${cls}>`,
    opts.caption ? `<caption>${esc(opts.caption)}</caption>` : '',
    `<thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead>`,
    `<tbody>${body.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('')}</tbody>`,
    '</table>',
  ].join('');
}

/** A two-column table of an object's fields (settings, summaries). */
export function fieldTable(obj: Record<string, unknown>, opts: { omit?: string[]; caption?: string } = {}): string {
  const omit = new Set(opts.omit ?? []);
  const entries = Object.entries(obj).filter(([k]) => !omit.has(k));
  return gridTable(
    ['', ''],
    entries.map(([k, v]) => [title(k), formatValue(k, v)]),
    { className: 'fields', ...(opts.caption ? { caption: opts.caption } : {}) },
  );
}

/**
 * Short axis labels that stay distinct: the start and end all names share are dropped
 * (PyTorch tensor names share long prefixes such as "/layer1/" and suffixes such as
 * "/Relu_output_0"), and what is still long keeps its start and end with "…" between.
 */
export function abbreviate(names: readonly string[], max = 16): string[] {
  if (names.every((n) => n.length <= max)) return [...names];
  const core = names.length > 1 ? stripShared(names) : [...names];
  const middle = (n: string): string => {
    if (n.length <= max) return n;
    const head = Math.ceil((max - 1) * 0.4);
    return `${n.slice(0, head)}…${n.slice(n.length - (max - 1 - head))}`;
  };
  const tail = (n: string): string => (n.length <= max ? n : `…${n.slice(n.length - max + 1)}`);
  for (const shorten of [middle, tail]) {
    const out = core.map(shorten);
    if (new Set(out).size === new Set(names).size) return out;
  }
  return core.map((n, i) => `${i}:${tail(n).slice(String(i).length + 1)}`);
}

/** The names without the prefix and suffix all of them share, cut at separators (/ . _ -). */
function stripShared(names: readonly string[]): string[] {
  const sep = /[/._-]/;
  let pre = 0;
  while (names.every((n) => pre < n.length && n[pre] === names[0]![pre])) pre++;
  while (pre > 0 && !sep.test(names[0]![pre - 1]!)) pre--;
  let suf = 0;
  const at = (n: string, k: number): string | undefined => n[n.length - 1 - k];
  while (names.every((n) => suf < n.length - pre && at(n, suf) === at(names[0]!, suf))) suf++;
  while (suf > 0 && !sep.test(at(names[0]!, suf - 1)!)) suf--;
  const out = names.map((n) => n.slice(pre, n.length - suf));
  return out.every((n) => n.length > 0) ? out : [...names];
}
