#!/usr/bin/python3
"""PyTorch CPU inference baseline: images/s and GFLOP/s of VGG-11 (BN) and ResNet-18
for CIFAR (3x32x32), eval mode, torch.no_grad(), 2 threads, batches 64 and 256.

    /usr/bin/python3 tools/torch/bench_inference.py [--quick] [--json]
"""

import sys

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__

import torch  # noqa: E402

from bench_common import environment, parse_args, report, time_steps
from models import build, forward_flops, param_count

WARMUP = 3


def measure(name, batch, seconds):
    torch.manual_seed(0)
    model, shape = build(name)
    model.eval()
    flops = forward_flops(model, shape)
    x = torch.randn(batch, *shape)

    def step():
        with torch.no_grad():
            model(x)

    iters, elapsed = time_steps(step, WARMUP, seconds)
    ips = iters * batch / elapsed
    return {'model': name, 'batch': batch, 'params': param_count(model),
            'gflops_per_image': flops / 1e9, 'iterations': iters, 'seconds': elapsed,
            'images_per_s': ips, 'gflop_per_s': ips * flops / 1e9}


def describe(r):
    return (f"{r['model']:<10} batch {r['batch']:>4}: {r['images_per_s']:9.1f} images/s  "
            f"{r['gflop_per_s']:7.1f} GFLOP/s  ({r['gflops_per_image']:.4f} GFLOP/image forward, "
            f"{r['params']} params, {r['iterations']} iterations in {r['seconds']:.2f} s)")


def main():
    args = parse_args(__doc__.splitlines()[0], ['vgg11', 'resnet18'], [64, 256])
    torch.set_num_threads(args.threads)
    rows = [measure(m, b, args.seconds) for m in args.models for b in args.batches]
    report(args, environment(args.threads), rows, describe)


if __name__ == '__main__':
    main()
