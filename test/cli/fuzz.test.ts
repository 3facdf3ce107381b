/**
 * A seeded fuzz test of the CLI's flag parsing: hundreds of runs of every command, each a
 * valid tiny run (small models, a 48-image dataset) with one to three random mutations:
 * an option set to a random value (numbers out of range, NaN, words, paths that are
 * folders, files, inputs or nothing), a required option or argument dropped, an unknown
 * option or an extra argument added. Whatever the input, the user sees a result (exit 0)
 * or one error line (exit 1), never a stack trace (exit 2 is an internal error), and the
 * input files are never changed. In-process, so hundreds of runs take seconds; valid
 * values stay small (<= 3), so a run that passes validation finishes in a moment.
 * FUZZ_SEED=<n> runs other cases; FUZZ_LOG=1 prints every case and its last line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command, Option } from 'commander';
import { isOneLineError } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';
import { changes, runInProcess, snapshot, tinyIdx } from './in-process.js';
import { buildProgram } from '../../src/cli/program.js';
import { saveModel } from '../../src/onnx/proto.js';
import { createZooModel } from '../../src/nn/zoo.js';
import { setLabels } from '../../src/onnx/metadata.js';
import { Rng } from '../../src/util/random.js';

const CASES = 400;
const SEED = Number(process.env['FUZZ_SEED'] ?? 15);

const dir = tempDir('modelsmith-fuzz-');
const inputs = join(dir, 'inputs');
mkdirSync(inputs);
const data = tinyIdx(join(inputs, 'tiny'));
const save = (name: string, arch: string, opts: Parameters<typeof createZooModel>[1]): string => {
  const f = join(inputs, name);
  saveModel(createZooModel(arch, opts), f);
  return f;
};
const mlp = save('mlp.onnx', 'mlp', { hidden: [8] });
const la = save('la.onnx', 'lenet5', { width: 0.25 });
const lb = save('lb.onnx', 'lenet5', { width: 0.25, seed: 1 });
/** assemble needs what each output means: label metadata, as train and disassemble write */
const labelled = (name: string, seed: number): string => {
  const m = createZooModel('lenet5', { width: 0.25, seed });
  setLabels(
    m,
    Array.from({ length: 10 }, (_, c) => ({ dataset: 'tiny', class: c })),
  );
  const f = join(inputs, name);
  saveModel(m, f);
  return f;
};
const text = join(inputs, 'notes.txt');
writeFileSync(text, 'not a model\n');
const empty = join(inputs, 'empty.onnx');
writeFileSync(empty, '');
const outs = join(dir, 'out');
mkdirSync(outs);

/** A valid, tiny run of every command; `{o}` is replaced by a fresh output path per case. */
const BASELINES: string[][] = [
  ['zoo', 'list'],
  ['zoo', 'create', 'mlp', '--hidden', '4', '-o', '{o}.onnx'],
  ['inspect', la],
  ['eval', mlp, '--data', data],
  ['extract', la, '--to', 'fc1', '-o', '{o}.onnx'],
  ['train', 'mlp', '--hidden', '4', '--data', data, '--epochs', '1', '--batch', '8', '--no-test', '-o', '{o}.onnx'],
  ['disassemble', la, '--data', data, '--task', '0-2', '--samples', '2', '--recal-samples', '8', '-o', '{o}.onnx'],
  ['assemble', labelled('ca.onnx', 0), labelled('cb.onnx', 1), '--no-scale', '--no-test', '--overlap', 'merge', '-o', '{o}.onnx'],
  ['lineage', ...[1, 2, 3].map((seed) => save(`mlp88-${seed}.onnx`, 'mlp', { hidden: [8, 8], seed })), '-o', '{o}'],
  ['stitch', la, lb, '--data', data, '--epochs', '1', '--batch', '8', '--senders', 'stem', '--receivers', 'fc1', '-o', '{o}'],
  ['stitch', la, '--list-cuts'],
  ['cka', la, lb, '--data', data, '--samples', '8', '--senders', 'stem', '--receivers', 'fc1', '-o', '{o}'],
  [
    'lineage-zoo',
    '--trees',
    '1',
    '--children',
    '1',
    '--depth',
    '1',
    '--hidden',
    '4',
    '--steps',
    '1',
    '--root-steps',
    '1',
    '--batch',
    '8',
    '--data',
    data,
    '-o',
    '{o}',
  ],
  [
    'lego-experiment',
    '--model',
    la,
    '--data',
    data,
    '--tasks',
    '0-1',
    '--pairs',
    '0-1+2-3',
    '--samples',
    '1',
    '--finetune-epochs',
    '0',
    '--no-sweep',
    '-o',
    '{o}',
  ],
  // on 48 images the demo stops at its first batch of 64: a real demo is test/cli/demo.test.ts
  ['demo', '--data', data, '--epochs', '1', '-o', '{o}'],
];

