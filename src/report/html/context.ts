/**
 * What a section renderer gets: the page (for charts), unique section ids, and the
 * provenance of an enclosing run (a demo's) for parts whose own files carry none.
 */
import { relative } from 'node:path';
import type { Page, Section } from './page.js';
import type { Json } from './read.js';

export interface RenderContext {
  page: Page;
  /** a section id unique in the page, from a readable base */
  id(base: string): string;
  /** the enclosing run's provenance, for parts without their own */
  inherited?: { provenance: Json; note: string };
}

export function newContext(page: Page): RenderContext {
  const used = new Map<string, number>();
  return {
    page,
    id(base) {
      const slug =
        base
          .toLowerCase()
          .replace(/[^a-z0-9]+/g, '-')
          .replace(/^-|-$/g, '') || 'section';
      const n = (used.get(slug) ?? 0) + 1;
      used.set(slug, n);
      return n === 1 ? slug : `${slug}-${n}`;
    },
  };
}

/** A section, with the enclosing run's provenance when its own files record none. */
export function makeSection(
  ctx: RenderContext,
  s: { title: string; kind: string; source: string; provenance: Json | null; body: string; note?: string },
): Section {
  const own = s.provenance;
  const section: Section = {
    id: ctx.id(s.title),
    title: s.title,
    kind: s.kind,
    source: shortPath(s.source),
    provenance: own ?? ctx.inherited?.provenance ?? null,
    body: s.body,
  };
  const note = own ? undefined : (ctx.inherited?.note ?? s.note);
  if (note) section.provenanceNote = note;
  return section;
}

/** A path relative to the working folder when it lies below it. */
export function shortPath(p: string): string {
  const r = relative(process.cwd(), p);
  return r && !r.startsWith('..') ? r : p;
}

export const baseName = (p: string): string => p.split(/[\\/]/).filter(Boolean).pop() ?? p;
