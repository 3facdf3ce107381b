/**
 * A lineage folder (forest.json of `modelsmith lineage`) as a report section: the
 * recovered forest drawn by Graphviz as inline SVG, with correct, wrong and missing edges
 * marked when the truth is known, per-tree accuracy, the overall scores and the settings.
 * Also the demo's lineage scores (results.json of the lineage part of `modelsmith demo`).
 */
import { join } from 'node:path';
import { dotToSvg } from '../../../lineage/render.js';
import { esc, fieldTable, gridTable, htmlTable, pct } from '../format.js';
import { isObject, isStringArray, need, provenanceOf, readJson, tryReadJson, type Json } from '../read.js';
import { baseName, makeSection, type RenderContext } from '../context.js';
import type { Section } from '../page.js';

type EdgeClass = 'correct' | 'wrong' | 'missing' | 'recovered';

/** How each class of edge is drawn, and its legend text. */
const EDGE_STYLES: Record<EdgeClass, { color: string; style: 'solid' | 'dashed'; legend: string }> = {
  correct: { color: '#1b7837', style: 'solid', legend: 'correct edge (parent and direction as in the truth)' },
  wrong: { color: '#c0392b', style: 'solid', legend: 'wrong edge (not in the truth, or reversed)' },
  missing: { color: '#8a8f98', style: 'dashed', legend: 'missing edge (in the truth, not recovered)' },
  recovered: { color: '#34495e', style: 'solid', legend: 'recovered edge (no truth given)' },
};

interface Edge {
  parent: string;
  child: string;
  cost?: number;
  distance?: number;
}

export function isLineageForest(dir: string): boolean {
  const f = tryReadJson(join(dir, 'forest.json'));
  return !!f && Array.isArray(f['nodes']) && Array.isArray(f['edges']) && Array.isArray(f['clusters']);
}