const NUMBERS = ['0', '1', '2', '3', '-1', '-0', '0.5', '1.5', '1e-9', '1e309', '-1e309', 'NaN', 'Infinity', '-Infinity', '0x2', '1_000', ' 1', '2 '];
const WORDS = [
  '',
  ' ',
  'abc',
  'é中',
  'x'.repeat(300),
  '%s',
  '{}',
  'null',
  'true',
  '-',
  '--',
  '-o',
  '--json',
  ';',
  ';;',
  ',',
  ',,',
  '0-2',
  '2-0',
  '0-2,5',
  '0;1',
  '0;;1',
  '1,2',
  '0-1+2-3',
  '0+',
  '+',
  '1x28x28',
  '28x28',
  '0x0x0',
  '3x32x32',
  'sgd',
  'adam',
  'adamw',
  'rmsprop',
  'cosine',
  'step',
  'constant',
  'task',
  'lsq',
  'copy',
  'random',
  'pool',
  'flatten',
  'before',
  'after',
  'before,after',
  'sideways',
  'data',
  'init',
  'refuse',
  'merge',
  'auto',
  'parallel',
  'last',
  'best',
  'none',
  'crop:2,flip',
  'crop:0',
  'flip',
  'gap',
  'silhouette',
  'reference',
  'selected',
  'kurtosis',
  'norm',
  'parent-lower',
  'parent-higher',
  'arborescence',
  'rooted-mst',
  'ft',
  'lowrank',
  'spectral',
  'fp16,int8,pruned',
  'int3',
  'stem',
  'fc1',
  'logits',
  'conv2',
  'nope',
  '*',
  'fc*',
  '/[/',
  'conv1.*',
  'mlp',
  'lenet5',
  'resnet',
  'alexnet',
  'cpu',
  'cuda',
  'bogus',
];
/**
 * Output paths: bad ones, an existing file and folder of the case's own, and the case's
 * inputs (which must be refused). '.' and '..' only below the case's folder: a folder
 * output of '.' would be the test's working directory.
 */
const paths = (o: string, caseInputs: string[]): string[] => [
  '',
  `${o}/.`,
  `${o}/..`,
  `${o}/`,
  '/proc/x',
  join(text, 'sub'),
  `${o}-file`,
  `${o}-folder`,
  join(dir, 'missing', 'deeper', 'x.onnx'),
  `${o}.onnx`,
  o,
  ...caseInputs,
  ...(caseInputs.length ? [inputs] : []),
];
const DATA = [data, `idx:${data}`, `folder:${inputs}`, 'bogus', '', 'cifar10:/nonexistent', 'cifar10', 'idx:', 'folder:', text, inputs, `${data}/`];
const MODELS = [la, lb, mlp, text, empty, inputs, join(inputs, 'missing.onnx'), '', 'mlp', 'lenet5', 'alexnet'];

const OUTPUT_FLAGS = ['-o', '--output', '--checkpoint', '--masks'];

function valueFor(rng: Rng, option: string, o: string, args: string[]): string {
  const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)]!;
  // the inputs of this case: paths under inputs/ given as arguments, data or --truth, never as an output
  const caseInputs = args.filter((a, i) => a.startsWith(inputs) && !OUTPUT_FLAGS.includes(args[i - 1] ?? ''));
  if ([...OUTPUT_FLAGS, '--truth'].includes(option)) return pick(paths(o, caseInputs));
  if (['--data', '--scale-data'].includes(option)) return pick(DATA);
  if (['--model', '--model2'].includes(option)) return pick(MODELS);
  return rng.next() < 0.5 ? pick(NUMBERS) : pick(WORDS);
}

/** The command's own options, or (one time in five) the global ones (--json, --threads, --provider, ...). */
function optionsOf(rng: Rng, cmd: Command): Option[] {
  const global: Option[] = [];
  for (let c = cmd.parent; c; c = c.parent) global.push(...c.options);
  return (rng.next() < 0.2 || !cmd.options.length ? global : cmd.options).filter((x) => x.long !== '--help' && x.long !== '--version');
}

