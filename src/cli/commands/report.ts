/**
 * `modelsmith report`: a thin wrapper over writeReport (src/report/html).
 *
 * @example
 *   modelsmith report runs/demo runs/grid -o report.html
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeReport } from '../../report/html/report.js';
import { globals, withOutputFlags } from './common.js';

export function registerReport(program: Command): void {
  withOutputFlags(
    program
      .command('report <runs...>')
      .description(
        'one self-contained HTML page (interactive heatmaps, forests, tables, curves; opens offline) for run folders of ' +
          'demo, stitch, cka, lineage, lego-experiment, train, disassemble, assemble',
      ),
  )
    .option('-o, --output <file>', 'the page to write', 'report.html')
    .option('--title <text>', 'the page title (default: the folder names)')
    .action(async (runs: string[], flags: { output: string; title?: string }, cmd: Command) => {
      const { out } = globals(cmd);
      const r = await writeReport(runs, flags.output, flags.title ? { title: flags.title } : {});
      out.line(`wrote ${r.file}: ${r.sections.length} sections (${[...new Set(r.sections.map((s) => s.kind))].join(', ')})`);
      out.line(`open it in a browser: ${pathToFileURL(resolve(r.file)).href}`);
      out.json({ file: r.file, sections: r.sections, heatmaps: r.heatmaps });
    });
}