export async function lineageSections(dir: string, ctx: RenderContext): Promise<Section[]> {
  const file = join(dir, 'forest.json');
  const f = readJson(file);
  need(Array.isArray(f['nodes']) && f['nodes'].every((n) => isObject(n) && typeof n['name'] === 'string'), file, 'nodes', 'a list of {name, ...}');
  need(Array.isArray(f['clusters']) && f['clusters'].every(isStringArray), file, 'clusters', 'a list of lists of model names');
  const edges = edgeList(f['edges'], file, 'edges');
  const nodes = (f['nodes'] as Json[]).map((n) => ({ name: String(n['name']), path: typeof n['path'] === 'string' ? n['path'] : '' }));
  const clusters = f['clusters'] as string[][];
  const roots = isStringArray(f['roots']) ? f['roots'] : [];
  const truth = isObject(f['truth']) ? edgeList(f['truth']['edges'], file, 'truth.edges').map((e) => [e.parent, e.child] as [string, string]) : undefined;

  const key = (p: string, c: string): string => `${p}\u0000${c}`;
  const truthSet = new Set((truth ?? []).map(([p, c]) => key(p, c)));
  const found = new Set(edges.map((e) => key(e.parent, e.child)));
  const classOf = (e: Edge): EdgeClass => (!truth ? 'recovered' : truthSet.has(key(e.parent, e.child)) ? 'correct' : 'wrong');
  const missing = (truth ?? []).filter(([p, c]) => !found.has(key(p, c)));
  const svg = await dotToSvg(
    forestDot(
      nodes,
      clusters,
      roots,
      edges.map((e) => ({ ...e, cls: classOf(e) })),
      missing,
      truthSet,
    ),
  );

  const body: string[] = [];
  const score = isObject(f['score']) ? f['score'] : undefined;
  body.push(
    `<p class="summary">${nodes.length} models recovered into ${clusters.length} tree${clusters.length === 1 ? '' : 's'} from their weights alone` +
      `${truth ? `; scored against ${truth.length} true edges` : ' (no truth given: edges are not scored)'}. Edge labels: the edge's cost.</p>`,
  );
  if (score) {
    body.push(
      gridTable(
        ['directed accuracy', 'undirected', 'clustering', 'ARI', 'correct edges', 'trees (predicted / true)'],
        [
          [
            fmtPct(score['directed']),
            fmtPct(score['undirected']),
            fmtPct(score['clustering']),
            typeof score['ari'] === 'number' ? score['ari'].toFixed(3) : '–',
            `${String(score['correctEdges'] ?? '?')} / ${String(score['trueEdges'] ?? '?')}`,
            `${String(score['predictedTrees'] ?? '?')} / ${String(score['trueTrees'] ?? '?')}`,
          ],
        ],
      ),
    );
  }
  const classes: EdgeClass[] = truth ? ['correct', 'wrong', 'missing'] : ['recovered'];
  body.push(
    `<div class="legend">${classes.map((c) => legendItem(c)).join('')}` +
      '<span><svg width="26" height="14"><rect x="1" y="1" width="24" height="12" rx="3" fill="#d7e6c8" stroke="#666"/></svg>root</span></div>',
  );
  body.push(`<div class="forest">${svg.slice(Math.max(0, svg.indexOf('<svg')))}</div>`);
  body.push(
    '<h3>Per tree</h3>',
    gridTable(
      ['tree', 'models', 'root', 'recovered edges', ...(truth ? ['correct', 'wrong', 'true edges into the tree', 'directed accuracy'] : [])],
      clusters.map((members, i) => {
        const inTree = new Set(members);
        const own = edges.filter((e) => inTree.has(e.child));
        const right = own.filter((e) => truthSet.has(key(e.parent, e.child))).length;
        const trueIn = (truth ?? []).filter(([, c]) => inTree.has(c)).length;
        return [
          String(i + 1),
          String(members.length),
          roots.filter((r) => inTree.has(r)).join(', ') || '–',
          String(own.length),
          ...(truth ? [String(right), String(own.length - right), String(trueIn), trueIn ? pct(right / trueIn) : '–'] : []),
        ];
      }),
    ),
  );
  if (isObject(f['settings'])) body.push('<h3>Settings</h3>', fieldTable(flatten(f['settings'])));
  const sel = f['selection'];
  if (isObject(sel) && Array.isArray(sel['layers'])) {
    body.push(
      `<p>Layers compared (${esc(sel['rule'] ?? '')}): ${(sel['layers'] as unknown[])
        .filter(isObject)
        .map((l) => `<code>${esc(l['name'])}</code> [${esc(Array.isArray(l['shape']) ? l['shape'].join('×') : '?')}]`)
        .join(', ')}</p>`,
    );
  }
  return [
    makeSection(ctx, {
      title: `Lineage: ${nodes.length} models (${baseName(dir)})`,
      kind: 'lineage',
      source: dir,
      provenance: provenanceOf(f),
      body: body.join('\n'),
    }),
  ];
}

/** The demo's lineage part: results.json with the scores on its two zoos. */
export function isLineageScores(dir: string): boolean {
  const r = tryReadJson(join(dir, 'results.json'));
  return !!r && isObject(r['zoos']) && isObject(r['full']) && isObject(r['lowrank']);
}

export async function lineageScoreSections(dir: string, ctx: RenderContext): Promise<Section[]> {
  const file = join(dir, 'results.json');
  const r = readJson(file);
  const rows = (['full', 'lowrank'] as const).map((k) => ({ 'fine-tuning': k === 'full' ? 'full' : 'low-rank (LoRA)', ...(r[k] as Json) }));
  const body = [
    `<p class="summary">Two zoos of ${esc(r['models'] ?? '?')} models each (${esc(r['edges'] ?? '?')} true edges), really fine-tuned on the same data; ` +
      'lineage recovered from the weights alone. The recovered forests follow.</p>',
    htmlTable(rows, { omit: ['key', 'options', 'seconds'], order: ['fine-tuning', 'setting', 'directed', 'undirected', 'clustering', 'ari'] }),
  ];
  return [makeSection(ctx, { title: 'Lineage recovery: scores', kind: 'lineage scores', source: dir, provenance: provenanceOf(r), body: body.join('\n') })];
}

