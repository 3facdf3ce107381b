import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeLineageZoo } from '../../src/lineage/zoo/make.js';
import { matrixRank } from '../../src/lineage/rank.js';
import { parseCardFields } from '../../src/lineage/model-cards.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { runCli, isOneLineError } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';

/** A ViT small enough for the suite: 7x7 patches of 28x28, one layer, hidden 8. */
const TINY = { arch: 'vit', patch: 7, layers: 1, hidden: [8], heads: 2, mlp: 16 } as const;
const P = 'encoder.layers.encoder_layer_0';
const ADAPTED = [`${P}.self_attention.in_proj_weight`, `${P}.self_attention.out_proj.weight`, `${P}.mlp.0.weight`, `${P}.mlp.3.weight`];

function read(dir: string, name: string): Map<string, { shape: number[]; v: Float32Array }> {
  const f = openSafetensors(join(dir, `${name}.safetensors`));
  try {
    return new Map(f.tensors.map((t) => [t.name, { shape: t.shape, v: f.readFloat32(t.name) }]));
  } finally {
    f.close();
  }
}

const differs = (a: Float32Array, b: Float32Array): boolean => a.some((v, i) => v !== b[i]);

test('lineage-zoo --arch vit, full fine-tuning: every weight moves; Hugging Face folders (sharded) carry the truth in their cards', async () => {
  const dir = join(tempDir(), 'vit-ft');
  const r = await makeLineageZoo({
    data: 'fashion-mnist-sample',
    outDir: dir,
    trees: 1,
    children: 2,
    depth: 1,
    ...TINY,
    hidden: [...TINY.hidden],
    steps: 6,
    rootSteps: 6,
    batchSize: 16,
    seed: 3,
    threads: 1,
    hf: true,
    hfShardBytes: 4000,
  });
  assert.equal(r.models.length, 3);
  assert.deepEqual(r.settings.vit, { patch: 7, layers: 1, hidden: 8, heads: 2, mlp: 16 });
  for (const m of r.models.filter((x) => x.parent !== null)) {
    const child = read(dir, m.name),
      parent = read(dir, m.parent!);
    for (const w of [...ADAPTED, 'conv_proj.weight', 'encoder.pos_embedding', 'class_token', `${P}.ln_1.weight`, 'heads.head.weight']) {
      assert.ok(differs(child.get(w)!.v, parent.get(w)!.v), `${m.name}: ${w} is trained`);
    }
  }
  assert.equal(r.hf?.models, 3);
  assert.equal(r.hf?.sharded, 3, 'every model is over 4000 bytes, so each is sharded');
  const hf = `${dir}-hf`;
  for (const m of r.models) {
    const files = readdirSync(join(hf, m.name)).sort();
    assert.ok(files.includes('config.json') && files.includes('model.safetensors.index.json') && files.includes('README.md'), files.join(','));
    const card = parseCardFields(readFileSync(join(hf, m.name, 'README.md'), 'utf8'), m.name)!;
    assert.deepEqual(card, m.parent === null ? { base_model: [] } : { base_model: [m.parent], base_model_relation: 'finetune' });
    const config = JSON.parse(readFileSync(join(hf, m.name, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config['model_type'], 'vit');
    assert.equal(config['hidden_size'], 8);
  }
  // the folders are read back, named by folder, and scored from their cards
  const out = join(tempDir(), 'out');
  const cli = runCli(['--threads', '1', 'lineage', hf, '--clusters', '1', '-o', out, '--json']);
  assert.equal(cli.code, 0, cli.stderr);
  const j = JSON.parse(cli.stdout) as {
    nodes: { name: string }[];
    truthFrom: string;
    score: { trueEdges: number };
    selection: { rule: string; layers: { name: string }[] };
  };
  assert.deepEqual(j.nodes.map((n) => n.name).sort(), r.models.map((m) => m.name).sort());
  assert.equal(j.truthFrom, 'model cards');
  assert.equal(j.score.trueEdges, 2);
  assert.match(j.selection.rule, /transformer attention and MLP weights/);
  assert.deepEqual(j.selection.layers.map((l) => l.name).sort(), [...ADAPTED].sort());
  assert.ok(existsSync(join(out, 'model-cards.json')));
});

test('lineage-zoo --arch vit --lowrank: LoRA on attention and MLP weights (update rank <= r), the rest frozen but the head; cards say adapter', async () => {
  const dir = join(tempDir(), 'vit-lora');
  const r = await makeLineageZoo({
    data: 'fashion-mnist-sample',
    outDir: dir,
    trees: 1,
    children: 2,
    depth: 1,
    ...TINY,
    hidden: [...TINY.hidden],
    lowrank: [2],
    steps: 40,
    rootSteps: 6,
    batchSize: 16,
    seed: 5,
    threads: 1,
  });
  for (const m of r.models.filter((x) => x.parent !== null)) {
    assert.deepEqual(m.loraLayers, ADAPTED);
    const child = read(dir, m.name),
      parent = read(dir, m.parent!);
    for (const w of ADAPTED) {
      const {
        shape: [rows, cols],
        v,
      } = child.get(w)!;
      const k = matrixRank(
        v.map((x, i) => x - parent.get(w)!.v[i]!),
        rows!,
        cols!,
      );
      assert.ok(k >= 1 && k <= 2, `${m.name} ${w}: update rank ${k} should be 1..2`);
    }
    for (const w of ['conv_proj.weight', 'encoder.pos_embedding', 'class_token', `${P}.ln_1.weight`, `${P}.self_attention.in_proj_bias`]) {
      assert.ok(!differs(child.get(w)!.v, parent.get(w)!.v), `${m.name}: ${w} is frozen`);
    }
    assert.ok(differs(child.get('heads.head.weight')!.v, parent.get('heads.head.weight')!.v), 'the head is trained');
  }
  const out = join(tempDir(), 'out');
  const cli = runCli(['--threads', '1', 'lineage', dir, '--clusters', '1', '--truth', join(dir, 'truth.json'), '-o', out, '--json']);
  assert.equal(cli.code, 0, cli.stderr);
  const j = JSON.parse(cli.stdout) as { modelCards: { relations: Record<string, number>; agreement: { agree: number; compared: number } } };
  assert.deepEqual(j.modelCards.relations, { finetune: 0, adapter: 2, quantized: 0 }, 'a merged LoRA update is low rank whichever edge was recovered');
  assert.equal(j.modelCards.agreement.agree, j.modelCards.agreement.compared, 'agrees with the zoo records');
});

test('lineage-zoo: ViT options are checked before any work', () => {
  const out = join(tempDir(), 'z');
  const cases: [string[], RegExp][] = [
    [['--arch', 'vit', '--patch', '5'], /28x28 is not divisible into 5x5 patches/],
    [['--arch', 'vit', '--hidden', '8,8'], /--hidden for --arch vit is the one embedding size/],
    [['--arch', 'vit', '--hidden', '10', '--heads', '4'], /hidden size 10 must be a multiple of heads \(4\)/],
    [['--patch', '4'], /--patch applies only to --arch vit/],
  ];
  for (const [args, msg] of cases) {
    const r = runCli([
      'lineage-zoo',
      '--data',
      'fashion-mnist-sample',
      '--trees',
      '1',
      '--children',
      '1',
      '--depth',
      '1',
      '--steps',
      '2',
      '--root-steps',
      '2',
      ...args,
      '-o',
      out,
    ]);
    assert.ok(isOneLineError(r), `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, msg);
  }
  assert.ok(!existsSync(out));
});
