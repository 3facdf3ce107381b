/**
 * The report page without a browser: provenance in --json results and result files,
 * run-kind detection and bad input, the page's safety (no external resources, escaped
 * names), the formatting rules, and heatmap specs that vega-lite compiles.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vegaLite from 'vega-lite';
import { runCli, isOneLineError } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';
import { packagePath } from '../../src/util/paths.js';
import { noteData, provenance, recordCommand, writeResultJson } from '../../src/util/provenance.js';
import { openDataset } from '../../src/data/resolve.js';
import { saveModel } from '../../src/onnx/proto.js';
import { createZooModel } from '../../src/nn/zoo.js';
import { buildReport, writeReport } from '../../src/report/html/report.js';
import { UserError } from '../../src/util/errors.js';
import { heatmapSpec } from '../../src/report/html/heatmap.js';
import { abbreviate, formatValue, htmlTable } from '../../src/report/html/format.js';
import { writeForestFiles } from '../../src/lineage/render.js';
import { scoreForest } from '../../src/lineage/truth.js';
import { legoRun, lineageRun, stitchGridRun, trainRun } from './runs.js';

const dir = tempDir('report-html-');
const version = (JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as { version: string }).version;

test('every --json result carries the provenance block: versions, CPU, command line, data, git commit, date', () => {
  const r = runCli(['zoo', 'list', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const p = (JSON.parse(r.stdout) as { provenance: Record<string, unknown> }).provenance;
  assert.equal(p['modelsmith'], version);
  assert.equal(p['node'], process.version);
  assert.match(String(p['onnxruntime']), /^\d+\.\d+\.\d+/);
  assert.ok(String((p['cpu'] as { model: string }).model).length > 0);
  assert.equal(p['command'], 'modelsmith zoo list --json');
  assert.deepEqual(p['data'], [], 'zoo opens no dataset');
  assert.ok(!Number.isNaN(Date.parse(String(p['date']))));
  // this test runs from a git checkout
  assert.match(String((p['git'] as { commit: string }).commit), /^[0-9a-f]{40}$/);
  const model = join(dir, 'mlp.onnx');
  saveModel(createZooModel('mlp', { input: [1, 28, 28], classes: 10, seed: 0 }), model);
  const e = runCli(['eval', model, '--data', 'fashion-mnist-sample', '--classes', '0', '--threads', '1', '--json']);
  assert.equal(e.code, 0, e.stderr);
  const q = (JSON.parse(e.stdout) as { provenance: { data: string[]; threads: number[]; command: string } }).provenance;
  assert.ok(
    q.data.some((d) => d.includes('fashion-mnist')),
    q.data.join('; '),
  );
  assert.deepEqual(q.threads, [1], 'the ONNX Runtime threads the run used');
  assert.match(q.command, /^modelsmith eval \S+mlp\.onnx --data fashion-mnist-sample/);
});

test('result files get the same block; the data and threads used are recorded as the run goes', async () => {
  recordCommand(['demo', '--epochs', '1', '-o', 'runs/my demo']);
  assert.equal(provenance().command, "modelsmith demo --epochs 1 -o 'runs/my demo'");
  assert.deepEqual(provenance().data, []);
  assert.deepEqual(provenance('fashion-mnist').data, ['fashion-mnist'], 'a result naming its data fills in when no dataset was opened');
  const ds = await openDataset('fashion-mnist-sample', 'test', { announce: false });
  assert.deepEqual(provenance('other').data, [ds.source]);
  noteData(ds.source);
  assert.equal(provenance().data.length, 1, 'each source once');
  const file = join(dir, 'r.json');
  writeResultJson(file, { accuracy: 0.5 });
  const saved = JSON.parse(readFileSync(file, 'utf8')) as { accuracy: number; provenance: { command: string } };
  assert.equal(saved.accuracy, 0.5);
  assert.equal(saved.provenance.command, "modelsmith demo --epochs 1 -o 'runs/my demo'");
  recordCommand([]);
});

test('report: bad input gets one clear line naming the file and field', async () => {
  const missing = runCli(['report', join(dir, 'nope')]);
  assert.ok(isOneLineError(missing), missing.stderr);
  assert.match(missing.stderr, /nope does not exist/);
  // the rest in-process: the same UserErrors, without a process start each
  const refused = async (paths: string[], message: RegExp, out = join(dir, 'x.html')): Promise<void> => {
    await assert.rejects(writeReport(paths, out), (e: unknown) => e instanceof UserError && message.test(e.message) && !e.message.includes('\n'));
  };
  const empty = join(dir, 'empty');
  mkdirSync(join(empty, 'sub'), { recursive: true });
  await refused([empty], /empty holds no modelsmith results/);
  const grid = join(dir, 'grid-bad');
  stitchGridRun(grid, 2, 3);
  const m = JSON.parse(readFileSync(join(grid, 'matrix.json'), 'utf8'));
  m.matrices.accuracy.trained = [[0.5]];
  writeFileSync(join(grid, 'matrix.json'), JSON.stringify(m));
  await refused([grid], /matrix\.json: field "matrices\.accuracy" must be a 2x3 matrix per pair kind/);
  const broken = join(dir, 'broken');
  mkdirSync(broken, { recursive: true });
  writeFileSync(join(broken, 'forest.json'), '{"nodes": [');
  await refused([broken], /forest\.json is not valid JSON/);
  await refused([broken], /is a folder/, dir);
  assert.ok(!existsSync(join(dir, 'x.html')), 'nothing written');
});

test('the page loads nothing from anywhere: inline scripts only, a CSP forbidding requests, names escaped', async () => {
  const runs = join(dir, 'page');
  const lin = join(runs, 'lineage');
  mkdirSync(lin, { recursive: true });
  const { forest, truth } = await lineageRun(lin);
  // a hostile model name must stay text
  const evil = 'm3<script>alert(1)</script>';
  const renamed = JSON.parse(JSON.stringify(forest).replaceAll('"m3"', JSON.stringify(evil))) as typeof forest;
  const t2 = truth.map(([p, c]) => [p === 'm3' ? evil : p, c === 'm3' ? evil : c] as [string, string]);
  await writeForestFiles(renamed, lin, scoreForest(renamed, { edges: t2 }), t2);
  legoRun(join(runs, 'lego'));
  trainRun(join(runs, 'train'));
  const r = await buildReport([runs]);
  assert.deepEqual(
    r.sections.map((s) => s.kind),
    ['train', 'lego-experiment', 'lineage'],
    'found below the folder, in the order of RUN_KINDS',
  );
  assert.ok(!r.html.includes('<script>alert'), 'the model name is escaped');
  assert.ok(r.html.includes('m3&lt;script&gt;'));
  assert.ok(/Content-Security-Policy" content="default-src 'none'/.test(r.html));
  assert.ok(!/<script[^>]+src=|<link\b|<img[^>]+src="?http|url\(http/i.test(r.html), 'no external script, style, image or font');
  const scripts = [...r.html.matchAll(/<script data-bundle="([^"]+)">/g)].map((m) => m[1]);
  assert.deepEqual(scripts, ['vega', 'vega-lite', 'vega-embed']);
});

test('formatting rules: percentages, class lists, sizes; unknown fields still render', () => {
  assert.equal(formatValue('componentAccuracy', 0.9512), '95.12%');
  assert.equal(formatValue('task', [3, 4, 5, 6]), '3-6');
  assert.equal(
    formatValue('tasks', [
      [0, 1, 2],
      [1, 5, 7],
    ]),
    '0-2 + 1,5,7',
  );
  assert.equal(formatValue('componentParameters', 15137), '15,137');
  assert.equal(formatValue('flops', 2_500_000), '2.50 M');
  assert.equal(formatValue('others', [{ task: [1], accuracy: 0.5 }]), '1: 50.00%');
  assert.equal(formatValue('model', '/very/long/path/vgg.onnx'), 'vgg.onnx');
  assert.equal(formatValue('finetuned', null), '–');
  const t = htmlTable([{ key: 'x', task: [0], somethingNew: 3.14159, nested: { a: 1 } }]);
  assert.ok(t.includes('something new') && t.includes('3.14') && t.includes('a: 1') && !t.includes('>x<'));
});

test('axis labels: short and distinct for PyTorch-style names; short names untouched', () => {
  const torch = [
    '/layer1/layer1.0/relu/Relu_output_0',
    '/layer1/layer1.0/relu_1/Relu_output_0',
    '/layer1/layer1.1/relu/Relu_output_0',
    '/layer2/layer2.0/relu/Relu_output_0',
    '/fc/Gemm_output_0',
  ];
  const a = abbreviate(torch);
  assert.equal(new Set(a).size, torch.length);
  for (const l of a) assert.ok(l.length <= 16, l);
  assert.deepEqual(abbreviate(['stem', 'layer1.0', 'fc']), ['stem', 'layer1.0', 'fc']);
  const same = Array.from({ length: 30 }, () => 'x'.repeat(40));
  assert.equal(abbreviate(same).length, 30);
});

test('heatmap specs compile with vega-lite: one cell per panel, row and column; 25x25 x 4 wraps into rows of panels', () => {
  const names = (n: number): { name: string }[] => Array.from({ length: n }, (_, i) => ({ name: `cut${i}` }));
  for (const [n, panels] of [
    [2, 4],
    [25, 4],
    [6, 1],
  ] as const) {
    const values = Array.from({ length: panels }, () =>
      Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? null : (i + j) / (2 * n)))),
    );
    const { spec, cells } = heatmapSpec({
      panels: Array.from({ length: panels }, (_, i) => `p${i}`),
      rows: names(n),
      cols: names(n),
      values,
      measure: { title: 'accuracy', domain: [0, 1], format: (v) => v.toFixed(2) },
      extra: () => [['fit error', '0.1']],
    });
    assert.equal(cells, panels * n * n);
    const s = spec as { columns: number; spec: { width: number } };
    assert.ok(s.columns * s.spec.width <= 1100, `${n}x${n}: ${s.columns} panels of ${s.spec.width}px per row fit the page`);
    assert.ok(s.spec.width / n >= 14, 'cells stay readable');
    const compiled = vegaLite.compile(spec as vegaLite.TopLevelSpec).spec;
    assert.ok(compiled.marks && compiled.marks.length > 0);
  }
});
