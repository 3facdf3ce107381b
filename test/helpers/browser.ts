/**
 * Opens a report page in a real browser (Debian's headless Chromium, driven by
 * puppeteer-core; no browser is ever downloaded) and reports what a reader would meet:
 * console errors, requests for anything but the file itself (all refused), every chart
 * and heatmap drawn (with its cell count), the tooltip of a hovered heatmap cell, the
 * rows of every table; and a screenshot. Used by the report tests and by
 * tools/report-screenshot.mjs (the README's picture), so both see the same page.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import puppeteer from 'puppeteer-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Chromium's flags: headless, no sandbox (CI runs as root), and nothing that reaches the network by itself. */
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface HeatmapCheck {
  id: string;
  /** cells the page says the heatmap has (panels x rows x columns) */
  expected: number;
  /** cell marks drawn */
  drawn: number;
  /** the text of every axis tick label */
  labels: string[];
  /** the cell hovered (the last one drawn), the tooltip shown, and the sender and receiver that cell joins */
  hovered: { tooltip: string; sender: string; receiver: string };
}

export interface PageCheck {
  consoleErrors: string[];
  /** every request except the page's own file (each was refused) */
  foreignRequests: string[];
  charts: { id: string; drawn: boolean; error: string | null }[];
  heatmaps: HeatmapCheck[];
  /** every table: its section's id, its caption or first heading, its body rows; provenance: the run's provenance block */
  tables: { section: string; head: string; rows: number; provenance: boolean }[];
  /** provenance: the block's table rows (0: the page says it was not recorded) */
  sections: { id: string; kind: string; title: string; provenance: number }[];
  screenshot: string;
  /** milliseconds from navigation until every chart was drawn */
  drawMs: number;
}

export interface CheckOptions {
  /** where the screenshot goes (default <tmp>/report.png) */
  screenshot?: string;
  /** CSS selector of the part to photograph (default: the whole page) */
  clip?: string;
  /** at most this many pixels from the top of the page (default: all) */
  maxHeight?: number;
  /** CSS selector of an element to hover before the screenshot (a heatmap cell: its tooltip shows) */
  hover?: string;
  width?: number;
}

