/**
 * Training runs (the `<output>.metrics.jsonl` logs of `modelsmith train`) as a report
 * section: loss and accuracy per epoch, train and validation, every run of the folder in
 * one pair of charts, and the last epoch of each in a table. Any numeric field of the log
 * named *Loss or *Accuracy is drawn, so new metrics appear without a change here.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../../onnx/proto.js';
import { getProvenance } from '../../../onnx/metadata.js';
import { curves, type Point } from '../charts.js';
import { gridTable, number, pct } from '../format.js';
import { readJsonLines, type Json } from '../read.js';
import { makeSection, type RenderContext } from '../context.js';
import type { Section } from '../page.js';

const SUFFIX = '.metrics.jsonl';
/** Models up to this size are opened to read the provenance the trainer stored in them. */
const MAX_MODEL_BYTES = 64 * 2 ** 20;

/** "trainLoss" -> "train", "valAccuracy" -> "validation". */
const SPLITS: [RegExp, string][] = [
  [/^train/i, 'train'],
  [/^val/i, 'validation'],
  [/^test/i, 'test'],
];

export function isTrainingFolder(dir: string): boolean {
  return metricLogs(dir).length > 0;
}

function metricLogs(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith(SUFFIX))
      .sort();
  } catch {
    return [];
  }
}

export async function trainSections(dir: string, ctx: RenderContext): Promise<Section[]> {
  const runs = metricLogs(dir).map((f) => ({ name: f.slice(0, -SUFFIX.length), epochs: readJsonLines(join(dir, f)) }));
  const loss: Point[] = [],
    acc: Point[] = [];
  for (const run of runs) {
    for (const e of run.epochs) {
      const x = typeof e['epoch'] === 'number' ? e['epoch'] : NaN;
      if (!Number.isFinite(x)) continue;
      for (const [k, v] of Object.entries(e)) {
        if (typeof v !== 'number' || !Number.isFinite(v)) continue;
        const split = SPLITS.find(([re]) => re.test(k))?.[1] ?? k;
        if (/loss$/i.test(k)) loss.push({ x, y: v, color: run.name, dash: split });
        else if (/accuracy$/i.test(k)) acc.push({ x, y: v, color: run.name, dash: split });
      }
    }
  }
  const panels = [
    { title: 'loss', points: loss },
    { title: 'accuracy', points: acc, percent: true },
  ].filter((p) => p.points.length);
  const body: string[] = [
    `<p class="summary">${runs.length} training run${runs.length === 1 ? '' : 's'}; ` +
      'solid and dashed lines: the splits (validation is held out of the training split).</p>',
  ];
  if (panels.length) body.push(ctx.page.chart(curves(panels), { label: 'training curves' }));
  body.push(
    gridTable(
      ['run', 'epochs', 'steps', 'train loss', 'train accuracy', 'validation accuracy', 'images/s', 'data', 'seed'],
      runs.map((r) => {
        const last: Json = r.epochs[r.epochs.length - 1] ?? {};
        const meta = modelProvenance(join(dir, r.name));
        const n = (k: string, f: (v: number) => string): string => (typeof last[k] === 'number' ? f(last[k] as number) : '–');
        return [
          r.name,
          String(r.epochs.length),
          n('step', number),
          n('trainLoss', (v) => v.toFixed(4)),
          n('trainAccuracy', pct),
          n('valAccuracy', pct),
          n('imagesPerSecond', (v) => v.toFixed(0)),
          typeof meta?.['data'] === 'string' ? meta['data'] : '–',
          meta?.['seed'] !== undefined ? String(meta['seed']) : '–',
        ];
      }),
      { caption: 'Last epoch of each run; data and seed as stored in the trained model' },
    ),
  );
  return [
    makeSection(ctx, {
      title: `Training: ${runs.map((r) => r.name).join(', ')}`,
      kind: 'train',
      source: dir,
      provenance: null,
      body: body.join('\n'),
      note: 'A metrics log carries no provenance block; modelsmith train --json prints it with the result.',
    }),
  ];
}

/** The provenance metadata of the trained model next to its log, when it is there and small. */
function modelProvenance(file: string): Record<string, unknown> | undefined {
  try {
    if (!existsSync(file) || statSync(file).size > MAX_MODEL_BYTES) return undefined;
    return getProvenance(loadModel(file));
  } catch {
    return undefined;
  }
}
