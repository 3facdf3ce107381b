#!/usr/bin/env node
/**
 * Makes the Fashion-MNIST sample shipped in data/sample/fashion-mnist: a class-balanced,
 * seeded selection of the full set, so that tests and the demo run without the Debian
 * package and give the same results everywhere.
 *
 *   node tools/make-sample.mjs [source folder] [output folder]
 *
 * defaults: /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist)
 *           data/sample/fashion-mnist
 *
 * Plain Node (zlib only) on purpose: it must run before anything is compiled. The
 * selection depends only on the seed and the source files, and gzip output is
 * byte-stable for a given zlib, so rerunning it reproduces the committed files.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { gunzipSync, gzipSync, constants } from 'node:zlib';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const SEED = 20240601;
const PER_CLASS = { train: 500, t10k: 100 };
const CLASSES = 10;

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = process.argv[2] ?? '/usr/share/datasets/fashion-mnist';
const output = process.argv[3] ?? join(repo, 'data', 'sample', 'fashion-mnist');

/** splitmix32: a tiny seeded generator; the sample only needs to be reproducible. */
function rng(seed) {
  let x = seed >>> 0;
  return () => {
    x = (x + 0x9e3779b9) | 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
  };
}

function readIdx(file) {
  const b = gunzipSync(readFileSync(file));
  if (b[0] !== 0 || b[1] !== 0 || b[2] !== 0x08) throw new Error(`${file}: not a ubyte IDX file`);
  const rank = b[3];
  const dims = [];
  for (let i = 0; i < rank; i++) dims.push(b.readUInt32BE(4 + 4 * i));
  const header = 4 + 4 * rank;
  const count = dims.reduce((a, d) => a * d, 1);
  if (b.length !== header + count) throw new Error(`${file}: ${b.length} bytes, expected ${header + count}`);
  return { dims, data: b.subarray(header) };
}

function idxBytes(dims, data) {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, data]);
}

/** Per class, a seeded random choice of `perClass` indices; returned in file order. */
function chooseBalanced(labels, perClass, random) {
  const byClass = Array.from({ length: CLASSES }, () => []);
  labels.forEach((l, i) => byClass[l].push(i));
  const chosen = [];
  for (const idx of byClass) {
    if (idx.length < perClass) throw new Error(`only ${idx.length} images of a class, need ${perClass}`);
    for (let i = idx.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
    chosen.push(...idx.slice(0, perClass));
  }
  return chosen.sort((a, b) => a - b);
}

function writeGz(file, bytes) {
  // mtime 0 and fixed level keep the output byte-stable
  writeFileSync(file, gzipSync(bytes, { level: constants.Z_BEST_COMPRESSION }));
}

mkdirSync(output, { recursive: true });
const random = rng(SEED);
for (const split of ['train', 't10k']) {
  const images = readIdx(join(source, `${split}-images-idx3-ubyte.gz`));
  const labels = readIdx(join(source, `${split}-labels-idx1-ubyte.gz`));
  const [n, h, w] = images.dims;
  if (labels.dims[0] !== n) throw new Error(`${split}: ${n} images but ${labels.dims[0]} labels`);
  const chosen = chooseBalanced(labels.data, PER_CLASS[split], random);
  const px = h * w;
  const outImages = Buffer.alloc(chosen.length * px);
  const outLabels = Buffer.alloc(chosen.length);
  chosen.forEach((src, i) => {
    images.data.copy(outImages, i * px, src * px, (src + 1) * px);
    outLabels[i] = labels.data[src];
  });
  writeGz(join(output, `${split}-images-idx3-ubyte.gz`), idxBytes([chosen.length, h, w], outImages));
  writeGz(join(output, `${split}-labels-idx1-ubyte.gz`), idxBytes([chosen.length], outLabels));
  process.stdout.write(`${split}: ${chosen.length} of ${n} images (${PER_CLASS[split]} per class) -> ${output}\n`);
}
