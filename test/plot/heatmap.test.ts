import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import { renderHeatmaps, writeHeatmaps, systemFontsAvailable, type HeatmapPanel } from '../../src/plot/heatmap.js';
import { tempDir } from '../helpers/paths.js';

const rows = ['stem', 'layer1', 'layer2'];
const cols = ['layer1', 'layer2', 'fc'];
const panel = (title: string, shift: number): HeatmapPanel => ({
  title,
  rows,
  cols,
  values: [
    [0.125 + shift, 0.5, 0.75],
    [0.25, null, 0.875],
    [0.3125, 0.625, Number.NaN],
  ],
});

/** width and height from a PNG's IHDR chunk */
function pngSize(png: Buffer): [number, number] {
  return [png.readUInt32BE(16), png.readUInt32BE(20)];
}

function svgSize(svg: string): [number, number] {
  const m = /<svg[^>]*\swidth="([\d.]+)"[^>]*\sheight="([\d.]+)"/.exec(svg);
  assert.ok(m, 'svg has width and height');
  return [Number(m[1]), Number(m[2])];
}

test('heatmap SVG carries every annotation, label and title; missing cells are marked', async () => {
  const { svg } = await renderHeatmaps([panel('trained -> trained', 0), panel('random -> random', 0.25)], { title: 'R1111 -> R1111', digits: 3 });
  assert.match(svg, /^<svg/);
  assert.ok(svg.trim().endsWith('</svg>'));
  for (const s of ['R1111 -&gt; R1111', 'trained -&gt; trained', 'random -&gt; random', 'stem', 'layer2', 'fc', 'sender cut', 'receiver cut']) {
    assert.ok(svg.includes(s), `svg should contain ${s}`);
  }
  // each panel's values at 3 decimals; nulls and NaN as a dash
  for (const v of ['0.125', '0.625', '0.875', '0.313', '0.500']) assert.ok(svg.includes(`>${v}<`), `annotation ${v}`);
  assert.ok(svg.includes('>0.375<'), 'second panel value 0.125+0.25');
  const dashes = svg.match(/>–</g) ?? [];
  assert.equal(dashes.length, 4, 'two missing cells per panel');
  const grey = svg.match(/fill="#d0d0d0"/g) ?? [];
  assert.equal(grey.length, 4);
});

test('heatmap PNG has the PNG signature, twice the SVG size, and drawn text', async () => {
  const { svg, png } = await renderHeatmaps([panel('a', 0)], { min: 0, max: 1 });
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const [w, h] = svgSize(svg);
  const [pw, ph] = pngSize(png);
  assert.equal(pw, Math.round(2 * w));
  assert.equal(ph, Math.round(2 * h));
  if (systemFontsAvailable()) {
    // the same SVG rasterised without any font has no text: our PNG must differ from it
    const bare = new Resvg(svg, { background: 'white', fitTo: { mode: 'zoom', value: 2 }, font: { loadSystemFonts: false } }).render().asPng();
    assert.notDeepEqual(bare, png);
  }
});

test('writeHeatmaps writes base.svg and base.png', async () => {
  const dir = tempDir();
  const base = join(dir, 'sub', 'cka');
  const paths = await writeHeatmaps(base, [panel('a', 0)]);
  assert.deepEqual(paths, [`${base}.svg`, `${base}.png`]);
  assert.ok(existsSync(paths[0]!) && existsSync(paths[1]!));
  assert.match(readFileSync(paths[0]!, 'utf8'), /<svg/);
  assert.equal(readFileSync(paths[1]!).readUInt32BE(0), 0x89504e47);
});

test('a panel whose values do not match its labels is refused', async () => {
  await assert.rejects(renderHeatmaps([{ title: 'x', rows: ['a'], cols: ['b', 'c'], values: [[1]] }]), /row 0 has 1 values for 2 columns/);
  await assert.rejects(renderHeatmaps([]), /no panels/);
});

test('the colour legend names what the cells measure', async () => {
  const named = (await renderHeatmaps([panel('a', 0)], { min: 0, max: 1, legend: 'relative fit error' })).svg;
  assert.ok(named.includes('>relative fit error<'), 'the given legend title');
  const plain = (await renderHeatmaps([panel('a', 0)], { min: 0, max: 1 })).svg;
  assert.ok(plain.includes('>value<') && !plain.includes('relative fit error'));
});
