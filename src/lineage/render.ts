/**
 * Presenting a forest: an indented text tree for the terminal, Graphviz DOT, and the
 * DOT laid out to SVG (@hpcc-js/wasm-graphviz) and rasterised to PNG (resvg).
 *
 * @example
 *   console.log(forestText(forest));
 *   await writeForestFiles(forest, 'out/');   // forest.json, forest.dot, forest.svg, forest.png
 */
import { join } from 'node:path';
import { Graphviz } from '@hpcc-js/wasm-graphviz';
import { Resvg } from '@resvg/resvg-js';
import { writeFileAtomic } from '../util/atomic.js';
import { writeResultJson } from '../util/provenance.js';
import type { LineageForest } from './forest.js';
import type { LineageScore } from './truth.js';

const fmt = (x: number): string => (Math.abs(x) >= 100 || x === 0 ? x.toFixed(0) : x.toPrecision(3));

/**
 * One line per model, children indented under their parent, trees in cluster order.
 *
 * @example
 *   console.log(forestText(await recoverLineage(['zoo/models'])));
 */
export function forestText(forest: LineageForest): string {
  const kids = new Map<string, string[]>();
  for (const e of forest.edges) {
    if (!kids.has(e.parent)) kids.set(e.parent, []);
    kids.get(e.parent)!.push(e.child);
  }
  const edgeTo = new Map(forest.edges.map((e) => [e.child, e]));
  const lines: string[] = [];
  const walk = (name: string, prefix: string, last: boolean, top: boolean): void => {
    const e = edgeTo.get(name);
    const label = e ? `${name}  (d ${fmt(e.distance)}, cost ${fmt(e.cost)})` : `${name}  (root)`;
    lines.push(top ? label : `${prefix}${last ? '└─ ' : '├─ '}${label}`);
    const cs = kids.get(name) ?? [];
    const next = top ? '' : prefix + (last ? '   ' : '│  ');
    cs.forEach((c, i) => walk(c, next, i === cs.length - 1, false));
  };
  forest.clusters.forEach((members, c) => {
    lines.push(`tree ${c + 1} (${members.length} models)`);
    for (const r of forest.roots.filter((x) => members.includes(x))) walk(r, '', true, true);
  });
  return lines.join('\n');
}

const q = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

/** Graphviz DOT: one subgraph cluster per tree, edges labelled with their cost; with a score, wrong edges are red. */
export function forestDot(forest: LineageForest, truthEdges?: readonly [string, string][]): string {
  const right = new Set((truthEdges ?? []).map(([p, c]) => `${p}\u0000${c}`));
  // the legend, as the graph's label: what the colours mean
  const legend = ['green box: a recovered root', 'edge label: its cost', ...(truthEdges ? ['red edge: not in the truth (wrong parent or reversed)'] : [])].join(
    '; ',
  );
  const out = [
    'digraph lineage {',
    `  rankdir=TB; labelloc=b; fontname="Helvetica"; fontsize=10; label=${q(legend)};`,
    '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica", fontsize=10];',
    '  edge [fontname="Helvetica", fontsize=8];',
  ];
  forest.clusters.forEach((members, c) => {
    out.push(`  subgraph cluster_${c} {`, `    label=${q(`tree ${c + 1}`)}; color="#9aa7b8";`);
    for (const m of members) out.push(`    ${q(m)}${forest.roots.includes(m) ? ' [fillcolor="#d7e6c8"]' : ''};`);
    out.push('  }');
  });
  for (const e of forest.edges) {
    const bad = truthEdges && !right.has(`${e.parent}\u0000${e.child}`);
    out.push(`  ${q(e.parent)} -> ${q(e.child)} [label=${q(fmt(e.cost))}${bad ? ', color="#c0392b", fontcolor="#c0392b"' : ''}];`);
  }
  out.push('}');
  return out.join('\n') + '\n';
}

let graphviz: Promise<Graphviz> | undefined;

export async function dotToSvg(dot: string): Promise<string> {
  graphviz ??= Graphviz.load();
  return (await graphviz).dot(dot);
}

export function svgToPng(svg: string): Uint8Array {
  return new Resvg(svg, { font: { loadSystemFonts: true }, background: 'white' }).render().asPng();
}

export interface ForestFiles {
  json: string;
  dot: string;
  svg: string;
  png: string;
}

/**
 * Writes forest.json (with the score when given), forest.dot, forest.svg and forest.png atomically.
 *
 * @example
 *   await writeForestFiles(forest, 'runs/lineage', score);
 */
export async function writeForestFiles(
  forest: LineageForest,
  dir: string,
  score?: LineageScore,
  truthEdges?: readonly [string, string][],
): Promise<ForestFiles> {
  const files = { json: join(dir, 'forest.json'), dot: join(dir, 'forest.dot'), svg: join(dir, 'forest.svg'), png: join(dir, 'forest.png') };
  const dot = forestDot(forest, truthEdges);
  const svg = await dotToSvg(dot);
  writeResultJson(files.json, score ? { ...forest, score, truth: { edges: truthEdges ?? [] } } : forest);
  writeFileAtomic(files.dot, dot);
  writeFileAtomic(files.svg, svg);
  writeFileAtomic(files.png, svgToPng(svg));
  return files;
}
