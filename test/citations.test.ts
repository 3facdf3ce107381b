/**
 * The design notes the code cites are in the repository: every `docs/<note>.md §N` (or
 * `§N-§M`) and every `docs/<note>.md ("Heading")` in src/ names a note in docs/ and a
 * heading of it; no comment cites a specification outside the repository.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { packagePath } from '../src/util/paths.js';

const SRC = packagePath('src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** The headings of a markdown note, without their leading #s. */
function headings(note: string): string[] {
  return readFileSync(packagePath('docs', note), 'utf8')
    .split('\n')
    .filter((l) => /^#{1,6} /.test(l))
    .map((l) => l.replace(/^#+ /, '').trim());
}

interface Citation {
  file: string;
  note: string;
  /** a section number such as §4b, or a heading's full text */
  target?: string;
}

function citations(): Citation[] {
  const out: Citation[] = [];
  for (const path of sources(SRC)) {
    // comments wrap: join each line's text after its comment marker
    const text = readFileSync(path, 'utf8')
      .split('\n')
      .map((l) => l.replace(/^\s*(\*|\/\/)\s?/, ''))
      .join(' ');
    const file = relative(SRC, path);
    for (const m of text.matchAll(/docs\/([\w-]+\.md)(?:\s+(§[\w.]+)(?:-(§[\w.]+))?|\s+\("([^"]+)"\))?/g)) {
      const [, note, from, to, heading] = m;
      if (from) out.push({ file, note: note!, target: from });
      if (to) out.push({ file, note: note!, target: to });
      if (heading) out.push({ file, note: note!, target: heading });
      if (!from && !heading) out.push({ file, note: note! });
    }
  }
  return out;
}

test('every docs/ citation in src/ names a note and a heading that exist', () => {
  const all = citations();
  assert.ok(all.length >= 10, `only ${all.length} citations were read: the pattern missed them`);
  const missing = all.filter((c) => {
    if (!existsSync(packagePath('docs', c.note))) return true;
    if (c.target === undefined) return false;
    const hs = headings(c.note);
    return c.target.startsWith('§') ? !hs.some((h) => h.startsWith(`${c.target} `)) : !hs.includes(c.target);
  });
  assert.deepEqual(
    missing.map((c) => `${c.file}: docs/${c.note} ${c.target ?? ''}`),
    [],
  );
});

test('no comment in src/ cites a specification outside the repository', () => {
  const outside = sources(SRC)
    .filter((p) => /\bspec(?:ification)?\s+(?:[\w-]+\.md\s+)?sections?\b/i.test(readFileSync(p, 'utf8')))
    .map((p) => relative(SRC, p));
  assert.deepEqual(outside, []);
});