function edgeList(v: unknown, file: string, field: string): Edge[] {
  need(Array.isArray(v), file, field, 'a list of edges');
  return v.map((e, i) => {
    if (Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && typeof e[1] === 'string') return { parent: e[0], child: e[1] };
    need(isObject(e) && typeof e['parent'] === 'string' && typeof e['child'] === 'string', file, `${field}[${i}]`, '{parent, child} or ["parent", "child"]');
    return {
      parent: e['parent'],
      child: e['child'],
      ...(typeof e['cost'] === 'number' ? { cost: e['cost'] } : {}),
      ...(typeof e['distance'] === 'number' ? { distance: e['distance'] } : {}),
    };
  });
}

const q = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
const num = (x: number): string => (Math.abs(x) >= 100 || x === 0 ? x.toFixed(0) : x.toPrecision(3));

function forestDot(
  nodes: { name: string; path: string }[],
  clusters: string[][],
  roots: string[],
  edges: (Edge & { cls: EdgeClass })[],
  missing: [string, string][],
  truth: Set<string>,
): string {
  const out = [
    'digraph lineage {',
    '  rankdir=TB; bgcolor="transparent";',
    '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", color="#6b7a90", fontname="Helvetica", fontsize=10];',
    '  edge [fontname="Helvetica", fontsize=8];',
  ];
  const pathOf = new Map(nodes.map((n) => [n.name, n.path]));
  clusters.forEach((members, c) => {
    out.push(`  subgraph cluster_${c} {`, `    label=${q(`tree ${c + 1}`)}; color="#9aa7b8"; fontname="Helvetica"; fontsize=11;`);
    for (const m of members) out.push(`    ${q(m)} [tooltip=${q(pathOf.get(m) || m)}${roots.includes(m) ? ', fillcolor="#d7e6c8"' : ''}];`);
    out.push('  }');
  });
  for (const e of edges) {
    const s = EDGE_STYLES[e.cls];
    const reversed = e.cls === 'wrong' && truth.has(`${e.child}\u0000${e.parent}`) ? ' (a true edge, reversed)' : '';
    const measures = `${e.distance !== undefined ? `, distance ${num(e.distance)}` : ''}${e.cost !== undefined ? `, cost ${num(e.cost)}` : ''}`;
    const detail = `${e.parent} -> ${e.child}: ${e.cls}${reversed}${measures}`;
    out.push(
      `  ${q(e.parent)} -> ${q(e.child)} [color=${q(s.color)}, fontcolor=${q(s.color)}, style=${s.style}, penwidth=1.4, tooltip=${q(detail)}` +
        `${e.cost !== undefined ? `, label=${q(num(e.cost))}` : ''}];`,
    );
  }
  const s = EDGE_STYLES.missing;
  for (const [p, c] of missing)
    out.push(`  ${q(p)} -> ${q(c)} [color=${q(s.color)}, style=${s.style}, constraint=false, tooltip=${q(`${p} -> ${c}: missing (a true edge)`)}];`);
  out.push('}');
  return out.join('\n') + '\n';
}

function legendItem(c: EdgeClass): string {
  const s = EDGE_STYLES[c];
  const dash = s.style === 'dashed' ? ' stroke-dasharray="5 3"' : '';
  const line = `<line x1="1" y1="5" x2="33" y2="5" stroke="${s.color}" stroke-width="2"${dash}/>`;
  return `<span data-edge="${c}"><svg width="34" height="10">${line}</svg>${esc(s.legend)}</span>`;
}

/** {clusters: {k: 2, estimated: false}} -> {"clusters k": 2, "clusters estimated": false} */
function flatten(obj: Json, prefix = ''): Json {
  const out: Json = {};
  for (const [k, v] of Object.entries(obj)) {
    const name = prefix ? `${prefix} ${k}` : k;
    if (isObject(v)) Object.assign(out, flatten(v, name));
    else out[name] = v;
  }
  return out;
}

const fmtPct = (v: unknown): string => (typeof v === 'number' ? pct(v) : '–');
