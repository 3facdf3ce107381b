import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { openImageFolder } from '../../src/data/folder.js';
import { openDataset } from '../../src/data/resolve.js';
import { UserError } from '../../src/util/errors.js';
import { tempDir } from '../helpers/paths.js';

const root = tempDir();
const W = 4, H = 3;

/** Grayscale pixels unique to (class, image). */
const grayPixels = (c: number, k: number): number[] => Array.from({ length: W * H }, (_, p) => c * 100 + k * 40 + p);

async function png(file: string, pixels: number[], channels: 1 | 3): Promise<void> {
  const img = sharp(Buffer.from(pixels), { raw: { width: W, height: H, channels } });
  await (channels === 1 ? img.toColourspace('b-w') : img).png().toFile(file);
}

test('image folders: classes by sorted name, exact grayscale pixels, split folders', async () => {
  // "b-shirt" is created first but sorts second
  for (const [c, name] of [[1, 'b-shirt'], [0, 'a-bag']] as const) {
    for (const split of ['train', 'test']) {
      const dir = join(root, 'gray', split, name);
      mkdirSync(dir, { recursive: true });
      for (const k of [0, 1]) await png(join(dir, `img${k}.png`), grayPixels(c, k), 1);
    }
  }
  writeFileSync(join(root, 'gray', 'train', 'a-bag', 'notes.txt'), 'not an image');
  const ds = await openDataset(`folder:${join(root, 'gray')}`, 'test', { announce: false });
  assert.deepEqual(ds.classNames, ['a-bag', 'b-shirt']);
  assert.deepEqual(ds.shape, [1, H, W]);
  assert.equal(ds.size, 4);
  assert.deepEqual([0, 1, 2, 3].map((i) => ds.label(i)), [0, 0, 1, 1]);
  const x = new Float32Array(2 * W * H);
  await ds.read([3, 0], x);
  assert.deepEqual(Array.from(x.subarray(0, W * H)), grayPixels(1, 1).map((v) => Math.fround(v / 255)));
  assert.deepEqual(Array.from(x.subarray(W * H)), grayPixels(0, 0).map((v) => Math.fround(v / 255)));
  assert.match(ds.source, /test split: 4 images in 2 classes/);
  assert.equal((await openImageFolder(join(root, 'gray'), 'train')).size, 4);
});

test('one RGB image makes the dataset RGB; exact CHW pixels; gray images replicated', async () => {
  const dir = join(root, 'rgb');
  mkdirSync(join(dir, 'x'), { recursive: true });
  mkdirSync(join(dir, 'y'), { recursive: true });
  const rgb = Array.from({ length: W * H * 3 }, (_, i) => (i * 11) % 256);
  await png(join(dir, 'x', 'a.png'), rgb, 3);
  await png(join(dir, 'y', 'b.png'), grayPixels(0, 1), 1);
  const ds = await openImageFolder(dir, 'train');
  assert.deepEqual(ds.shape, [3, H, W]);
  assert.match(ds.source, /no split folders/);
  const x = new Float32Array(2 * 3 * W * H);
  await ds.read([0, 1], x);
  for (let ch = 0; ch < 3; ch++) {
    for (let p = 0; p < W * H; p++) {
      assert.equal(x[ch * W * H + p], Math.fround(rgb[p * 3 + ch]! / 255));
      assert.equal(x[3 * W * H + ch * W * H + p], Math.fround(grayPixels(0, 1)[p]! / 255));
    }
  }
});

test('a requested shape resizes and converts', async () => {
  const ds = await openImageFolder(join(root, 'rgb'), 'train', { shape: [1, 6, 8] });
  const x = new Float32Array(2 * 6 * 8);
  await ds.read([0, 1], x);
  assert.ok(x.every((v) => v >= 0 && v <= 1));
  assert.ok(x.some((v) => v > 0));
});

test('missing folders, a missing split and empty folders are UserErrors', async () => {
  await assert.rejects(openImageFolder(join(root, 'absent'), 'train'), (e: unknown) => e instanceof UserError && e.message.includes('absent'));
  const trainOnly = join(root, 'trainonly', 'train', 'c');
  mkdirSync(trainOnly, { recursive: true });
  await png(join(trainOnly, 'a.png'), grayPixels(0, 0), 1);
  await assert.rejects(openImageFolder(join(root, 'trainonly'), 'test'), /no test folder/);
  const empty = join(root, 'empty', 'c');
  mkdirSync(empty, { recursive: true });
  await assert.rejects(openImageFolder(join(root, 'empty'), 'train'), /no \.png\/\.jpg\/\.jpeg images/);
  const broken = join(root, 'broken', 'c');
  mkdirSync(broken, { recursive: true });
  writeFileSync(join(broken, 'a.png'), 'not a png');
  await assert.rejects(openImageFolder(join(root, 'broken'), 'train'), (e: unknown) => e instanceof UserError && e.message.includes('a.png'));
});
