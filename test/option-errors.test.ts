/**
 * Library errors speak the library's terms: no error built outside src/cli names a CLI flag.
 * An error about an option is an OptionError (src/util/errors.ts) that names the option's key,
 * and the CLI renders it with its flag (src/cli/flags.ts). Read with TypeScript's parser, so
 * only text inside error constructions counts (argv a process builds for its child is not an
 * error), and flags passed to helpers as whole strings are caught too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { packagePath } from '../src/util/paths.js';

const SRC = packagePath('src');
/** A flag as a user types it: `--batch`, `--no-scale` (not `a -- b`, not CSS `var(--fg)`). */
const FLAG = /(^|[\s"'`(,;/])--[a-z][a-z0-9-]*/;
/** Files that pass flags to a child process or read their own argv (a flag there is not a message). */
const ARGV_FILES: Readonly<Record<string, string>> = {
  'stitch/worker.ts': 'the grid worker process reads its own argv',
};

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? files(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** The texts of string and template literals below `node`. */
function texts(node: ts.Node): { text: string; node: ts.Node }[] {
  const out: { text: string; node: ts.Node }[] = [];
  const visit = (n: ts.Node): void => {
    if (ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n) || ts.isTemplateHead(n) || ts.isTemplateMiddle(n) || ts.isTemplateTail(n))
      out.push({ text: n.text, node: n });
    n.forEachChild(visit);
  };
  visit(node);
  return out;
}

/** Places in a source where an error message, or a helper's argument, names a flag. */
function flagsIn(sf: ts.SourceFile): string[] {
  const found: string[] = [];
  const where = (n: ts.Node, text: string): string =>
    `${relative(SRC, sf.fileName)}:${sf.getLineAndCharacterOfPosition(n.getStart()).line + 1}: ${text.slice(0, 100)}`;
  const visit = (n: ts.Node): void => {
    // new UserError(...), new OptionError(...), new Error(...), check(cond, message)
    const isError = ts.isNewExpression(n) && ts.isIdentifier(n.expression) && /Error$/.test(n.expression.text);
    const isCheck = ts.isCallExpression(n) && ts.isIdentifier(n.expression) && n.expression.text === 'check';
    if (isError || isCheck) for (const t of texts(n)) if (FLAG.test(t.text)) found.push(where(t.node, t.text));
    // a flag handed to a helper that builds the message: positiveInt('--trees', ...)
    if (ts.isCallExpression(n))
      for (const a of n.arguments)
        if ((ts.isStringLiteral(a) || ts.isNoSubstitutionTemplateLiteral(a)) && /^--[a-z][a-z0-9-]*$/.test(a.text)) found.push(where(a, a.text));
    n.forEachChild(visit);
  };
  visit(sf);
  return [...new Set(found)];
}

const parse = (file: string, code = readFileSync(file, 'utf8')): ts.SourceFile => ts.createSourceFile(file, code, ts.ScriptTarget.Latest, true);

test('no error outside src/cli names a CLI flag: errors name options, the CLI maps them to flags', () => {
  const library = files(SRC).filter((f) => !relative(SRC, f).startsWith('cli/') && !(relative(SRC, f) in ARGV_FILES));
  assert.ok(library.length > 100, `${library.length} files`);
  assert.deepEqual(
    library.flatMap((f) => flagsIn(parse(f))),
    [],
  );
});

test('the check sees a flag in an error message and in a helper argument, and nothing else', () => {
  const cases: [string, number][] = [
    ['throw new UserError(`--batch must be positive, got ${n}`);', 1],
    ["throw new UserError('lower --lr or clip');", 1],
    ['check(ok, () => `pass --no-scale`);', 1],
    ["positiveInt('--trees', 3);", 1],
    ["throw new OptionError((o) => `${o('batchSize')} must be positive`);", 0],
    ["spawn(node, ['--threads', '2']);", 0],
    ["const css = 'a { color: var(--fg); }';", 0],
    ['throw new UserError(`a -- b`);', 0],
  ];
  for (const [code, n] of cases) assert.equal(flagsIn(parse(join(SRC, 'probe.ts'), code)).length, n, code);
});
