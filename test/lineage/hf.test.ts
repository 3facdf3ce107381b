import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { closeSources, expandInputs, isHfFolder, modelName, openSources } from '../../src/lineage/sources.js';
import { selectLayers } from '../../src/lineage/select.js';
import { cardTruth, parseCardFields, readFolderCard, recoveredCards, writeModelCards } from '../../src/lineage/model-cards.js';
import { recoverLineage } from '../../src/lineage/recover.js';
import { quantizeInt8 } from '../../src/lineage/zoo/variants.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { float32 } from '../../src/onnx/tensor.js';
import { Rng } from '../../src/util/random.js';
import { tempDir } from '../helpers/paths.js';
import { assertUserError } from '../helpers/assertions.js';
import { isOneLineError, runCli } from '../helpers/cli.js';

type T = ReturnType<typeof float32>;

/** torchvision-style ViT weight names for one encoder layer of hidden size d. */
function vitWeights(rng: Rng, d = 8): Record<string, T> {
  const m = (r: number, c: number): T =>
    float32(
      [r, c],
      Float32Array.from({ length: r * c }, () => rng.normal()),
    );
  const p = 'encoder.layers.encoder_layer_0';
  return {
    [`${p}.self_attention.in_proj_weight`]: m(3 * d, d),
    [`${p}.self_attention.out_proj.weight`]: m(d, d),
    [`${p}.mlp.0.weight`]: m(2 * d, d),
    [`${p}.mlp.3.weight`]: m(d, 2 * d),
    [`${p}.ln_1.weight`]: float32([d], new Float32Array(d).fill(1)),
    'heads.head.weight': m(3, d),
    'conv_proj.weight': float32([d, 1, 2, 2], new Float32Array(4 * d).fill(0.1)),
  };
}

function hfFolder(dir: string, weights: Record<string, T>, card?: string, config: unknown = { model_type: 'vit' }): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  writeSafetensors(join(dir, 'model.safetensors'), weights, { format: 'pt' });
  if (card !== undefined) writeFileSync(join(dir, 'README.md'), card);
  return dir;
}

/** The same weights as a sharded checkpoint: two shards and model.safetensors.index.json. */
function shardedFolder(dir: string, weights: Record<string, T>, card?: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), '{"model_type": "vit"}');
  const names = Object.keys(weights);
  const half = Math.ceil(names.length / 2);
  const shards = [names.slice(0, half), names.slice(half)];
  const map: Record<string, string> = {};
  shards.forEach((s, k) => {
    const f = `model-0000${k + 1}-of-00002.safetensors`;
    writeSafetensors(join(dir, f), Object.fromEntries(s.map((n) => [n, weights[n]!])));
    for (const n of s) map[n] = f;
  });
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 1 }, weight_map: map }));
  if (card !== undefined) writeFileSync(join(dir, 'README.md'), card);
  return dir;
}

const card = (base?: string, relation?: string): string =>
  ['---', 'license: mit', ...(base ? [`base_model: ${base}`] : []), ...(relation ? [`base_model_relation: ${relation}`] : []), '---', '# a model', ''].join(
    '\n',
  );

test('Hugging Face folders (single file and sharded) are models named by their folder; transformer weights are selected by default', () => {
  const root = tempDir();
  const rng = new Rng(1);
  const a = hfFolder(join(root, 'vit-a'), vitWeights(rng));
  shardedFolder(join(root, 'vit-b.v2'), vitWeights(rng));
  writeSafetensors(join(root, 'loose.safetensors'), vitWeights(rng));
  mkdirSync(join(root, 'not-a-model'));
  writeFileSync(join(root, 'not-a-model', 'config.json'), '{}');
  assert.ok(isHfFolder(a) && !isHfFolder(join(root, 'not-a-model')));
  assert.deepEqual(expandInputs([root]).map(modelName), ['loose', 'vit-a', 'vit-b.v2']);
  assert.deepEqual(expandInputs([a]).map(modelName), ['vit-a'], 'a model folder given directly is one model');
  const ms = openSources([root]);
  try {
    assert.deepEqual(
      ms.map((m) => m.name),
      ['loose', 'vit-a', 'vit-b.v2'],
    );
    assert.deepEqual(ms[1]!.config, { model_type: 'vit' });
    const sel = selectLayers(ms);
    assert.match(sel.rule, /transformer attention and MLP weights, torchvision ViT names/);
    assert.deepEqual(sel.layers.map((l) => l.name).sort(), [
      'encoder.layers.encoder_layer_0.mlp.0.weight',
      'encoder.layers.encoder_layer_0.mlp.3.weight',
      'encoder.layers.encoder_layer_0.self_attention.in_proj_weight',
      'encoder.layers.encoder_layer_0.self_attention.out_proj.weight',
    ]);
    const w = ms[2]!.read('encoder.layers.encoder_layer_0.mlp.3.weight');
    assert.equal(w.length, 8 * 16, 'a tensor of the second shard reads back');
  } finally {
    closeSources(ms);
  }
});