/** Opens `file` in headless Chromium with a fresh profile under `tmp`, checks it, and photographs it. */
export async function checkReport(file: string, tmp: string, opts: CheckOptions = {}): Promise<PageCheck> {
  const profile = join(tmp, `chromium-profile-${process.pid}-${Date.now()}`);
  mkdirSync(profile, { recursive: true });
  const url = pathToFileURL(file).href;
  const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, userDataDir: profile, args: FLAGS, timeout: 60_000 });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: opts.width ?? 1280, height: 900 });
    const consoleErrors: string[] = [];
    const foreignRequests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(`uncaught: ${(e as Error).message ?? String(e)}`));
    await page.setRequestInterception(true);
    page.on('request', (r) => {
      if (r.url() === url) void r.continue();
      else {
        foreignRequests.push(r.url());
        void r.abort();
      }
    });
    const t0 = Date.now();
    await page.goto(url, { waitUntil: 'load', timeout: 60_000 });
    await page.waitForSelector('body[data-charts="done"]', { timeout: 120_000 });
    const drawMs = Date.now() - t0;

    const summary = await page.evaluate(() => ({
      charts: [...document.querySelectorAll('.chart')].map((c) => ({
        id: c.id,
        drawn: c.getAttribute('data-rendered') === 'true',
        error: c.getAttribute('data-error'),
      })),
      heatmaps: [...document.querySelectorAll('.chart[data-heatmap]')].map((c) => ({
        id: c.id,
        expected: Number(c.getAttribute('data-cells')),
        drawn: c.querySelectorAll('g.cells_marks > path').length,
        labels: [...c.querySelectorAll('g.role-axis-label text')].map((t) => t.textContent ?? ''),
      })),
      tables: [...document.querySelectorAll('main table')].map((t) => ({
        section: t.closest('section')?.id ?? '',
        head: t.querySelector('caption')?.textContent ?? t.querySelector('th')?.textContent ?? '',
        rows: t.querySelectorAll(':scope > tbody > tr, :scope > tr').length,
        provenance: !!t.closest('details.provenance'),
      })),
      sections: [...document.querySelectorAll('main > section')].map((s) => ({
        id: s.id,
        kind: s.getAttribute('data-kind') ?? '',
        title: s.querySelector('h2')?.textContent ?? '',
        provenance: s.querySelectorAll(':scope > details.provenance tr').length,
      })),
    }));

    // The specs in the page say which sender and receiver each cell joins; the last cell drawn is the last datum.
    const specs = await page.evaluate(
      () => JSON.parse(document.getElementById('report-charts')!.textContent!) as Record<string, { data: { values: { sender: string; receiver: string }[] } }>,
    );
    const heatmaps: HeatmapCheck[] = [];
    for (const h of summary.heatmaps) {
      const cells = await page.$$(`#${h.id} g.cells_marks > path`);
      const last = cells[cells.length - 1];
      const datum = specs[h.id]!.data.values[specs[h.id]!.data.values.length - 1]!;
      let tooltip = '';
      if (last) {
        await last.scrollIntoView();
        await last.hover();
        tooltip = await page
          .waitForFunction(
            () => {
              const t = document.getElementById('vg-tooltip-element');
              return t && t.classList.contains('visible') ? t.innerText : '';
            },
            { timeout: 10_000 },
          )
          .then((v) => v.jsonValue() as Promise<string>)
          .catch(() => '');
        await page.mouse.move(0, 0);
      }
      heatmaps.push({ ...h, hovered: { tooltip, sender: datum.sender, receiver: datum.receiver } });
    }

    if (opts.hover) {
      const el = await page.$(opts.hover);
      if (!el) throw new Error(`no element ${opts.hover} to hover`);
      await el.scrollIntoView();
      await el.hover();
      await page.waitForSelector('#vg-tooltip-element.visible', { timeout: 10_000 });
    }
    const screenshot = opts.screenshot ?? join(tmp, 'report.png');
    mkdirSync(join(screenshot, '..'), { recursive: true });
    const target = opts.clip ? await page.$(opts.clip) : null;
    if (opts.clip && !target) throw new Error(`no element ${opts.clip} to photograph`);
    if (target) await target.screenshot({ path: screenshot as `${string}.png` });
    else {
      const height = await page.evaluate(() => document.documentElement.scrollHeight);
      await page.screenshot({
        path: screenshot as `${string}.png`,
        clip: { x: 0, y: 0, width: opts.width ?? 1280, height: Math.min(height, opts.maxHeight ?? height) },
        captureBeyondViewport: true,
      });
    }
    return { consoleErrors, foreignRequests, charts: summary.charts, heatmaps, tables: summary.tables, sections: summary.sections, screenshot, drawMs };
  } finally {
    await browser.close();
  }
}

/** Whether the browser tests can run here (CI installs chromium; .ci/run does it when missing). */
export function haveChromium(): boolean {
  return existsSync(CHROMIUM);
}

/** What every report page must show a reader, whatever it holds. */
export function assertCleanPage(c: PageCheck): void {
  assert.deepEqual(c.consoleErrors, [], 'no console errors');
  assert.deepEqual(c.foreignRequests, [], 'no request for anything but the page itself');
  for (const ch of c.charts) assert.ok(ch.drawn, `chart ${ch.id} drawn (${ch.error ?? ''})`);
  for (const h of c.heatmaps) {
    assert.equal(h.drawn, h.expected, `heatmap ${h.id}: ${h.drawn} cells drawn of ${h.expected}`);
    assert.ok(h.hovered.tooltip.includes(h.hovered.sender), `${h.id}: hover shows the sender ${h.hovered.sender}: ${h.hovered.tooltip}`);
    assert.ok(h.hovered.tooltip.includes(h.hovered.receiver), `${h.id}: hover shows the receiver ${h.hovered.receiver}`);
  }
  for (const t of c.tables) assert.ok(t.rows > 0, `table "${t.head}" in ${t.section} has rows`);
  const png = readFileSync(c.screenshot);
  assert.equal(png.subarray(1, 4).toString(), 'PNG', 'the screenshot is a PNG');
  assert.ok(png.length > 10_000, `screenshot ${c.screenshot} has content (${png.length} bytes)`);
}
