#!/usr/bin/python3
"""PyTorch CPU training baseline: images/s of one SGD step (momentum 0.9, cross-entropy,
train mode) at batch 128 with 2 threads, for VGG-11 (BN) and ResNet-18 on 3x32x32 and
ResNet(1,1,1,1) width 0.25 (channels 16,32,64,128) on 1x28x28.

    /usr/bin/python3 tools/torch/bench_training.py [--quick] [--json]
"""

import sys

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__

import torch  # noqa: E402
import torch.nn as nn

from bench_common import environment, parse_args, report, time_steps
from models import build, forward_flops, param_count

WARMUP = 3


def measure(name, batch, seconds):
    torch.manual_seed(0)
    model, shape = build(name)
    flops = forward_flops(model, shape)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    # Fixed random data: the step's cost does not depend on the values.
    x = torch.randn(batch, *shape)
    y = torch.randint(0, 10, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    iters, elapsed = time_steps(step, WARMUP, seconds)
    ips = iters * batch / elapsed
    # A training step is conventionally ~3x the forward FLOPs (forward, input and
    # weight gradients); reported as an approximation for comparison only.
    return {'model': name, 'batch': batch, 'params': param_count(model),
            'gflops_per_image_forward': flops / 1e9, 'iterations': iters, 'seconds': elapsed,
            'images_per_s': ips, 'approx_gflop_per_s': 3 * ips * flops / 1e9}


def describe(r):
    return (f"{r['model']:<16} batch {r['batch']:>4}: {r['images_per_s']:9.1f} images/s  "
            f"~{r['approx_gflop_per_s']:6.1f} GFLOP/s (3x {r['gflops_per_image_forward']:.4f} "
            f"GFLOP/image forward, {r['params']} params, {r['iterations']} steps in {r['seconds']:.2f} s)")


def main():
    args = parse_args(__doc__.splitlines()[0], ['vgg11', 'resnet18', 'resnet1111_w0.25'], [128])
    torch.set_num_threads(args.threads)
    rows = [measure(m, b, args.seconds) for m in args.models for b in args.batches]
    report(args, environment(args.threads), rows, describe)


if __name__ == '__main__':
    main()
