#!/usr/bin/python3
"""PyTorch CPU stitching baseline: the grid of `npm run bench:stitch` in plain PyTorch.

Two ResNet(1,1,1,1) width 0.5 networks on Fashion-MNIST 1x28x28 (fresh, seeds 1 and 2:
speed does not depend on the weights), frozen in eval mode. Senders stem, layer2.0,
layer4.0 x receivers stem, layer2.0, features (cut after the named block, as in
modelsmith's cut points). Per cell: the sender's activations of the training and test
images are computed once per sender and kept in memory (the first cell of a sender pays
for that, as in modelsmith), the stitch chosen by shape (src/stitch/plan.ts: 1x1 conv,
strided conv when the sender is r times larger (floor or ceil sizes), 1x1 conv + nearest
upsampling by r + crop (or the edge repeated) when it is smaller (the map first, as modelsmith builds it: the two commute), global average pool + linear into the flat features) is trained by
SGD (lr 0.01, momentum 0.9, weight decay 0.01, constant schedule, batch 256, last partial
batch dropped, one shuffled order per epoch) on cross-entropy through the frozen
receiver suffix, then scored on the test images.

    /usr/bin/python3 tools/torch/bench_stitch.py [--quick] [--json] [--threads 2]
        [--train 10000] [--test 10000] [--epochs 1] [--senders stem,layer2.0,layer4.0]
        [--receivers stem,layer2.0,features] [--upsample-first]
"""

import argparse
import gzip
import json
import math
import os
import sys
import time
import zlib

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench_common import environment  # noqa: E402
from models import ResNet  # noqa: E402

DATA = '/usr/share/datasets/fashion-mnist'
MEAN, STD = 0.286, 0.353  # src/data/known.ts
BATCH = 256
CUTS = ['stem', 'layer1.0', 'layer2.0', 'layer3.0', 'layer4.0', 'features']
UPSAMPLE_FIRST = False


def load_split(split, limit, seed):
    """Normalised images [n, 1, 28, 28] and labels of a seeded subset of a split; random
    images (labelled as such) when the data set is not installed: speed does not depend
    on the pixels."""
    prefix = 'train' if split == 'train' else 't10k'
    images, labels = os.path.join(DATA, f'{prefix}-images-idx3-ubyte.gz'), os.path.join(DATA, f'{prefix}-labels-idx1-ubyte.gz')
    g = np.random.default_rng(seed)
    if os.path.exists(images) and os.path.exists(labels):
        with gzip.open(images) as f:
            x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
        with gzip.open(labels) as f:
            y = np.frombuffer(f.read(), np.uint8, offset=8)
        source = DATA
    else:
        n = 60000 if split == 'train' else 10000
        x, y, source = g.integers(0, 256, (n, 1, 28, 28), dtype=np.uint8), g.integers(0, 10, n, dtype=np.uint8), 'random pixels'
    idx = np.sort(g.permutation(len(x))[:limit])
    xs = (torch.from_numpy(x[idx].astype(np.float32)) / 255 - MEAN) / STD
    return xs.contiguous(), torch.from_numpy(y[idx].astype(np.int64)), source


def stages(net):
    """The network as a list of (cut name after this stage, module)."""
    stem = nn.Sequential(net.conv1, net.bn1, nn.ReLU())
    return [('stem', stem)] + [(f'layer{i + 1}.0', net.layers[i]) for i in range(4)] + [('features', nn.Sequential(net.pool, nn.Flatten(1)))] + [
        ('logits', net.linear)]


def prefix(net, cut):
    out = []
    for name, m in stages(net):
        out.append(m)
        if name == cut:
            return nn.Sequential(*out)
    raise SystemExit(f'unknown cut {cut!r}; expected one of {", ".join(CUTS)}')


def suffix(net, cut):
    all_ = stages(net)
    names = [n for n, _ in all_]
    return nn.Sequential(*[m for _, m in all_[names.index(cut) + 1:]])


def shape_at(net, cut):
    with torch.no_grad():
        return tuple(prefix(net, cut)(torch.zeros(1, 1, 28, 28)).shape[1:])