test('other transformer naming conventions select their attention and MLP weights (Hugging Face ViT, timm, Llama)', () => {
  const root = tempDir();
  const m = (r: number, c: number): T => float32([r, c], new Float32Array(r * c).fill(1));
  const cases: [Record<string, T>, string[]][] = [
    [
      {
        'vit.encoder.layer.0.attention.attention.query.weight': m(4, 4),
        'vit.encoder.layer.0.attention.output.dense.weight': m(4, 4),
        'vit.encoder.layer.0.intermediate.dense.weight': m(8, 4),
        'vit.encoder.layer.0.output.dense.weight': m(4, 8),
        'classifier.weight': m(2, 4),
        'vit.embeddings.position_embeddings': float32([1, 5, 4]),
      },
      ['Hugging Face ViT/BERT', '4'],
    ],
    [
      { 'blocks.0.attn.qkv.weight': m(12, 4), 'blocks.0.attn.proj.weight': m(4, 4), 'blocks.0.mlp.fc1.weight': m(8, 4), 'head.weight': m(2, 4) },
      ['timm ViT', '3'],
    ],
    [{ 'model.layers.0.self_attn.q_proj.weight': m(4, 4), 'model.layers.0.mlp.down_proj.weight': m(4, 8), 'lm_head.weight': m(9, 4) }, ['Llama/Mistral', '2']],
  ];
  cases.forEach(([weights, [family, count]], i) => {
    const dir = join(root, `c${i}`);
    mkdirSync(dir);
    writeSafetensors(join(dir, 'a.safetensors'), weights);
    writeSafetensors(join(dir, 'b.safetensors'), weights);
    const ms = openSources([dir]);
    const sel = selectLayers(ms);
    closeSources(ms);
    assert.ok(sel.rule.includes(family), sel.rule);
    assert.equal(String(sel.layers.length), count, `${family}: ${sel.layers.map((l) => l.name).join(', ')}`);
  });
});

test('bad Hugging Face folders are refused naming the file', () => {
  const root = tempDir();
  const rng = new Rng(2);
  const bad = (name: string): string => hfFolder(join(root, name), vitWeights(rng));
  writeFileSync(join(bad('notjson'), 'config.json'), '{"model_type": ');
  assertUserError(() => openSources([join(root, 'notjson')]), 'notjson/config.json', 'not valid JSON');
  writeFileSync(join(bad('array'), 'config.json'), '[1, 2]');
  assertUserError(() => openSources([join(root, 'array')]), 'array/config.json', 'JSON object');
  writeFileSync(join(bad('huge'), 'config.json'), `{"pad": "${'x'.repeat(1024 * 1024)}"}`);
  assertUserError(() => openSources([join(root, 'huge')]), 'huge/config.json', 'too large');
  // weights that lead out of the folder
  const outside = join(root, 'elsewhere.safetensors');
  writeSafetensors(outside, vitWeights(rng));
  const link = join(root, 'link');
  mkdirSync(link);
  writeFileSync(join(link, 'config.json'), '{}');
  symlinkSync(outside, join(link, 'model.safetensors'));
  assertUserError(() => openSources([link]), 'outside the model folder');
  // a sharded index naming a shard outside its folder
  const esc = shardedFolder(join(root, 'escape'), vitWeights(rng));
  writeFileSync(join(esc, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'heads.head.weight': '../elsewhere.safetensors' } }));
  assertUserError(() => openSources([esc]), 'must be a file name inside');
  // a card whose front matter never closes
  const unclosed = hfFolder(join(root, 'unclosed'), vitWeights(rng), '---\nbase_model: x\n# no end\n');
  assertUserError(() => readFolderCard(unclosed), 'README.md', 'not closed');
});

