import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDataset } from '../../src/data/resolve.js';
import { numel } from '../../src/onnx/tensor.js';
import { listCuts } from '../../src/stitch/cuts.js';
import { StitchContext } from '../../src/stitch/context.js';
import { CELL_SESSIONS_PER_KIND, CellSessions, DEFAULT_CELL_OPTIONS, pairSpec, runCell, type CellResult, type StitchPair } from '../../src/stitch/cell.js';
import { ActivationStore, type ActivationBatch } from '../../src/stitch/activations.js';
import { tinyTrained } from './helpers.js';

// one network on both sides: A and B are still separate sources with their own cache entries and sessions
const { model: a } = await tinyTrained(21);
const b = a;
const train = await openDataset('fashion-mnist-sample', 'train');
const test_ = await openDataset('fashion-mnist-sample', 'test');
const cuts = listCuts(a).filter((c) => c.kind !== 'logits');
// three rows of three cells: enough to push sessions and cached cuts out several times
const gridCuts = cuts.filter((c) => ['stem', 'layer2.0', 'layer4.0'].includes(c.name));
const stem = cuts.find((c) => c.name === 'stem')!;
const TRAIN = 300;
const LSQ = { ...DEFAULT_CELL_OPTIONS, mode: 'lsq' as const };
/** every pair of cuts a stitch can join, row by row as a grid runs them */
const pairs: StitchPair[] = gridCuts.flatMap((sender) =>
  gridCuts.flatMap((receiver) => {
    const pair: StitchPair = { kind: 'trained', sender, receiver };
    try {
      pairSpec(pair, LSQ);
      return [pair];
    } catch {
      return [];
    }
  }),
);
/** bytes of one image list's activations at the stem */
const stemBytes = numel(stem.shape) * TRAIN * 4;

async function all(gen: AsyncGenerator<ActivationBatch>): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for await (const batch of gen) out.push(batch.x);
  return out;
}

test('two fills side by side never hold more than the cache cap together, and the one left out streams the same activations', async () => {
  // room for one list of stem activations, not two
  const cacheMb = (1.5 * stemBytes) / 2 ** 20;
  const ctx = new StitchContext({ a, b, train, test: test_, trainLimit: TRAIN, testLimit: 64, cacheMb, session: { threads: 1 } });
  const order = Int32Array.from({ length: TRAIN }, (_, i) => i);
  try {
    const sa = ctx.store.batches(ctx.source('A'), stem, ctx.train, order, 64);
    const sb = ctx.store.batches(ctx.source('B'), stem, ctx.train, order, 64);
    // started together, as a cell reads a sender and a receiver in lockstep
    const [xa, xb] = await Promise.all([sa.next(), sb.next()]);
    assert.ok(ctx.store.cachedBytes <= cacheMb * 2 ** 20, `${ctx.store.cachedBytes} bytes cached, cap ${cacheMb * 2 ** 20}`);
    assert.equal(ctx.store.stats.cacheFills, 1);
    assert.equal(ctx.store.stats.streamedBatches, 1);
    const restA = await all(sa),
      restB = await all(sb);
    // the same activations as a store that caches nothing
    const plain = new StitchContext({ a, b, train, test: test_, trainLimit: TRAIN, testLimit: 64, cacheMb: 0, session: { threads: 1 } });
    try {
      const wantA = await all(plain.store.batches(plain.source('A'), stem, plain.train, order, 64));
      const wantB = await all(plain.store.batches(plain.source('B'), stem, plain.train, order, 64));
      assert.deepEqual([xa.value!.x, ...restA], wantA);
      assert.deepEqual([xb.value!.x, ...restB], wantB);
    } finally {
      await plain.release();
    }
    assert.ok(ctx.store.liveSessions <= 2, `${ctx.store.liveSessions} prefix sessions alive`);
  } finally {
    await ctx.release();
  }
  assert.equal(ctx.store.liveSessions, 0);
});

