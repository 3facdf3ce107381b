/**
 * `modelsmith report`: one self-contained HTML page for any mix of run folders. Each
 * folder's kind is recognised from the files in it (one table, RUN_KINDS); a folder of
 * no known kind is searched a few levels down, so `report runs/` finds every run below.
 *
 * @example
 *   const r = await writeReport(['runs/demo', 'runs/grid'], 'report.html');
 *   r.sections.map((s) => s.kind);   // ['demo', 'lego (demo)', 'train', ..., 'stitch grid']
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UserError } from '../../util/errors.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { provenance } from '../../util/provenance.js';
import { Page, type Section } from './page.js';
import { newContext, type RenderContext } from './context.js';
import { provenanceOf, tryReadJson } from './read.js';
import { isDemo, demoSections } from './sections/demo.js';
import { isStitchGrid, stitchSections } from './sections/stitch.js';
import { isCkaGrid, ckaSections } from './sections/cka.js';
import { isLineageForest, isLineageScores, lineageScoreSections, lineageSections } from './sections/lineage.js';
import { isLegoExperiment, legoSections } from './sections/lego.js';
import { isTrainingFolder, trainSections } from './sections/train.js';
import { isModelFolder, modelSections } from './sections/models.js';

export interface RunKind {
  name: string;
  /** whether a folder holds this kind of run (checked in table order; the first match wins) */
  detect(dir: string): boolean;
  sections(dir: string, ctx: RenderContext): Promise<Section[]>;
  /** its subfolders hold parts of the run (shown after it, with its provenance), except of these kinds */
  container?: { skip: string[]; provenanceFile: string };
}

/** Every kind of run folder the report knows, in the order of the demo's page. */
export const RUN_KINDS: RunKind[] = [
  { name: 'demo', detect: isDemo, sections: demoSections, container: { skip: ['models'], provenanceFile: 'results.json' } },
  { name: 'train', detect: isTrainingFolder, sections: trainSections },
  { name: 'lego-experiment', detect: isLegoExperiment, sections: legoSections },
  { name: 'lineage scores', detect: isLineageScores, sections: lineageScoreSections, container: { skip: ['models'], provenanceFile: 'results.json' } },
  { name: 'lineage', detect: isLineageForest, sections: lineageSections },
  { name: 'stitch grid', detect: isStitchGrid, sections: stitchSections },
  { name: 'CKA', detect: isCkaGrid, sections: ckaSections },
  { name: 'models', detect: isModelFolder, sections: modelSections },
];

/** How deep below a given folder runs are looked for. */
const SEARCH_DEPTH = 3;
/** Folders a run keeps its own bookkeeping in: never runs themselves. */
const NOT_RUNS = new Set(['cells', 'claims', 'node_modules', '.git']);

interface FoundRun {
  dir: string;
  kind: RunKind;
  parts: FoundRun[];
}

export interface ReportOptions {
  title?: string;
}

export interface ReportResult {
  html: string;
  sections: { id: string; title: string; kind: string; source: string }[];
  /** heatmaps and their cell counts, in page order */
  heatmaps: number[];
}

/** The page for the given run folders (or result files, meaning their folders). */
export async function buildReport(paths: readonly string[], opts: ReportOptions = {}): Promise<ReportResult> {
  if (!paths.length) throw new UserError('report needs at least one run folder');
  const runs: FoundRun[] = [];
  const seen = new Set<string>();
  for (const p of paths) {
    if (!existsSync(p))
      throw new UserError(`${p} does not exist: expected a run folder (of demo, stitch, cka, lineage, lego-experiment, train, disassemble or assemble)`);
    const dir = statSync(p).isDirectory() ? p : dirname(p);
    const found = findRuns(dir, SEARCH_DEPTH);
    if (!found.length) {
      throw new UserError(
        `${p} holds no modelsmith results (looked ${SEARCH_DEPTH} folder levels deep for matrix.json, forest.json, experiment.json, results.json, ` +
          '*.metrics.jsonl and models made by disassemble or assemble)',
      );
    }
    // a folder given twice, or inside another given folder, is shown once
    const fresh = found.filter((r) => !seen.has(resolve(r.dir)));
    for (const r of fresh) markSeen(r, seen);
    runs.push(...fresh);
  }
  const page = new Page();
  const ctx = newContext(page);
  const sections: Section[] = [];
  const render = async (run: FoundRun, c: RenderContext): Promise<void> => {
    sections.push(...(await run.kind.sections(run.dir, c)));
    if (!run.kind.container) return;
    const own = tryReadJson(resolve(run.dir, run.kind.container.provenanceFile));
    const prov = own ? provenanceOf(own) : null;
    const inner: RenderContext = prov ? { ...c, inherited: { provenance: prov, note: `of the ${run.kind.name} run this is part of` } } : c;
    for (const part of run.parts) await render(part, inner);
  };
  for (const run of runs) await render(run, ctx);
  const title = opts.title ?? `modelsmith report: ${[...new Set(paths.map((p) => basename(resolve(p))))].join(', ')}`;
  const html = page.render(sections, { title, made: provenance() });
  return {
    html,
    sections: sections.map((s) => ({ id: s.id, title: s.title, kind: s.kind, source: s.source })),
    heatmaps: [...html.matchAll(/data-heatmap="true" data-cells="(\d+)"/g)].map((m) => Number(m[1])),
  };
}

/** The page of one command's output folder: `<dir>/report.html`, its path returned. */
export async function writeRunReport(dir: string, opts: ReportOptions = {}): Promise<string> {
  return (await writeReport([dir], join(dir, 'report.html'), opts)).file;
}

/**
 * Writes the page atomically; returns what it holds.
 *
 * @example
 *   await writeReport(['runs/demo', 'runs/stitch'], 'report.html');
 */
export async function writeReport(paths: readonly string[], file: string, opts: ReportOptions = {}): Promise<ReportResult & { file: string }> {
  if (existsSync(file) && statSync(file).isDirectory())
    throw new UserError(`-o ${file} is a folder: expected the report's file name, e.g. ${file}/report.html`);
  const r = await buildReport(paths, opts);
  writeFileAtomic(file, r.html);
  return { ...r, file };
}

/** The runs in a folder: the folder itself when it is one (with its parts), else the runs below it. */
function findRuns(dir: string, depth: number): FoundRun[] {
  const kind = RUN_KINDS.find((k) => k.detect(dir));
  if (kind) {
    const parts = kind.container
      ? subfolders(dir)
          .flatMap((d) => findRuns(d, depth))
          .filter((r) => !kind.container!.skip.includes(r.kind.name))
      : [];
    return [{ dir, kind, parts: byKind(parts) }];
  }
  return depth > 0 ? byKind(subfolders(dir).flatMap((d) => findRuns(d, depth - 1))) : [];
}

/** Runs found together, in the order of RUN_KINDS (then by folder). */
function byKind(runs: FoundRun[]): FoundRun[] {
  return runs.sort((a, b) => RUN_KINDS.indexOf(a.kind) - RUN_KINDS.indexOf(b.kind));
}

function subfolders(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !e.name.startsWith('.') && !NOT_RUNS.has(e.name))
      .map((e) => resolve(dir, e.name))
      .sort();
  } catch {
    return [];
  }
}

function markSeen(r: FoundRun, seen: Set<string>): void {
  seen.add(resolve(r.dir));
  for (const p of r.parts) markSeen(p, seen);
}
