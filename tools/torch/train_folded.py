#!/usr/bin/python3
"""Train a BatchNorm CNN on Fashion-MNIST in PyTorch and export it as users do
(torch.onnx.export defaults: eval mode, BatchNorm folded into the convolutions): the
"trained export" that fine-tuning defaults are measured on (README "Fine-tuning exported models: the defaults").

    /usr/bin/python3 tools/torch/train_folded.py {resnet,vgg,resnet_small} OUT.onnx [--epochs 3] [--threads 2]

resnet: tools/torch/models.py's ResNet((1,1,1,1), width 0.25) on 1x28x28 (16..128
channels); vgg: models.py's VGG with cfg [16,M,32,M,64,64,M,128,M] on 1x28x28;
resnet_small: make_fixtures.py's ResNetSmall (5122 parameters, the committed
fixtures/finetune/resnet_small_fm.onnx with --epochs 2). SGD
(momentum 0.9, weight decay 5e-4, lr 0.05 cosine), batch 128, inputs normalised with
mean 0.286 / std 0.353, seed 0; prints the test accuracy. Reads the IDX files of
/usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist).
"""
import argparse
import gzip
import os
import sys

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from models import VGG, ResNet  # noqa: E402

DATA = '/usr/share/datasets/fashion-mnist'
MEAN, STD = 0.286, 0.353


def idx(name):
    with gzip.open(os.path.join(DATA, name)) as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def split(kind):
    x = idx(f'{kind}-images-idx3-ubyte.gz').astype(np.float32) / 255.0
    y = idx(f'{kind}-labels-idx1-ubyte.gz').astype(np.int64)
    return torch.from_numpy((x[:, None] - MEAN) / STD), torch.from_numpy(y)


def build(name):
    if name == 'resnet':
        return ResNet((1, 1, 1, 1), width=0.25, in_channels=1)
    if name == 'vgg':
        return VGG([16, 'M', 32, 'M', 64, 64, 'M', 128, 'M'], in_channels=1)
    if name == 'resnet_small':
        from make_fixtures import ResNetSmall
        return ResNetSmall()
    sys.exit(f'unknown model {name}; expected resnet, vgg or resnet_small')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('model')
    ap.add_argument('out')
    ap.add_argument('--epochs', type=int, default=3)
    ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build(a.model)
    xs, ys = split('train')
    xt, yt = split('t10k')
    steps = a.epochs * (len(xs) // 128)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(0)
    for epoch in range(a.epochs):
        model.train()
        order = torch.randperm(len(xs), generator=g)
        for k in range(len(xs) // 128):
            i = order[k * 128:(k + 1) * 128]
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(xs[i]), ys[i]).backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            acc = sum((model(xt[j:j + 1000]).argmax(1) == yt[j:j + 1000]).sum().item() for j in range(0, len(xt), 1000))
        print(f'{a.model} epoch {epoch + 1}: test accuracy {acc / len(xt):.4f}', file=sys.stderr)
    model.eval()
    torch.onnx.export(model, xt[:4], a.out, opset_version=17, input_names=['input'], output_names=['logits'],
                      dynamic_axes={'input': {0: 'N'}, 'logits': {0: 'N'}})
    print(f'wrote {a.out}', file=sys.stderr)


if __name__ == '__main__':
    main()
