import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';
import { assertCleanPage, checkReport, haveChromium } from '../helpers/browser.js';

interface DemoJson {
  data: string;
  models: { name: string; accuracy: number | null; epochs: number }[];
  lego: { components: { accuracy: number; baseAccuracy: number }[]; assembled: { scaled: number } };
  lineage: { full: { directed: number; clustering: number }; lowrank: { directed: number; clustering: number } };
  stitch: { matrix: { senders: string[]; receivers: string[]; kinds: string[]; matrices: Record<string, unknown> } };
  cka: { senders: string[]; receivers: string[]; kinds: string[]; matrices: { biased: { trained: (number | null)[][] } } };
  report: string;
  provenance: { command: string };
}

test('demo trains, evaluates, disassembles, assembles, recovers lineage and stitches on the shipped sample; its report page works in Chromium', async (t) => {
  const out = join(tempDir(), 'demo');
  // the whole main job in one process: allow for a slow, shared CI machine
  const r = runCli(['demo', '-o', out, '--epochs', '1', '--json'], {}, 900_000);
  assert.equal(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout) as DemoJson;
  assert.match(d.data, /sample/);
  const trained = d.models.filter((m) => m.epochs > 0);
  assert.ok(trained.length >= 4);
  for (const m of trained) assert.ok((m.accuracy ?? 0) > 0.5, `${m.name} accuracy ${m.accuracy} is far above chance after training`);
  // a model that is only built and inspected is not scored (its accuracy would be noise)
  for (const m of d.models.filter((x) => x.epochs === 0)) assert.equal(m.accuracy, null, m.name);
  assert.equal(d.lego.components.length, 2);
  for (const c of d.lego.components) assert.ok(c.accuracy > 0.5, `component accuracy ${c.accuracy}`);
  assert.ok(d.lego.assembled.scaled > 0.3, `assembled accuracy ${d.lego.assembled.scaled}`);
  assert.ok(d.lineage.lowrank.clustering > 0.9, 'LoRA trees separate');
  assert.ok(d.stitch.matrix.senders.length > 0 && d.stitch.matrix.receivers.length > 0);
  assert.ok(d.cka.matrices.biased.trained.flat().some((v) => v !== null && v > 0 && v <= 1 + 1e-9));
  const saved = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { models: unknown[] };
  assert.equal(saved.models.length, d.models.length);
  const report = readFileSync(join(out, 'report.md'), 'utf8');
  for (const section of ['Lineage recovery', 'CKA']) assert.ok(report.includes(section), section);
  assert.ok(existsSync(join(out, 'cka', 'cka.png')));
  assert.ok(existsSync(join(out, 'lego')) && !existsSync(join(out, 'lego', 'lego')), 'components in <out>/lego');

  // the report page: every part of the demo, checked in a real browser
  assert.equal(d.report, join(out, 'report.html'));
  assert.match(r.stdout, /"command": "modelsmith demo -o /);
  assert.ok(haveChromium(), "needs Debian's chromium at /usr/bin/chromium: apt-get install chromium (.ci/run installs it)");
  const c = await checkReport(d.report, join(out, 'browser'));
  assertCleanPage(c);
  assert.deepEqual(
    c.sections.map((s) => s.kind),
    ['demo', 'lego (demo)', 'train', 'lineage scores', 'lineage', 'lineage', 'stitch grid', 'CKA'],
  );
  for (const s of c.sections) assert.ok(s.provenance >= 8, `${s.title}: provenance shown`);
  const grid = d.stitch.matrix,
    cka = d.cka;
  const stitchCells = grid.senders.length * grid.receivers.length * grid.kinds.length;
  const ckaCells = cka.senders.length * cka.receivers.length * cka.kinds.length;
  assert.deepEqual(
    c.heatmaps.map((h) => h.drawn),
    [...Object.keys(grid.matrices).map(() => stitchCells), ckaCells, ckaCells],
  );
  const models = c.tables.find((x) => x.head === 'Zoo models (seed 0)');
  assert.equal(models?.rows, d.models.length);
  t.diagnostic(`report charts drawn ${c.drawMs} ms after loading; screenshot ${c.screenshot}`);
});