test('a grid row after row: prefix and cell sessions stay bounded, the cache stays under its cap, and least squares gives the same numbers as without a cache', async () => {
  const run = async (cacheMb: number): Promise<{ results: CellResult[]; maxLive: number; maxStore: number; maxCached: number; released: number }> => {
    const ctx = new StitchContext({ a, b, train, test: test_, trainLimit: TRAIN, testLimit: 100, cacheMb, session: { threads: 1 } });
    const sessions = new CellSessions();
    const results: CellResult[] = [];
    let maxLive = 0,
      maxStore = 0,
      maxCached = 0;
    try {
      for (const pair of pairs) {
        results.push(await runCell(ctx, sessions, pair, LSQ));
        maxLive = Math.max(maxLive, sessions.live);
        maxStore = Math.max(maxStore, ctx.store.liveSessions);
        maxCached = Math.max(maxCached, ctx.store.cachedBytes);
      }
      return { results, maxLive, maxStore, maxCached, released: sessions.taskEval.released };
    } finally {
      await sessions.release();
      await ctx.release();
    }
  };
  // a cache that holds a few cuts' activations, not all of them
  const cacheMb = (3 * stemBytes) / 2 ** 20;
  const cached = await run(cacheMb);
  const cells = pairs.length;
  assert.equal(cells, 9);
  assert.ok(cached.maxLive <= CELL_SESSIONS_PER_KIND, `${cached.maxLive} cell sessions alive`);
  assert.ok(cached.maxStore <= 2, `${cached.maxStore} prefix sessions alive`);
  assert.ok(cached.maxCached <= cacheMb * 2 ** 20, `${cached.maxCached} bytes cached`);
  assert.ok(cached.released >= cells - CELL_SESSIONS_PER_KIND, `only ${cached.released} of ${cells} cells' evaluation sessions released`);
  const streamed = await run(0);
  const numbers = (r: CellResult[]): unknown => r.map((x) => [x.sender, x.receiver, x.accuracy, x.fitError, x.testFitError]);
  assert.deepEqual(numbers(cached.results), numbers(streamed.results));
});

test('shuffled batches are gathered into reused memory and equal the streamed ones; a fill after an eviction reuses the evicted memory', async () => {
  // room for one list of stem activations: the test list's fill evicts the training list's
  const cacheMb = (1.2 * stemBytes) / 2 ** 20;
  const ctx = new StitchContext({ a, b, train, test: test_, trainLimit: TRAIN, testLimit: TRAIN, cacheMb, session: { threads: 1 } });
  const plain = new StitchContext({ a, b, train, test: test_, trainLimit: TRAIN, testLimit: TRAIN, cacheMb: 0, session: { threads: 1 } });
  const shuffled = Int32Array.from({ length: TRAIN }, (_, i) => (i * 7) % TRAIN); // 7 is prime to 300
  try {
    const seen = new Set<ArrayBufferLike>();
    const want = plain.store.batches(plain.source('A'), stem, plain.train, shuffled, 64);
    for await (const got of ctx.store.batches(ctx.source('A'), stem, ctx.train, shuffled, 64)) {
      const w = (await want.next()).value!;
      // compared as it comes: the next batch overwrites this one
      assert.deepEqual(got.x, w.x);
      assert.deepEqual(got.labels, w.labels);
      seen.add(got.x.buffer);
    }
    assert.equal(seen.size, 1, 'every shuffled batch in one gather buffer');
    assert.equal(ctx.store.stats.reusedFills, 0);
    // in order: views of the cache, equal to the streamed batches
    const order = Int32Array.from({ length: TRAIN }, (_, i) => i);
    const inOrder = await all(ctx.store.batches(ctx.source('A'), stem, ctx.test, order, 64));
    assert.equal(ctx.store.stats.reusedFills, 1, "the test list's fill took the evicted training list's memory");
    assert.ok(ctx.store.cachedBytes <= cacheMb * 2 ** 20);
    assert.deepEqual(inOrder, await all(plain.store.batches(plain.source('A'), stem, plain.test, order, 64)));
  } finally {
    await ctx.release();
    await plain.release();
  }
});

test('cached lists in chunks of another size than the batches: in-order batches across chunk borders equal the streamed ones', async () => {
  const ctx = new StitchContext({ a, b, train, test: test_, trainLimit: TRAIN, testLimit: 64, cacheMb: 0, session: { threads: 1 } });
  // chunks of 100 images; batches of 64 cross chunk borders at 100, 200 and 300
  const store = new ActivationStore({ cacheBytes: 2 * stemBytes, session: { threads: 1 }, batchSize: 100 });
  const order = Int32Array.from({ length: TRAIN }, (_, i) => i);
  try {
    const want = ctx.store.batches(ctx.source('A'), stem, ctx.train, order, 64);
    for await (const got of store.batches(ctx.source('A'), stem, ctx.train, order, 64)) assert.deepEqual(got.x, (await want.next()).value!.x);
    assert.equal(store.stats.cacheFills, 1);
    assert.equal(store.stats.cachedBatches, Math.ceil(TRAIN / 64));
  } finally {
    await store.release();
    await ctx.release();
  }
});
