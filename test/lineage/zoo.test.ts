import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { makeLineageZoo, type ZooModelRecord } from '../../src/lineage/zoo/make.js';
import { planZoo } from '../../src/lineage/zoo/plan.js';
import { treeSize, zooSettings, parseRanks, parseVariants } from '../../src/lineage/zoo/options.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { UserError } from '../../src/util/errors.js';
import { tempDir } from '../helpers/paths.js';
import { assertUserError } from '../helpers/assertions.js';

const TINY = { data: 'fashion-mnist-sample', hidden: [24, 24, 24], steps: 12, rootSteps: 30, batchSize: 64, threads: 1 };

const bytes = (dir: string, name: string): Buffer => readFileSync(join(dir, `${name}.safetensors`));

function tensors(dir: string, name: string): Map<string, Float32Array> {
  const f = openSafetensors(join(dir, `${name}.safetensors`));
  try {
    return new Map(f.tensors.map((t) => [t.name, f.readFloat32(t.name)]));
  } finally {
    f.close();
  }
}

const equal = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

test('a zoo has the tree shape, truth and records its options ask for; children really differ from their parents', async () => {
  const dir = join(tempDir(), 'zoo');
  const r = await makeLineageZoo({ ...TINY, outDir: dir, trees: 2, children: 2, depth: 2, seed: 3 });
  assert.equal(r.models.length, 2 * 7);
  assert.equal(r.trained, 14);
  const truth = JSON.parse(readFileSync(join(dir, 'truth.json'), 'utf8')) as { edges: [string, string][] };
  assert.equal(truth.edges.length, 12);
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.safetensors'))
    .map((f) => f.replace(/\.safetensors$/, ''))
    .sort();
  assert.deepEqual(files, r.models.map((m) => m.name).sort());
  const byName = new Map(r.models.map((m) => [m.name, m]));
  // every edge joins a depth-d model to a depth-(d+1) model of the same tree
  for (const [p, c] of truth.edges) {
    const pm = byName.get(p)!,
      cm = byName.get(c)!;
    assert.equal(cm.parent, p);
    assert.equal(pm.tree, cm.tree);
    assert.equal(cm.depth, pm.depth + 1);
  }
  for (const t of [0, 1]) {
    const inTree = r.models.filter((m) => m.tree === t);
    assert.deepEqual(
      [0, 1, 2].map((d) => inTree.filter((m) => m.depth === d).length),
      [1, 2, 4],
    );
  }
  // names are opaque: not in training (tree) order
  assert.notDeepEqual(
    r.models.map((m) => m.name),
    [...r.models.map((m) => m.name)].sort(),
  );
  const zoo = JSON.parse(readFileSync(join(dir, 'zoo.json'), 'utf8')) as { models: ZooModelRecord[]; settings: { seed: number } };
  assert.equal(zoo.models.length, 14);
  assert.equal(zoo.settings.seed, 3);
  for (const m of r.models) {
    assert.ok(m.testAccuracy >= 0 && m.testAccuracy <= 1 && Number.isFinite(m.trainLoss));
    if (m.parent === null) {
      assert.ok(m.testAccuracy > 0.5, `${m.name}: a root's test accuracy ${m.testAccuracy} should be well above chance`);
      assert.equal(m.task.kind, 'all');
      continue;
    }
    const parent = byName.get(m.parent)!;
    if (m.task.kind === 'subset') {
      assert.deepEqual(m.task.outputOf, parent.task.outputOf, "a subset task keeps its parent's head");
      assert.ok(m.task.classes.length >= 2 && m.task.classes.length < 10);
    } else {
      assert.equal(m.task.kind, 'permutation');
      assert.deepEqual(
        [...m.task.outputOf].sort((a, b) => a - b),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
    }
    // full fine-tuning moves every tensor, and differently from the parent
    const a = tensors(dir, m.name),
      b = tensors(dir, m.parent);
    assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
    for (const [k, v] of a) assert.ok(!equal(v, b.get(k)!), `${m.name}.${k} should differ from its parent's`);
  }
  // learning rates and seeds vary per model
  assert.ok(new Set(r.models.filter((m) => m.parent).map((m) => m.lr)).size > 1);
  assert.equal(new Set(r.models.map((m) => m.seed)).size, 14);
});

test('a zoo resumes: only missing models are trained, and the same seed gives identical bytes', async () => {
  const dir = join(tempDir(), 'zoo');
  const opts = { ...TINY, outDir: dir, trees: 1, children: 2, depth: 2, seed: 5 };
  const first = await makeLineageZoo(opts);
  const mid = first.models.find((m) => m.depth === 1)!;
  const leaf = first.models.find((m) => m.depth === 2)!;
  const before = { mid: bytes(dir, mid.name), leaf: bytes(dir, leaf.name) };
  rmSync(join(dir, `${mid.name}.safetensors`));
  rmSync(join(dir, `${leaf.name}.safetensors`));
  const again = await makeLineageZoo(opts);
  assert.equal(again.trained, 2);
  assert.equal(again.reused, 5);
  assert.ok(bytes(dir, mid.name).equals(before.mid), 'a retrained model is byte-identical');
  assert.ok(bytes(dir, leaf.name).equals(before.leaf));
  // a different zoo seed gives different models
  const other = join(tempDir(), 'zoo');
  const r2 = await makeLineageZoo({ ...opts, outDir: other, seed: 6, depth: 0 });
  assert.equal(r2.models.length, 1);
  const root1 = first.models.find((m) => m.parent === null)!;
  assert.ok(!equal(tensors(dir, root1.name).get('fc2.weight')!, tensors(other, r2.models[0]!.name).get('fc2.weight')!));
  // continuing a folder with other settings is refused
  await assert.rejects(
    makeLineageZoo({ ...opts, steps: 13 }),
    (e: unknown) => e instanceof UserError && /holds a zoo made with steps = 12, not 13/.test(e.message),
  );
});

test('zoo options: bad values are clear errors; tree sizes and plans follow the options', () => {
  const base = { data: 'fashion-mnist-sample', outDir: 'x' };
  assertUserError(() => zooSettings({ ...base, trees: 0 }), 'trees', 'positive integer', '0');
  assertUserError(() => zooSettings({ ...base, children: 1.5 }), 'children');
  assertUserError(() => zooSettings({ ...base, depth: -1 }), 'depth');
  assertUserError(() => zooSettings({ ...base, trees: 100, children: 10, depth: 3 }), '111100 models');
  assertUserError(() => zooSettings({ ...base, lowrank: [4, 0] }), 'lowrank', '4,0');
  assertUserError(() => zooSettings({ ...base, hidden: [] }), 'hidden');
  assertUserError(() => parseRanks('4,x'), 'lowrank', '"4,x"');
  assertUserError(() => parseRanks(''), 'lowrank');
  assertUserError(() => parseRanks('-2'), 'lowrank');
  assert.deepEqual(parseRanks(' 4, 8'), [4, 8]);
  assertUserError(() => parseVariants('fp16,fp8'), 'variants', 'fp8');
  assert.equal(treeSize(4, 2), 21);
  assert.equal(treeSize(3, 0), 1);
  const plan = planZoo(zooSettings({ ...base, trees: 3, children: 4, depth: 2, seed: 1, lowrank: [4, 8] }), 10);
  assert.equal(plan.length, 63);
  assert.equal(new Set(plan.map((p) => p.name)).size, 63);
  // parents come before their children
  const seen = new Set<string>();
  for (const p of plan) {
    if (p.parent) assert.ok(seen.has(p.parent));
    seen.add(p.name);
    if (p.parent) assert.ok(p.rank === 4 || p.rank === 8);
    else assert.equal(p.rank, null);
  }
  assert.ok(plan.some((p) => p.rank === 4) && plan.some((p) => p.rank === 8));
  assert.ok(plan.some((p) => p.taskKind === 'subset') && plan.some((p) => p.taskKind === 'permutation'));
  // the plan is a function of the seed
  assert.deepEqual(planZoo(zooSettings({ ...base, trees: 3, children: 4, depth: 2, seed: 1, lowrank: [4, 8] }), 10), plan);
  assert.ok(!existsSync('x'));
});