function findCommand(program: Command, names: string[]): Command {
  let c = program;
  for (const n of names) {
    const sub = c.commands.find((x) => x.name() === n);
    if (!sub) break;
    c = sub;
  }
  return c;
}

/** The baseline with 1 to 3 random mutations. */
function mutate(rng: Rng, program: Command, base: string[], o: string): string[] {
  const args = base.map((a) => a.replace('{o}', o));
  const cmd = findCommand(program, args.slice(0, 2));
  const n = 1 + rng.int(3);
  for (let k = 0; k < n; k++) {
    const r = rng.next();
    if (r < 0.6) {
      // an option with a random value (or a switch turned on); the last one given wins
      const options = optionsOf(rng, cmd);
      const opt = options[rng.int(options.length)]!;
      const name = opt.long ?? opt.short!;
      if (opt.required || opt.optional) args.push(name, valueFor(rng, name, o, args));
      else args.push(name);
    } else if (r < 0.75) {
      // drop a required option or -o with its value (never a size: its default may be big)
      // (not for the demo: its defaults are the shipped sample and runs/demo, minutes of work)
      const droppable = args[0] === 'demo' ? [] : args.map((a, i) => i).filter((i) => ['-o', '--data', '--model', '--task'].includes(args[i]!));
      if (droppable.length) args.splice(droppable[rng.int(droppable.length)]!, 2);
    } else if (r < 0.9) {
      // a positional argument (a model file, or train's zoo name) replaced
      const isPositional = (i: number): boolean => i > 0 && (args[i]!.startsWith('/') || args[i] === 'mlp') && !args[i - 1]!.startsWith('-');
      const positional = args.map((a, i) => i).filter(isPositional);
      const value = rng.next() < 0.5 ? MODELS[rng.int(MODELS.length)]! : WORDS[rng.int(WORDS.length)]!;
      if (positional.length) args[positional[rng.int(positional.length)]!] = value;
    } else {
      args.push(rng.next() < 0.5 ? '--no-such-option' : WORDS[rng.int(WORDS.length)]!);
    }
  }
  return args;
}

test('every baseline is a valid run (the demo stops at its first batch on 48 images)', async () => {
  for (const [i, base] of BASELINES.entries()) {
    const r = await runInProcess(base.map((a) => a.replace('{o}', join(outs, `base-${i}`))));
    if (base[0] === 'demo') assert.ok(isOneLineError(r) && /fewer than one batch/.test(r.stderr), r.stderr);
    else assert.equal(r.code, 0, `${base.join(' ')}:\n${r.stderr}`);
  }
});

test(`${CASES} random flag values over every command: a result or one error line, never a stack trace`, async () => {
  const rng = new Rng(SEED);
  const program = buildProgram();
  const before = snapshot(inputs);
  const slow: string[] = [];
  const codes = new Map<number, number>();
  for (let i = 0; i < CASES; i++) {
    const base = BASELINES[i % BASELINES.length]!;
    const o = join(outs, `case-${i}`);
    writeFileSync(`${o}-file`, 'an existing file\n');
    mkdirSync(`${o}-folder`);
    const args = mutate(rng, program, base, o);
    const t0 = Date.now();
    const r = await runInProcess(args);
    const seconds = (Date.now() - t0) / 1000;
    const shown = args.map((a) => JSON.stringify(a)).join(' ');
    codes.set(r.code, (codes.get(r.code) ?? 0) + 1);
    assert.ok(r.code === 0 || r.code === 1, `case ${i}: modelsmith ${shown}\nexit code ${r.code}\n${r.stderr}`);
    if (r.code === 1) assert.ok(isOneLineError(r), `case ${i}: modelsmith ${shown}\nnot one error line:\n${r.stderr}`);
    assert.doesNotMatch(r.stderr + r.stdout, /internal error|\n\s+at \S+ \(/, `case ${i}: modelsmith ${shown}`);
    if (process.env['FUZZ_LOG']) console.log(`${i} ${r.code} ${seconds.toFixed(2)}s ${shown} => ${r.stderr.trim().split('\n').pop()}`);
    if (seconds > 5) slow.push(`${seconds.toFixed(1)} s: ${shown}`);
  }
  assert.deepEqual(changes(before, snapshot(inputs)), [], 'inputs changed');
  // both outcomes occur: the mutations are neither all harmless nor all fatal
  assert.ok((codes.get(0) ?? 0) > CASES / 10 && (codes.get(1) ?? 0) > CASES / 3, JSON.stringify([...codes]));
  if (slow.length) console.log(`slow cases:\n${slow.join('\n')}`);
});
