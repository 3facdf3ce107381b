/**
 * Model LEGO results as report sections: the tables of `modelsmith lego-experiment`
 * (experiment.json; every list of rows becomes a table, including lists this code does
 * not know, so new fields and tables show without a change here), per-class accuracy bars
 * of base vs component, the sweep as accuracy vs size; and the demo's LEGO part.
 */
import { join } from 'node:path';
import { groupedBars, scatter, type Bar } from '../charts.js';
import { classList, esc, fieldTable, htmlTable, title } from '../format.js';
import { isObject, provenanceOf, readJson, tryReadJson, type Json } from '../read.js';
import { baseName, makeSection, type RenderContext } from '../context.js';
import type { Page, Section } from '../page.js';

/** Known tables first, in the order of the paper, with a sentence on how to read each. */
const TABLES: [string, string][] = [
  [
    'disassembly',
    "On the task's test images: the base's N-way accuracy, the base's k-way accuracy (its logits sliced to the task's classes) and the component's k-way accuracy; compare the component with base k-way.",
  ],
  ['assembly', "Accuracy on the union of the two tasks' test images; base: each parent's N-way accuracy on those images."],
  [
    'mismatch',
    "Per component: accuracy and mean max softmax on its own task's images; on every other class's images, the share of predictions each of its classes gets (sums to 1) and the mean max softmax (how confidently it answers images it was not made for).",
  ],
  ['unbalanced', 'Components from unbalanced vs balanced representative samples.'],
  ['sweep', 'Disassembly thresholds against accuracy and size.'],
];

export function isLegoExperiment(dir: string): boolean {
  const r = tryReadJson(join(dir, 'experiment.json'));
  return !!r && Array.isArray(r['disassembly']);
}

export async function legoSections(dir: string, ctx: RenderContext): Promise<Section[]> {
  const r = readJson(join(dir, 'experiment.json'));
  const body: string[] = [];
  const scalars = Object.fromEntries(Object.entries(r).filter(([k, v]) => k !== 'provenance' && !Array.isArray(v) && !isObject(v)));
  body.push(fieldTable(scalars));
  const lists = Object.entries(r).filter(([k, v]) => k !== 'provenance' && Array.isArray(v) && v.length > 0 && v.every(isObject)) as [string, Json[]][];
  const known = TABLES.map(([k]) => k);
  const ordered = [...known.flatMap((k) => lists.filter(([n]) => n === k)), ...lists.filter(([n]) => !known.includes(n))];
  for (const [name, rows] of ordered) {
    body.push(`<h3>${esc(title(name)[0]!.toUpperCase() + title(name).slice(1))}</h3>`);
    const note = TABLES.find(([k]) => k === name)?.[1];
    if (note) body.push(`<p>${esc(note)}</p>`);
    body.push(htmlTable(rows, { omit: ['key', 'model', 'models'], order: ['task', 'tasks'] }));
    if (name === 'disassembly') body.push(baseVsComponent(ctx.page, rows));
    if (name === 'unbalanced') body.push(...rows.map((row) => perClassBars(ctx.page, row, `task ${taskOf(row)}`)).filter(Boolean));
    if (name === 'sweep') body.push(sweepChart(ctx.page, rows));
  }
  for (const [name, v] of Object.entries(r)) {
    if (isObject(v) && name !== 'provenance') body.push(`<h3>${esc(title(name))}</h3>`, fieldTable(v));
  }
  const model = typeof r['model'] === 'string' ? baseName(r['model']) : 'model';
  return [
    makeSection(ctx, { title: `Model LEGO experiments: ${model}`, kind: 'lego-experiment', source: dir, provenance: provenanceOf(r), body: body.join('\n') }),
  ];
}

/**
 * Base vs component accuracy bars: per class when the rows carry per-class accuracies
 * (two maps class -> accuracy, the base's and the component's), else per task.
 */
export function baseVsComponent(
  page: Page,
  rows: Json[],
  fields = { base: rows.every((r) => typeof r['baseKWay'] === 'number') ? 'baseKWay' : 'baseAccuracy', component: 'componentAccuracy' },
): string {
  const perClass = rows.map((r) => classMaps(r)).filter((m) => m !== undefined);
  const bars: Bar[] = [];
  const baseSeries = fields.base === 'baseKWay' ? 'base (k-way)' : 'base (N-way)';
  if (perClass.length === rows.length && perClass.length > 0) {
    rows.forEach((r, i) => {
      const { base, component } = perClass[i]!;
      for (const c of Object.keys(component)) {
        const group = `${rows.length > 1 ? `task ${taskOf(r)}: ` : ''}class ${c}`;
        if (typeof base[c] === 'number') bars.push({ group, series: baseSeries, value: base[c] as number });
        bars.push({ group, series: 'component (k-way)', value: component[c] as number });
      }
    });
    const spec = groupedBars(bars, { title: 'accuracy', percent: true, series: [baseSeries, 'component (k-way)'], groupTitle: 'class' });
    return `<p>Per-class accuracy on each task's test images.</p>${page.chart(spec, { label: 'per-class accuracy' })}`;
  }
  for (const r of rows) {
    const b = r[fields.base],
      c = r[fields.component];
    if (typeof b === 'number') bars.push({ group: `task ${taskOf(r)}`, series: baseSeries, value: b });
    if (typeof c === 'number') bars.push({ group: `task ${taskOf(r)}`, series: 'component (k-way)', value: c });
  }
  return bars.length
    ? page.chart(groupedBars(bars, { title: 'accuracy', percent: true, series: [baseSeries, 'component (k-way)'], groupTitle: 'task' }), {
        label: 'accuracy per task',
      })
    : '';
}