test('card front matter: base_model as a name, a quoted name, a flow list or a block list; base_model_relation', () => {
  const p = (t: string) => parseCardFields(t, 'README.md');
  assert.equal(p('# no front matter\nbase_model: x\n'), undefined);
  assert.deepEqual(p('---\nlicense: mit\n---\n'), { base_model: [] });
  assert.deepEqual(p('---\nbase_model: google/vit-base  # the root\nbase_model_relation: adapter\n---\n'), {
    base_model: ['google/vit-base'],
    base_model_relation: 'adapter',
  });
  assert.deepEqual(p('---\nbase_model: "org/a # b"\n---\n'), { base_model: ['org/a # b'] });
  assert.deepEqual(p("---\nbase_model: ['a', b]\n---\n"), { base_model: ['a', 'b'] });
  assert.deepEqual(p('---\ntags:\n- x\nbase_model:\n  - org/one\n  # comment\n  - two\nlicense: mit\n---\n'), { base_model: ['org/one', 'two'] });
  assertUserError(() => p('---\nbase_model: {a: 1}\n---\n'), 'not a mapping');
  assertUserError(() => p('---\nbase_model: [a, b\n---\n'), 'must end with "]"');
  assertUserError(() => p('---\nbase_model: ""\n---\n'), 'empty or malformed');
});

