#!/usr/bin/env node
// The README's pictures of the demo's report page, made by the code path of the browser
// tests (test/helpers/browser.ts: headless Debian Chromium via puppeteer-core, every
// check of the tests applied), so the picture shows exactly what the tests check.
//
//   npm run build && node dist/src/cli/main.js demo      # runs/demo (a few minutes)
//   node tools/report-screenshot.mjs [runs/demo] [docs]  # docs/report-demo.png, docs/report-demo-cka.png
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeReport } from '../dist/src/report/html/report.js';
import { checkReport } from '../dist/test/helpers/browser.js';

const run = process.argv[2] ?? 'runs/demo';
const docs = process.argv[3] ?? 'docs';
const tmp = mkdtempSync(join(tmpdir(), 'report-screenshot-'));
try {
  const page = join(tmp, 'report.html');
  const r = await writeReport([run], page, { title: 'modelsmith demo' });
  const shots = [
    { file: join(docs, 'report-demo.png'), opts: { maxHeight: 1900 } },
    { file: join(docs, 'report-demo-cka.png'), opts: { clip: 'section[data-kind="CKA"]', hover: 'section[data-kind="CKA"] .chart[data-heatmap] g.cells_marks > path:nth-child(16)' } },
  ];
  for (const s of shots) {
    const c = await checkReport(page, tmp, { ...s.opts, screenshot: s.file });
    const problems = [
      ...c.consoleErrors,
      ...c.foreignRequests.map((u) => `request for ${u}`),
      ...c.heatmaps.filter((h) => h.drawn !== h.expected).map((h) => `${h.id}: ${h.drawn} of ${h.expected} cells`),
    ];
    if (problems.length) throw new Error(`the page has problems: ${problems.join('; ')}`);
    console.log(`${s.file}: ${(statSync(s.file).size / 1024).toFixed(0)} KiB (${r.sections.length} sections, charts drawn in ${c.drawMs} ms)`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