def spatial_stride(large, small):
    """The stride src/stitch/plan.ts spatialStride picks: in every dimension the smaller size is
    floor or ceil of larger / r; a power of 2 first, then any integer; the one nearest the
    size ratio (summed log distance), the smaller on a tie. None when no r fits."""
    if min(small) < 1:
        return None

    def fits(r):
        return all(a // r == b or -(-a // r) == b for a, b in zip(large, small))

    def distance(r):
        return sum(abs(math.log(r) - math.log(a / b)) for a, b in zip(large, small))

    lo = max([2] + [a // (b + 1) + 1 for a, b in zip(large, small)])
    hi = min(-(-a // (b - 1)) if b > 1 else 2 * a for a, b in zip(large, small))
    fitting = [r for r in range(lo, hi + 1) if fits(r)]
    powers = [r for r in fitting if r & (r - 1) == 0]
    return min(powers or fitting, key=lambda r: (distance(r), r), default=None)


class Stitch(nn.Module):
    """The stitch src/stitch/plan.ts chooses for these shapes (image or flat receivers)."""

    def __init__(self, a, b):
        super().__init__()
        self.up, self.crop, self.pad, self.edge = 1, None, (0, 0), (0, 0)
        if len(b) == 1:
            self.kind = 'pool-linear'
            self.map = nn.Linear(a[0], b[0])
            return
        (ca, ha, wa), (cb, hb, wb) = a, b
        if (ha, wa) == (hb, wb):
            self.kind, self.map = 'conv1x1', nn.Conv2d(ca, cb, 1)
        elif ha >= hb and wa >= wb:
            r = spatial_stride((ha, wa), (hb, wb))
            # zero padding for ceil sizes; for floor sizes the conv leaves the last rows unread
            self.kind, self.map, self.pad = f'downsample r={r}', nn.Conv2d(ca, cb, r, stride=r), (max(0, wb * r - wa), max(0, hb * r - ha))
        else:
            r = spatial_stride((hb, wb), (ha, wa))
            # the last row/column repeated where r times the sender falls short of the receiver
            self.edge = (max(0, -(-wb // r) - wa), max(0, -(-hb // r) - ha))
            self.kind, self.map, self.up, self.crop = f'upsample r={r}', nn.Conv2d(ca, cb, 1), r, (hb, wb)

    def forward(self, x):
        if self.kind == 'pool-linear':
            return self.map(x.mean((2, 3)))
        if self.up > 1:
            # the 1x1 map commutes with nearest upsampling and edge replication; modelsmith
            # (src/stitch/build.ts) maps first, and so does this unless --upsample-first asks
            # for the naive order
            def up(t):
                if any(self.edge):
                    t = F.pad(t, (0, self.edge[0], 0, self.edge[1]), mode='replicate')
                return F.interpolate(t, scale_factor=self.up, mode='nearest')[:, :, :self.crop[0], :self.crop[1]]

            return self.map(up(x)) if UPSAMPLE_FIRST else up(self.map(x))
        if any(self.pad):
            x = F.pad(x, (0, self.pad[0], 0, self.pad[1]))
        return self.map(x)


def activations(net_prefix, x):
    with torch.no_grad():
        return torch.cat([net_prefix(x[i:i + BATCH]) for i in range(0, len(x), BATCH)])


def run_cell(stitch, receiver_suffix, train_x, train_y, test_x, test_y, epochs, seed):
    opt = torch.optim.SGD(stitch.parameters(), lr=0.01, momentum=0.9, weight_decay=0.01)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    stitch.train()
    n = len(train_x) // BATCH * BATCH
    loss_sum, steps = 0.0, 0
    for _ in range(epochs):
        order = torch.randperm(len(train_x), generator=gen)[:n]
        loss_sum, steps = 0.0, 0
        for i in range(0, n, BATCH):
            idx = order[i:i + BATCH]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(receiver_suffix(stitch(train_x[idx])), train_y[idx])
            loss.backward()
            opt.step()
            loss_sum += loss.item()
            steps += 1
    stitch.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(test_x), BATCH):
            correct += int((receiver_suffix(stitch(test_x[i:i + BATCH])).argmax(1) == test_y[i:i + BATCH]).sum())
    return correct / len(test_x), loss_sum / max(1, steps)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--train', type=int, default=None, help='training images (default 10000; --quick 2048)')
    p.add_argument('--test', type=int, default=None, help='test images (default 10000; --quick 1000)')
    p.add_argument('--epochs', type=int, default=1)
    p.add_argument('--senders', default='stem,layer2.0,layer4.0')
    p.add_argument('--receivers', default='stem,layer2.0,features')
    p.add_argument('--quick', action='store_true', help='2048 training and 1000 test images: a smoke check')
    p.add_argument('--upsample-first', action='store_true', help='upsample, then the 1x1 map (the naive order; default: map first, as modelsmith)')
    p.add_argument('--json', action='store_true')
    a = p.parse_args()
    global UPSAMPLE_FIRST
    UPSAMPLE_FIRST = a.upsample_first
    train_n = a.train or (2048 if a.quick else 10000)
    test_n = a.test or (1000 if a.quick else 10000)
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    net_a = ResNet((1, 1, 1, 1), width=0.5, in_channels=1).eval()
    torch.manual_seed(2)
    net_b = ResNet((1, 1, 1, 1), width=0.5, in_channels=1).eval()
    for p_ in list(net_a.parameters()) + list(net_b.parameters()):
        p_.requires_grad_(False)
    train_x, train_y, source = load_split('train', train_n, 0)
    test_x, test_y, _ = load_split('test', test_n, 1)
    cells = []
    for s in [c for c in a.senders.split(',') if c]:
        cache = {}
        for r in [c for c in a.receivers.split(',') if c]:
            start = time.perf_counter()
            if not cache:  # the first cell of a sender fills its cache, as modelsmith's does
                pre = prefix(net_a, s)
                cache['train'], cache['test'] = activations(pre, train_x), activations(pre, test_x)
            fill = time.perf_counter() - start
            torch.manual_seed(zlib.crc32(f'{s}->{r}'.encode()))
            stitch = Stitch(tuple(cache['train'].shape[1:]), shape_at(net_b, r))
            acc, loss = run_cell(stitch, suffix(net_b, r), cache['train'], train_y, cache['test'], test_y, a.epochs, 0)
            secs = time.perf_counter() - start
            cells.append({'sender': s, 'receiver': r, 'stitch': stitch.kind, 'seconds': secs, 'cache_fill_seconds': fill,
                          'accuracy': acc, 'train_loss': loss})
            if not a.json:
                print(f'{s:>8} -> {r:<8} {stitch.kind:<14} {secs:6.2f} s (cache fill {fill:.2f} s), accuracy {acc:.3f}', flush=True)
    env = environment(a.threads)
    per_cell = sum(c['seconds'] for c in cells) / max(1, len(cells))
    if a.json:
        print(json.dumps({'environment': env, 'data': source, 'train_images': train_n, 'test_images': test_n, 'epochs': a.epochs,
                          'batch': BATCH, 'seconds_per_cell': per_cell, 'cells': cells}, indent=1))
    else:
        print(f"torch {env['torch']}, threads {a.threads}, cpu: {env['cpu']}; data {source}: {train_n} training images x "
              f'{a.epochs} epoch(s), {test_n} test images, batch {BATCH}: {per_cell:.2f} s per cell')


if __name__ == '__main__':
    main()