test('cards as truth: base_model resolved by folder name or the last part of org/name; merges and outside bases noted', () => {
  const root = tempDir();
  const rng = new Rng(3);
  const nodes = [
    ['root', undefined],
    ['kid', card('acme/root', 'finetune')],
    ['grandkid', card('kid')],
    ['outsider', card('meta/llama')],
    ['merged', '---\nbase_model:\n- root\n- kid\nbase_model_relation: merge\n---\n'],
    ['plain', undefined],
  ].map(([name, c]) => ({ name: name!, path: hfFolder(join(root, name!), vitWeights(rng), c) }));
  const t = cardTruth(nodes)!;
  assert.deepEqual(t.truth.edges, [
    ['root', 'kid'],
    ['kid', 'grandkid'],
  ]);
  assert.equal(t.cards, 4);
  assert.equal(t.notes.length, 2);
  assert.match(t.notes.join('\n'), /outsider: its card's base_model meta\/llama is not among the models/);
  assert.match(t.notes.join('\n'), /merged: its card names 2 base models \(a merge\)/);
  assert.equal(cardTruth(nodes.filter((n) => n.name === 'root' || n.name === 'plain')), undefined, 'no card names a base: no truth');
  const cyc = tempDir();
  const cycle = [
    ['x', card('y')],
    ['y', card('x')],
  ].map(([name, c]) => ({ name: name!, path: hfFolder(join(cyc, name!), vitWeights(rng), c) }));
  assertUserError(() => cardTruth(cycle), 'model cards', 'cycle');
});

test('recovered model cards: adapter for a low-rank update, finetune for a full one, quantized for an int8 copy; JSON and front matter', async () => {
  const root = tempDir();
  const rng = new Rng(4);
  const base = vitWeights(rng, 16);
  const names = Object.keys(base).filter((n) => base[n]!.dims.length === 2);
  const derive = (f: (v: Float32Array, rows: number, cols: number) => Float32Array): Record<string, T> =>
    Object.fromEntries(Object.entries(base).map(([n, t]) => [n, names.includes(n) ? float32(t.dims, f(t.data as Float32Array, t.dims[0]!, t.dims[1]!)) : t]));
  const lowRank = derive((v, rows, cols) => {
    const u = Float32Array.from({ length: rows }, () => rng.normal()),
      w = Float32Array.from({ length: cols }, () => rng.normal());
    return v.map((x, i) => x + 0.05 * u[Math.floor(i / cols)]! * w[i % cols]!);
  });
  const full = derive((v) => v.map((x) => x + 0.05 * rng.normal()));
  const quant = derive((v) => quantizeInt8(v).values);
  hfFolder(join(root, 'base'), base);
  hfFolder(join(root, 'lora-kid'), lowRank, card('base', 'adapter'));
  hfFolder(join(root, 'ft-kid'), full, card('base', 'finetune'));
  hfFolder(join(root, 'int8-kid'), quant, card('base', 'quantized'));
  const forest = await recoverLineage([root], { clusters: 1, mode: 'ft' });
  // the relation is judged on the edges as recovered; fix them to the truth so every kind is checked
  const parentOf: Record<string, string | null> = { base: null, 'lora-kid': 'base', 'ft-kid': 'base', 'int8-kid': 'base' };
  forest.nodes = forest.nodes.map((n) => ({ ...n, parent: parentOf[n.name]! }));
  const cards = recoveredCards(forest);
  const by = new Map(cards.map((c) => [c.model, c]));
  assert.deepEqual([...by.values()].map((c) => [c.model, c.base_model, c.base_model_relation]).sort(), [
    ['base', null, null],
    ['ft-kid', 'base', 'finetune'],
    ['int8-kid', 'base', 'quantized'],
    ['lora-kid', 'base', 'adapter'],
  ]);
  assert.match(by.get('lora-kid')!.evidence, /rank of the update 1\/16, 1\/16, 1\/16, 1\/16 on 4 examined layers: low rank/);
  assert.match(by.get('int8-kid')!.evidence, /at most 256 distinct values in each of 1 examined layers/);
  assert.deepEqual(by.get('ft-kid')!.declared, { base_model: 'base', base_model_relation: 'finetune', from: 'model card' });
  const out = tempDir();
  const files = writeModelCards(out, cards);
  const json = JSON.parse(readFileSync(files.json, 'utf8')) as { cards: { model: string; file: string }[] };
  assert.equal(json.cards.length, 4);
  const md = readFileSync(join(out, json.cards.find((c) => c.model === 'lora-kid')!.file), 'utf8');
  assert.deepEqual(parseCardFields(md, 'snippet'), { base_model: ['base'], base_model_relation: 'adapter' }, 'the snippet is a card the reader takes back');
  assert.deepEqual(parseCardFields(readFileSync(join(out, 'model-cards', 'base.md'), 'utf8'), 'root snippet'), { base_model: [] });
});

test('lineage CLI on Hugging Face folders: scored from the cards without --truth, model-cards.json written; a bad folder is one line', () => {
  const root = tempDir();
  const rng = new Rng(5);
  const base = vitWeights(rng, 8);
  const kid = Object.fromEntries(
    Object.entries(base).map(([n, t]) => [
      n,
      float32(
        t.dims,
        (t.data as Float32Array).map((x) => x + 0.01 * rng.normal()),
      ),
    ]),
  );
  const grandkid = Object.fromEntries(
    Object.entries(kid).map(([n, t]) => [
      n,
      float32(
        t.dims,
        (t.data as Float32Array).map((x) => x + 0.01 * rng.normal()),
      ),
    ]),
  );
  hfFolder(join(root, 'a'), base);
  shardedFolder(join(root, 'b'), kid, card('org/a', 'finetune'));
  hfFolder(join(root, 'c'), grandkid, card('b', 'finetune'));
  const out = join(tempDir(), 'out');
  const r = runCli(['lineage', root, '--clusters', '1', '-o', out, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { score: { trueEdges: number }; truthFrom: string; modelCards: { relations: Record<string, number> } };
  assert.equal(j.truthFrom, 'model cards');
  assert.equal(j.score.trueEdges, 2);
  assert.equal(j.modelCards.relations['finetune'], 2);
  assert.ok(existsSync(join(out, 'model-cards.json')) && existsSync(join(out, 'model-cards', 'a.md')));
  writeFileSync(join(root, 'c', 'config.json'), 'nope');
  const bad = runCli(['lineage', root, '--clusters', '1', '-o', join(tempDir(), 'o2')]);
  assert.ok(isOneLineError(bad), bad.stderr);
  assert.match(bad.stderr, /c\/config.json is not valid JSON/);
});
