"""Timing and reporting shared by the PyTorch baseline benchmarks."""

import argparse
import json
import os
import platform
import time

import torch


def parse_args(description, default_models, default_batches):
    p = argparse.ArgumentParser(description=description)
    p.add_argument('--models', default=','.join(default_models),
                   help='comma-separated: vgg11, resnet18, resnet1111_w0.25')
    p.add_argument('--batches', default=','.join(map(str, default_batches)),
                   help='comma-separated batch sizes')
    p.add_argument('--threads', type=int, default=2, help='torch.set_num_threads (default 2)')
    p.add_argument('--seconds', type=float, default=5.0, help='timed seconds per configuration')
    p.add_argument('--quick', action='store_true', help='1 s per configuration: a smoke check, not a measurement')
    p.add_argument('--json', action='store_true', help='print one JSON document instead of lines')
    a = p.parse_args()
    if a.quick:
        a.seconds = 1.0
    a.models = [m for m in a.models.split(',') if m]
    a.batches = [int(b) for b in a.batches.split(',') if b]
    return a


def cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment(threads):
    return {
        'torch': torch.__version__,
        'mkldnn_available': torch.backends.mkldnn.is_available(),
        'threads': threads,
        'python': platform.python_version(),
        'machine': platform.machine(),
        'cpu': cpu_model(),
        'logical_cpus': os.cpu_count(),
    }


def time_steps(step, warmup, seconds):
    """Runs step() warmup times, then as many times as fit in at least `seconds`;
    returns (iterations, elapsed seconds)."""
    for _ in range(warmup):
        step()
    iters, start = 0, time.perf_counter()
    while True:
        step()
        iters += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return iters, elapsed


def report(args, env, rows, describe):
    if args.json:
        print(json.dumps({'environment': env, 'seconds_per_config': args.seconds, 'results': rows}, indent=1))
        return
    print(f"torch {env['torch']}, mkldnn available: {env['mkldnn_available']}, threads: {env['threads']}, "
          f"cpu: {env['cpu']} ({env['logical_cpus']} logical)"
          + ('  (--quick: smoke check only, not a measurement)' if args.quick else ''))
    for r in rows:
        print(describe(r))