/** The base's and the component's per-class maps of a row, by field name (basePerClass / perClass, or base.perClass / component.perClass). */
function classMaps(r: Json): { base: Json; component: Json } | undefined {
  const nested = (k: string): Json | undefined => (isObject(r[k]) && isObject((r[k] as Json)['perClass']) ? ((r[k] as Json)['perClass'] as Json) : undefined);
  const base = (isObject(r['basePerClass']) ? r['basePerClass'] : undefined) ?? nested('base');
  const component = (isObject(r['componentPerClass']) ? r['componentPerClass'] : isObject(r['perClass']) ? r['perClass'] : undefined) ?? nested('component');
  return base && component ? { base, component } : undefined;
}

/** Bars of every pair of per-class maps a row has (e.g. balanced vs unbalanced samples). */
function perClassBars(page: Page, row: Json, label: string): string {
  const maps = Object.entries(row).filter(([k, v]) => /perclass/i.test(k) && isObject(v)) as [string, Json][];
  if (maps.length < 2) return '';
  const bars: Bar[] = maps.flatMap(([k, m]) =>
    Object.entries(m)
      .filter(([, v]) => typeof v === 'number')
      .map(([c, v]) => ({ group: `class ${c}`, series: title(k), value: v as number })),
  );
  const spec = groupedBars(bars, { title: 'accuracy', percent: true, groupTitle: 'class' });
  return `<p>${esc(label)}: per-class accuracy.</p>${page.chart(spec, { label: `${label} per class` })}`;
}

function sweepChart(page: Page, rows: Json[]): string {
  const points = rows
    .filter((r) => typeof r['accuracy'] === 'number' && typeof r['parameters'] === 'number')
    .map((r) => ({
      x: r['parameters'] as number,
      y: r['accuracy'] as number,
      label: isObject(r['thresholds'])
        ? Object.entries(r['thresholds'])
            .map(([k, v]) => `${k} ${typeof v === 'number' ? Number(v.toPrecision(3)) : String(v)}`)
            .join(', ')
        : taskOf(r),
    }));
  return points.length ? page.chart(scatter(points, { xTitle: 'component parameters', yTitle: 'accuracy', percent: true }), { label: 'sweep' }) : '';
}

const taskOf = (r: Json): string => (Array.isArray(r['task']) && r['task'].every((x) => typeof x === 'number') ? classList(r['task'] as number[]) : '?');

/** The LEGO part of the demo's results.json. */
export function legoDemoBody(page: Page, lego: Json): string {
  const components = Array.isArray(lego['components']) ? lego['components'].filter(isObject) : [];
  const body = [
    `<p class="summary">${esc(lego['model'] ?? 'The model')} disassembled into one component per task ` +
      `(${esc(lego['samplesPerClass'] ?? '?')} representative samples per class), then the components assembled again.</p>`,
    htmlTable(
      components.map((c) => ({
        task: c['task'],
        baseAccuracy: c['baseAccuracy'],
        ...(typeof c['baseKWay'] === 'number' ? { baseKWay: c['baseKWay'] } : {}),
        componentAccuracy: c['accuracy'],
        parameters: c['parameters'],
        flopsPerImage: c['flopsPerImage'],
        file: c['file'],
      })),
    ),
    baseVsComponent(
      page,
      components.map((c) => ({ ...c, componentAccuracy: c['accuracy'] })),
    ),
  ];
  if (isObject(lego['assembled'])) {
    const a = lego['assembled'];
    body.push(
      '<h3>Assembled</h3>',
      htmlTable([
        {
          method: a['method'],
          baseAccuracy: a['baseAccuracy'],
          unscaled: a['unscaled'],
          scaled: a['scaled'],
          parameters: a['parameters'],
          flopsPerImage: a['flopsPerImage'],
          file: a['file'],
        },
      ]),
    );
  }
  return body.join('\n');
}
