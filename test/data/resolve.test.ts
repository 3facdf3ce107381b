import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { openDataset, datasetLocations } from '../../src/data/resolve.js';
import { encodeIdx } from '../../src/data/idx.js';
import { UserError } from '../../src/util/errors.js';
import { tempDir } from '../helpers/paths.js';

const root = tempDir();

/** A tiny IDX dataset folder: n images of 2x3 whose pixels encode their index. */
function writeIdxFolder(dir: string, stem: string, labels: number[], gz = true): void {
  mkdirSync(dir, { recursive: true });
  const n = labels.length;
  const pixels = Uint8Array.from({ length: n * 6 }, (_, i) => Math.floor(i / 6) * 10 + (i % 6));
  const write = (name: string, bytes: Uint8Array): void => writeFileSync(join(dir, gz ? `${name}.gz` : name), gz ? gzipSync(bytes) : bytes);
  write(`${stem}-images-idx3-ubyte`, encodeIdx([n, 2, 3], pixels));
  write(`${stem}-labels-idx1-ubyte`, encodeIdx([n], Uint8Array.from(labels)));
}

async function withDataEnv<T>(value: string | undefined, fn: () => Promise<T>): Promise<T> {
  const saved = process.env['MODELSMITH_DATA'];
  if (value === undefined) delete process.env['MODELSMITH_DATA'];
  else process.env['MODELSMITH_DATA'] = value;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env['MODELSMITH_DATA'];
    else process.env['MODELSMITH_DATA'] = saved;
  }
}

function userErrorMatching(...patterns: (RegExp | string)[]) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof UserError, String(e));
    assert.ok(!e.message.includes('\n'), 'one line');
    for (const p of patterns) {
      if (typeof p === 'string') assert.ok(e.message.includes(p), `"${e.message}" lacks "${p}"`);
      else assert.match(e.message, p);
    }
    return true;
  };
}

test('missing paths are UserErrors naming the path', async () => {
  const missing = join(root, 'nowhere');
  for (const spec of [missing, `folder:${missing}`, `cifar10:${missing}`, `cifar100:${missing}`, `idx:${missing}`]) {
    await assert.rejects(openDataset(spec, 'train', { announce: false }), userErrorMatching(missing));
  }
});

test('$MODELSMITH_DATA comes first, and the source says so', async () => {
  const data = join(root, 'env');
  writeIdxFolder(join(data, 'fashion-mnist'), 't10k', [0, 9, 3]);
  const ds = await withDataEnv(data, () => openDataset('fashion-mnist', 'test', { announce: false }));
  assert.equal(ds.size, 3);
  assert.equal(ds.classes, 10);
  assert.equal(ds.classNames?.[9], 'Ankle boot');
  assert.match(ds.source, /^fashion-mnist test split: 3 images from .*env\/fashion-mnist \(\$MODELSMITH_DATA\)$/);
  const first = await withDataEnv(data, async () => datasetLocations('mnist')[0]!.dir);
  assert.equal(first, join(data, 'mnist'));
  const x = new Float32Array(6);
  await ds.read([2], x);
  assert.deepEqual(Array.from(x), [20, 21, 22, 23, 24, 25].map((v) => Math.fround(v / 255)));
});

test('an incomplete $MODELSMITH_DATA folder is an error, not a silent fallback', async () => {
  const data = join(root, 'env-incomplete');
  writeIdxFolder(join(data, 'fashion-mnist'), 'train', [0, 1]);
  await assert.rejects(
    withDataEnv(data, () => openDataset('fashion-mnist', 'test', { announce: false })),
    userErrorMatching(join(data, 'fashion-mnist'), 't10k-images-idx3-ubyte'),
  );
});

test('without $MODELSMITH_DATA: the Debian package when installed, else the sample', async () => {
  const ds = await withDataEnv(undefined, () => openDataset('fashion-mnist', 'test', { announce: false }));
  if (existsSync('/usr/share/datasets/fashion-mnist')) {
    assert.match(ds.source, /10000 images from \/usr\/share\/datasets\/fashion-mnist \(Debian package dataset-fashion-mnist\)/);
    assert.equal(ds.size, 10000);
  } else {
    assert.match(ds.source, /sample shipped with modelsmith .*full set not found: install dataset-fashion-mnist/);
    assert.equal(ds.size, 1000);
  }
});

test('labels exceeding the class count: UserError naming the file, the label and the count', async () => {
  const data = join(root, 'badlabels');
  writeIdxFolder(join(data, 'fashion-mnist'), 'train', [1, 12, 3]);
  const labels = join(data, 'fashion-mnist', 'train-labels-idx1-ubyte.gz');
  await assert.rejects(
    withDataEnv(data, () => openDataset('fashion-mnist', 'train', { announce: false })),
    userErrorMatching(labels, 'label 12', '10 classes'),
  );
  await assert.rejects(
    openDataset(`idx:${join(data, 'fashion-mnist')}`, 'train', { announce: false, classes: 5 }),
    userErrorMatching(labels, 'label 12', '5 classes'),
  );
});

test('a plain folder of IDX files: class count from the labels unless given', async () => {
  const dir = join(root, 'custom');
  writeIdxFolder(dir, 'train', [0, 4, 2, 4], false);
  const ds = await openDataset(dir, 'train', { announce: false });
  assert.equal(ds.name, 'custom');
  assert.equal(ds.classes, 5);
  assert.deepEqual([0, 1, 2, 3].map((i) => ds.label(i)), [0, 4, 2, 4]);
  assert.equal((await openDataset(dir, 'train', { announce: false, classes: 7 })).classes, 7);
  // the folder exists but has no test split
  await assert.rejects(openDataset(dir, 'test', { announce: false }), userErrorMatching(dir, 't10k-images-idx3-ubyte'));
});

test('image and label counts must agree', async () => {
  const dir = join(root, 'mismatch');
  writeIdxFolder(dir, 'train', [0, 1, 2]);
  writeFileSync(join(dir, 'train-labels-idx1-ubyte.gz'), gzipSync(encodeIdx([2], Uint8Array.from([0, 1]))));
  await assert.rejects(openDataset(dir, 'train', { announce: false }), userErrorMatching('2 labels', '3 images'));
});

test('unknown names and bad splits', async () => {
  await assert.rejects(openDataset('imagenet-99', 'train', { announce: false }), userErrorMatching('imagenet-99', 'fashion-mnist'));
  await assert.rejects(openDataset('fashion-mnist-sample', 'val' as 'train', { announce: false }), userErrorMatching('val'));
});
