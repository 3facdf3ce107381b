/** How commands talk to the user: human text, or JSON only (--json), or nothing (--quiet). */
import { setQuiet } from '../util/progress.js';
import { withProvenance } from '../util/provenance.js';
import { writeOut } from '../util/sinks.js';

export interface GlobalFlags {
  json?: boolean;
  quiet?: boolean;
}

export class Output {
  constructor(readonly flags: GlobalFlags) {
    setQuiet(!!(flags.json || flags.quiet));
  }

  /** Human-readable result lines (stdout), suppressed by --json and --quiet. */
  line(text = ''): void {
    if (!this.flags.json && !this.flags.quiet) writeOut(text + '\n');
  }

  /** The machine-readable result, with its provenance: printed only with --json, as the only thing on stdout. */
  json(value: unknown): void {
    if (this.flags.json) writeOut(JSON.stringify(withProvenance(value), null, 2) + '\n');
  }
}

export { pct } from '../util/format.js';

/** 11173962 -> "11.17M" */
export function compact(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

/** A plain text table with aligned columns. */
export function table(rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map(String));
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
