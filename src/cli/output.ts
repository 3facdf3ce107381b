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

export { compact, pct, table } from '../util/format.js';
