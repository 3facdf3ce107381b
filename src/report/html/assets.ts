/**
 * The browser bundles of vega, vega-lite and vega-embed, read from the installed packages
 * and inlined into every report page, so a page draws its charts from disk with no network.
 *
 * @example
 *   const html = `<body>...${inlineScripts()}</body>`;
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { packageRoot } from '../../util/paths.js';

/** In load order: vega-embed expects the globals `vega` and `vegaLite`. */
const BUNDLES = ['vega', 'vega-lite', 'vega-embed'] as const;

let cached: string | undefined;

/** `<script>` elements holding the three bundles. */
export function inlineScripts(): string {
  cached ??= BUNDLES.map((name) => `<script data-bundle="${name}">${scriptText(readFileSync(bundlePath(name), 'utf8'), name)}</script>`).join('\n');
  return cached;
}

/** A package's own minified browser bundle: the file its package.json names for CDNs (`unpkg`/`jsdelivr`). */
export function bundlePath(name: string): string {
  // The packages' export maps hide package.json and build/, so start from the entry point and walk up.
  let dir = dirname(createRequire(join(packageRoot(), 'package.json')).resolve(name));
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      const meta = JSON.parse(readFileSync(pj, 'utf8')) as { name?: string; unpkg?: string; jsdelivr?: string };
      if (meta.name === name) {
        const file = meta.unpkg ?? meta.jsdelivr;
        if (!file) throw new Error(`${name} names no browser bundle (unpkg/jsdelivr) in ${pj}`);
        return join(dir, file);
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the package folder of ${name}`);
    dir = up;
  }
}

/** JavaScript made safe inside a <script> element. */
export function scriptText(js: string, what: string): string {
  // "</script" would end the element early; "<\/" means the same inside the strings and regexes where it can occur.
  // "<!--" (with a later "<script") would switch the HTML parser into a mode no escape undoes, so it is refused.
  if (js.includes('<!--')) throw new Error(`${what}: cannot inline a script containing "<!--"`);
  return js.replace(/<\/(script)/gi, '<\\/$1');
}

/** JSON for a <script type="application/json"> element: "<" escaped so no markup can appear. */
export function jsonText(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}
