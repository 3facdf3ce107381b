#!/usr/bin/python3
"""Train the two PyTorch Fashion-MNIST classifiers of the "Model LEGO on the models
users bring" experiments (issue 13) and export each twice, as a user would.

Run (CPU, Debian's python3-torch; single-threaded by default: on a shared machine OpenMP
threads spin while they wait for each other):

    nice -n 10 /usr/bin/python3 tools/torch/train_lego_models.py [--epochs 2] [--models vgg_fm,resnet_fm] [--out runs/torch]

Models (1x28x28 input normalised with Fashion-MNIST's mean 0.2860 / std 0.3530, 10 classes):
  vgg_fm     conv3x3+BN+ReLU blocks 32,32,M,64,64,M,128,128,M, x.view(N, -1), Linear 1152-256-10
  resnet_fm  3-stage ResNet with basic blocks (widths 16, 32, 64; one block per stage,
             strided 1x1 shortcuts), global average pooling, torch.flatten, Linear 64-10

Files written to --out (git-ignored runs/ by default):
  <name>.onnx         torch.onnx.export defaults (do_constant_folding=True, training=EVAL:
                      the exporter fuses every Conv+BatchNorm, so no BN node is left)
  <name>.nofold.onnx  do_constant_folding=False, training=PRESERVE on the eval-mode model:
                      the BatchNormalization nodes stay (see tools/torch/make_fixtures.py)
  <name>.json         seed, epochs, PyTorch test accuracy, normalisation, parameters
The exports carry no normalisation metadata, like any PyTorch export: feed them with
--mean 0.2860 --std 0.3530.
"""

import argparse
import gzip
import inspect
import json
import math
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = '/usr/share/datasets/fashion-mnist'
MEAN, STD = 0.2860, 0.3530
OPSET = 17


def read_idx(path):
    with gzip.open(path, 'rb') as f:
        raw = f.read()
    magic, = struct.unpack('>I', raw[:4])
    ndim = magic & 0xFF
    dims = struct.unpack('>' + 'I' * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(split):
    prefix = 'train' if split == 'train' else 't10k'
    x = read_idx(os.path.join(DATA, f'{prefix}-images-idx3-ubyte.gz')).astype(np.float32) / 255.0
    y = read_idx(os.path.join(DATA, f'{prefix}-labels-idx1-ubyte.gz')).astype(np.int64)
    x = (x - MEAN) / STD
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


def conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class VggFm(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        layers, cin = [], 1
        for v in (32, 32, 'M', 64, 64, 'M', 128, 128, 'M'):
            if v == 'M':
                layers.append(nn.MaxPool2d(2))
            else:
                layers += conv_bn_relu(cin, v)
                cin = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(128 * 3 * 3, 256), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(256, classes))

    def forward(self, x):
        x = self.features(x)
        return self.classifier(x.view(x.size(0), -1))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetFm(nn.Module):
    def __init__(self, classes=10, widths=(16, 32, 64)):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn_relu(1, widths[0]))
        stages, cin = [], widths[0]
        for i, w in enumerate(widths):
            stages.append(BasicBlock(cin, w, 1 if i == 0 else 2))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


MODELS = {'vgg_fm': (VggFm, 11), 'resnet_fm': (ResNetFm, 12)}


def augment(x, gen):
    """Random shifts by up to 2 pixels (zero padding in the normalised space) and horizontal flips."""
    n = x.shape[0]
    pad = F.pad(x, (2, 2, 2, 2), value=-MEAN / STD)
    dx = torch.randint(0, 5, (n,), generator=gen)
    dy = torch.randint(0, 5, (n,), generator=gen)
    out = torch.empty_like(x)
    for i in range(n):
        out[i] = pad[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28]
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def accuracy(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def export(model, path, fold):
    kwargs = dict(input_names=['input'], output_names=['logits'], dynamic_axes={'input': {0: 'N'}, 'logits': {0: 'N'}},
                  opset_version=OPSET, do_constant_folding=fold)
    if not fold:
        kwargs['training'] = torch.onnx.TrainingMode.PRESERVE
    if 'dynamo' in inspect.signature(torch.onnx.export).parameters:
        kwargs['dynamo'] = False
    torch.onnx.export(model, torch.zeros(2, 1, 28, 28), path, **kwargs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--epochs', type=int, default=2)
    ap.add_argument('--out', default='runs/torch')
    ap.add_argument('--models', default='vgg_fm,resnet_fm')
    ap.add_argument('--threads', type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    xtr, ytr = load('train')
    xte, yte = load('test')
    for name in args.models.split(','):
        cls, seed = MODELS[name]
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = cls()
        batch = 128
        steps = args.epochs * math.ceil(len(xtr) / batch)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=steps, pct_start=0.15)
        t0 = time.time()
        for epoch in range(args.epochs):
            model.train()
            perm = torch.randperm(len(xtr), generator=gen)
            for i in range(0, len(xtr), batch):
                idx = perm[i:i + batch]
                loss = F.cross_entropy(model(augment(xtr[idx], gen)), ytr[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                step = i // batch + 1
                if step % 100 == 0:
                    print(f'{name} epoch {epoch + 1} step {step}: loss {loss.item():.3f} ({time.time() - t0:.0f} s)', flush=True)
            print(f'{name} epoch {epoch + 1}/{args.epochs}: test accuracy {accuracy(model, xte, yte):.4f} ({time.time() - t0:.0f} s)', flush=True)
        model.eval()
        acc = accuracy(model, xte, yte)
        for suffix, fold in (('.onnx', True), ('.nofold.onnx', False)):
            export(model, os.path.join(args.out, name + suffix), fold)
        info = {'model': name, 'seed': seed, 'epochs': args.epochs, 'testAccuracy': acc, 'mean': [MEAN], 'std': [STD],
                'parameters': sum(p.numel() for p in model.parameters()), 'seconds': time.time() - t0, 'torch': torch.__version__}
        with open(os.path.join(args.out, name + '.json'), 'w') as f:
            json.dump(info, f, indent=1)
            f.write('\n')
        print(json.dumps(info), flush=True)


if __name__ == '__main__':
    main()
