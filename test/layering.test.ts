/**
 * The layers of src/ only depend downward: each top-level folder imports only folders on a
 * lower level of LAYERS, never a sibling on its own level, and the folders form no cycle.
 * Imports are read with TypeScript's own pre-processor (static, `export ... from`, `import type`
 * and dynamic `import()` alike), from the sources, so the check needs no build of src/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { packagePath } from '../src/util/paths.js';

/**
 * Level of each folder of src/ (0 = bottom). Folders on one level are siblings: none imports another.
 * util: errors, atomic writes, progress, seeds. plot: heatmaps (vega-lite/resvg) that stitch and report both draw.
 * onnx: the IR, metadata and provenance hashes. data: datasets (files, no models). io: safetensors.
 * runtime: ONNX Runtime sessions, inference, evaluation over datasets. nn: model builders.
 * autodiff: training graphs and the training loop. lineage / lego / stitch: the applications.
 * report: demos, inspection, HTML reports over the applications. queue: distributed jobs of the
 * applications. cli: the command line. index.ts: the public API over everything.
 */
const LAYERS: Readonly<Record<string, number>> = {
  util: 0,
  plot: 1,
  onnx: 1,
  data: 1,
  io: 2,
  runtime: 3,
  nn: 3,
  autodiff: 4,
  lineage: 5,
  lego: 5,
  stitch: 5,
  report: 6,
  queue: 7,
  cli: 8,
  'index.ts': 9,
};

/** Folder-to-folder imports that break the rule but cannot move yet, `from -> to` with the reason. Keep it empty. */
const ALLOWED: Readonly<Record<string, string>> = {};

const SRC = packagePath('src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** The top-level folder of src/ a path lies in (`index.ts` for the root module), or undefined outside src/. */
function folderOf(path: string): string | undefined {
  const rel = relative(SRC, path);
  if (rel.startsWith('..')) return undefined;
  return rel.split(sep)[0];
}

interface Edge {
  from: string;
  to: string;
  file: string;
  spec: string;
}

function folderEdges(): Edge[] {
  const edges: Edge[] = [];
  for (const file of sources(SRC)) {
    const from = folderOf(file)!;
    for (const { fileName: spec } of ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles) {
      if (!spec.startsWith('.')) continue;
      const to = folderOf(resolve(dirname(file), spec));
      assert.ok(to !== undefined, `${relative(SRC, file)} imports ${spec}, outside src/`);
      if (to !== from) edges.push({ from, to, file: relative(SRC, file), spec });
    }
  }
  return edges;
}

const edges = folderEdges();

test('the layer table names every folder of src/', () => {
  const folders = readdirSync(SRC, { withFileTypes: true }).map((e) => e.name);
  assert.deepEqual(
    folders.filter((f) => !(f in LAYERS)),
    [],
    'place new folders in LAYERS',
  );
  assert.deepEqual(
    Object.keys(LAYERS).filter((f) => !folders.includes(f)),
    [],
    'LAYERS names folders that are gone',
  );
  assert.ok(edges.length > 100, `only ${edges.length} cross-folder imports were read: the parser missed imports`);
});

test('every folder of src/ imports only folders on lower layers', () => {
  const wrong = edges
    .filter((e) => LAYERS[e.to]! >= LAYERS[e.from]! && !(`${e.from} -> ${e.to}` in ALLOWED))
    .map((e) => `${e.file} (${e.from}, layer ${LAYERS[e.from]}) imports ${e.spec} (${e.to}, layer ${LAYERS[e.to]})`);
  assert.deepEqual(wrong, []);
});

test('the folders of src/ import each other without cycles', () => {
  const next = new Map<string, Set<string>>();
  for (const e of edges) {
    if (!next.has(e.from)) next.set(e.from, new Set());
    next.get(e.from)!.add(e.to);
  }
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]): void => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'open') {
      cycles.push([...path.slice(path.indexOf(f)), f].join(' -> '));
      return;
    }
    state.set(f, 'open');
    for (const t of next.get(f) ?? []) visit(t, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of Object.keys(LAYERS)) visit(f, []);
  assert.deepEqual(cycles, []);
});

test('the allow-list holds only imports that are still needed', () => {
  const seen = new Set(edges.map((e) => `${e.from} -> ${e.to}`));
  assert.deepEqual(
    Object.keys(ALLOWED).filter((k) => !seen.has(k)),
    [],
  );
});
