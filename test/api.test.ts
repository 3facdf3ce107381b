/**
 * The public API (src/index.ts) stays curated and documented: named exports only, and every
 * function or class it exports has a doc comment with an `@example` (what TypeDoc shows).
 * Read syntactically with TypeScript's parser, so the check needs no build and no type-check.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import ts from 'typescript';
import { packagePath } from '../src/util/paths.js';

/** Exports whose doc example lives in a file being edited elsewhere; each entry says why. Keep it empty. */
const NO_EXAMPLE_YET: Readonly<Record<string, string>> = {};

const INDEX = packagePath('src', 'index.ts');
const parse = (file: string): ts.SourceFile => ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);

interface ValueExport {
  name: string;
  file: string;
}

function valueExports(): ValueExport[] {
  const out: ValueExport[] = [];
  for (const st of parse(INDEX).statements) {
    if (!ts.isExportDeclaration(st)) continue;
    assert.ok(st.exportClause && ts.isNamedExports(st.exportClause), `src/index.ts: "${st.getText()}" is not a list of named exports`);
    if (st.isTypeOnly) continue;
    const file = resolve(dirname(INDEX), (st.moduleSpecifier as ts.StringLiteral).text.replace(/\.js$/, '.ts'));
    for (const el of st.exportClause.elements) if (!el.isTypeOnly) out.push({ name: (el.propertyName ?? el.name).text, file });
  }
  return out;
}

/** The doc comment of the declaration of `name` in `file`, or undefined when it is not a function or class declared there. */
function docOf(name: string, file: string): { kind: string; doc: string } | undefined {
  for (const st of parse(file).statements) {
    const declared = (ts.isFunctionDeclaration(st) || ts.isClassDeclaration(st)) && st.name?.text === name;
    const isConst = ts.isVariableStatement(st) && st.declarationList.declarations.some((d) => ts.isIdentifier(d.name) && d.name.text === name);
    if (!declared && !isConst) continue;
    const docs = ts
      .getJSDocCommentsAndTags(st)
      .map((d) => d.getText())
      .join('\n');
    return { kind: isConst ? 'const' : ts.isClassDeclaration(st) ? 'class' : 'function', doc: docs };
  }
  return undefined;
}

const exports = valueExports();

test('src/index.ts exports a curated list: named exports, no `export *`', () => {
  assert.ok(exports.length >= 30 && exports.length <= 80, `${exports.length} value exports`);
  assert.doesNotMatch(readFileSync(INDEX, 'utf8'), /export \*/);
});

test('every function and class src/index.ts exports has a doc comment with an @example', () => {
  const missing: string[] = [];
  for (const { name, file } of exports) {
    const d = docOf(name, file);
    assert.ok(d, `${name}: not declared in ${file}`);
    if (d.kind === 'const' || name in NO_EXAMPLE_YET) continue;
    if (!/@example/.test(d.doc)) missing.push(`${name} (${file.slice(file.indexOf('src/'))})`);
  }
  assert.deepEqual(missing, []);
});

test('the list of exports without an example names only exports that still lack one', () => {
  for (const name of Object.keys(NO_EXAMPLE_YET)) {
    const e = exports.find((x) => x.name === name);
    assert.ok(e, `${name} is no longer exported`);
    assert.doesNotMatch(docOf(name, e.file)?.doc ?? '', /@example/, `${name} has its example now: remove it from NO_EXAMPLE_YET`);
  }
});
