/**
 * The report page in a real browser: a real 2x2 least-squares stitch grid (with the three
 * random controls) run by the CLI, and a page mixing every other kind of run folder
 * (25x25 stitching grid, CKA, lineage with truth, LEGO experiment, training logs).
 * The demo's own page is checked by test/cli/demo.test.ts on the demo it runs anyway.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { saveModel } from '../../src/onnx/proto.js';
import { createZooModel } from '../../src/nn/zoo.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';
import { assertCleanPage, checkReport, haveChromium } from '../helpers/browser.js';
import { ckaRun, legoRun, lineageRun, longNames, stitchGridRun, trainRun } from './runs.js';

// never skipped: a machine without Chromium fails here with the fix (.ci/run installs it)
const NO_CHROMIUM = "needs Debian's chromium at /usr/bin/chromium: apt-get install chromium (.ci/run installs it)";
const dir = tempDir('report-browser-');

test('a real 2x2 least-squares stitch grid with controls: report.html written by stitch, checked in Chromium', async () => {
  assert.ok(haveChromium(), NO_CHROMIUM);
  const a = join(dir, 'a.onnx'),
    b = join(dir, 'b.onnx');
  saveModel(createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.125, seed: 1 }), a);
  saveModel(createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.125, seed: 2 }), b);
  const g = join(dir, 'grid');
  const r = runCli([
    'stitch',
    a,
    b,
    '--data',
    'fashion-mnist-sample',
    '--mode',
    'lsq',
    '--controls',
    '--random-bn',
    'init',
    '--senders',
    'stem,layer3.0',
    '--receivers',
    'layer1.0,features',
    '--train-limit',
    '96',
    '--test-limit',
    '64',
    '--threads',
    '1',
    '-o',
    g,
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as {
    report: string;
    provenance: { modelsmith: string; command: string; data: string[]; node: string; onnxruntime: string; threads: number[] };
  };
  assert.equal(out.report, join(g, 'report.html'));
  assert.match(out.provenance.command, /^modelsmith stitch .* --mode lsq/);
  assert.ok(
    out.provenance.data.some((d) => /fashion-mnist/.test(d)),
    out.provenance.data.join('; '),
  );
  assert.deepEqual(out.provenance.threads, [1]);
  assert.equal(out.provenance.node, process.version);
  const matrix = JSON.parse(readFileSync(join(g, 'matrix.json'), 'utf8')) as { provenance?: { command: string } };
  assert.equal(matrix.provenance?.command, out.provenance.command, 'matrix.json carries the same provenance block');

  const c = await checkReport(out.report, join(dir, 'browser-grid'));
  assertCleanPage(c);
  assert.deepEqual(
    c.sections.map((s) => s.kind),
    ['stitch grid'],
  );
  assert.ok(c.sections[0]!.provenance >= 8, 'the section shows its provenance block');
  // accuracy, training fit error and test fit error; 4 pair kinds x 2 x 2 cells each
  assert.deepEqual(
    c.heatmaps.map((h) => h.drawn),
    [16, 16, 16],
  );
  assert.match(c.heatmaps[0]!.hovered.tooltip, /stitch/, 'the hover names the stitch kind');
  assert.match(c.heatmaps[0]!.hovered.tooltip, /fit error/, 'the accuracy hover shows the fit error');
  const base = c.tables.find((t) => /same test images/.test(t.head));
  assert.equal(base?.rows, 4, 'own accuracies of A, B and their random counterparts');
  const triangles = c.tables.find((t) => /Lower-left/.test(t.head));
  assert.equal(triangles?.rows, 4, 'lower-left vs elsewhere for the 4 pair kinds');
  const html = readFileSync(out.report, 'utf8');
  assert.ok(html.includes(out.provenance.command.split(' ')[1]!) && html.includes('Provenance'), 'the page shows the provenance');
});

test('every kind of run folder on one page: 25x25 grid readable, CKA, lineage legend, LEGO tables, training curves', async (t) => {
  assert.ok(haveChromium(), NO_CHROMIUM);
  const runs = join(dir, 'runs');
  const folders = { grid: join(runs, 'grid25'), cka: join(runs, 'cka'), lineage: join(runs, 'lineage'), lego: join(runs, 'lego'), train: join(runs, 'train') };
  for (const f of Object.values(folders)) mkdirSync(f, { recursive: true });
  stitchGridRun(folders.grid, 25, 25);
  await ckaRun(folders.cka);
  await lineageRun(folders.lineage);
  legoRun(folders.lego);
  trainRun(folders.train);
  const page = join(dir, 'all.html');
  // one folder given directly, the rest found below `runs`
  const r = runCli(['report', folders.grid, runs, '-o', page, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { sections: { kind: string }[]; heatmaps: number[] };
  assert.deepEqual(out.sections.map((s) => s.kind).sort(), ['CKA', 'lego-experiment', 'lineage', 'stitch grid', 'train']);
  assert.deepEqual(out.heatmaps, [2500, 2500, 48, 48], '25x25 x 4 kinds (accuracy, fit error); CKA 3x4 x 4 kinds (biased, debiased)');

  const c = await checkReport(page, join(dir, 'browser-all'));
  t.diagnostic(`charts drawn ${c.drawMs} ms after loading`);
  assertCleanPage(c);
  // 25x25: every tick label abbreviated to at most 16 characters; the hover has the full tensor name
  const long = longNames(25, 'a');
  const grid = c.heatmaps[0]!;
  assert.equal(grid.hovered.sender, long[24]);
  const labels = grid.labels;
  assert.ok(labels.length >= 25 * 3, `${labels.length} tick labels: rows, and columns under each row of panels`);
  for (const l of labels) assert.ok(l.length <= 16, `label "${l}" is short`);
  // rows (/a/...) and columns (/b/...) share their distinguishing parts, so they abbreviate alike
  assert.equal(new Set(labels).size, 25, 'the 25 labels stay distinct');
  const tables = (section: string): number[] => c.tables.filter((t) => t.section === section && !t.provenance).map((t) => t.rows);
  for (const s of c.sections) assert.equal(s.provenance > 0, s.kind !== 'train', `${s.kind}: provenance shown where its files record it`);
  const lineage = c.sections.find((s) => s.kind === 'lineage')!;
  assert.deepEqual(tables(lineage.id).slice(0, 2), [1, 2], 'score row; one row per tree');
  const lego = c.sections.find((s) => s.kind === 'lego-experiment')!;
  // summary fields, disassembly 2, assembly 1, mismatch 1, unbalanced 1, sweep 3, the unknown table 2
  assert.deepEqual(tables(lego.id), [4, 2, 1, 1, 1, 3, 2]);
  const html = readFileSync(page, 'utf8');
  assert.ok(html.includes('a table this report does not know'), 'unknown LEGO tables are shown too');
  for (const edge of ['correct', 'wrong', 'missing']) assert.ok(html.includes(`data-edge="${edge}"`), `lineage legend has ${edge} edges`);
  assert.ok(statSync(c.screenshot).size > 10_000);
});
