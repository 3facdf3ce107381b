#!/usr/bin/python3
"""Make the PyTorch gradient reference fixtures fixtures/torch/<name>.grad.json.

Run from anywhere with Debian's torch (python3-torch) and onnx (python3-onnx), after
make_fixtures.py has written the .nofold.onnx files:

    /usr/bin/python3 tools/torch/make_grad_fixtures.py

For vgg_small and resnet_small it rebuilds the very models make_fixtures.py exported
(same code, same seeds, same order: the weights of a later model depend on the global
RNG state the earlier ones left), checks that every weight and running statistic equals
the initializer of <name>.nofold.onnx bit for bit, and then, for a fixed batch of 8
images and labels, records in float64:
  mode "train": BatchNorm on batch statistics, every Dropout's p set to 0 (the ONNX
                file has no Dropout node, and random masks cannot be reproduced),
                CrossEntropyLoss (mean) of the logits;
  mode "eval":  model.eval() (BatchNorm on running statistics);
the loss, the logits, the gradient of the loss w.r.t. every parameter (keyed by ONNX
initializer name) and w.r.t. the input, and for "train" the running mean/variance after
the step (momentum 0.1, unbiased batch variance, as PyTorch does). The same is computed
in float32; only its loss, logits and the worst relative gradient error against float64
are stored, as a check that the reference is numerically stable.

It also (re)writes the "Gradient references" section at the end of
fixtures/torch/README.md, which make_fixtures.py overwrites: run this after it.
"""

import base64
import copy
import json
import os
import sys

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from make_fixtures import MODELS, OUT, give_bn_statistics  # noqa: E402

NAMES = ['vgg_small', 'resnet_small']
BATCH = 8
INPUT_SEED = 2024
LABEL_SEED = 2025
CLASSES = 10
MAX_BYTES = 1024 * 1024
# float32 vs float64 gradients: per tensor ||g32 - g64|| / ||g64||.
FLOAT32_TOLERANCE = 1e-4
# Central differences in float64 on a few coordinates per parameter, as a sanity check
# that the recorded gradients are what the loss does (ReLU/MaxPool kinks aside).
FD_STEP = 1e-6
FD_COORDS = 2
FD_TOLERANCE = 1e-5


def fail(msg):
    sys.exit(f'make_grad_fixtures: {msg}')


def rebuild_models():
    """The models of make_fixtures.main(), in its order and with its seeds."""
    torch.manual_seed(0)
    built = {}
    for index, (name, cls) in enumerate(MODELS):
        model = cls()
        give_bn_statistics(model, torch.Generator().manual_seed(100 + index))
        built[name] = model
    return built


def running_stat_names(graph):
    """Initializers read as BatchNormalization inputs 3 and 4 (mean, variance)."""
    names = set()
    for node in graph.node:
        if node.op_type == 'BatchNormalization':
            names.update(i for i in node.input[3:5] if i)
    return names


def map_to_onnx(model, graph):
    """{torch name: ONNX initializer name} for every parameter and BN running statistic,
    checking the values are identical. Names are matched first; a tensor the exporter
    renamed is matched by value (shape and bytes), which must be unique."""
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    stats = running_stat_names(graph)
    trainable = {n for n, a in inits.items() if a.dtype.kind == 'f' and n not in stats}
    tensors = dict(model.named_parameters())
    tensors.update((n, b) for n, b in model.named_buffers() if n.endswith(('running_mean', 'running_var')))
    mapping = {}
    for tname, t in tensors.items():
        value = t.detach().numpy()
        if tname in inits:
            candidates = [tname]
        else:
            candidates = [n for n, a in inits.items()
                          if a.shape == value.shape and a.dtype == value.dtype and np.array_equal(a, value)]
            if len(candidates) != 1:
                fail(f'{tname}: {len(candidates)} ONNX initializers match its value, expected exactly 1')
        oname = candidates[0]
        if not np.array_equal(inits[oname], value) or inits[oname].shape != value.shape:
            fail(f'{tname}: differs from ONNX initializer {oname}; the rebuilt model is not the exported one '
                 '(did make_fixtures.py change? rerun it first)')
        mapping[tname] = oname
    params = {mapping[n] for n, _ in model.named_parameters()}
    if params != trainable:
        fail(f'trainable ONNX initializers without a torch parameter: {sorted(trainable - params)}; '
             f'mapped to non-trainable ones: {sorted(params - trainable)}')
    mapped_stats = set(mapping.values()) - params
    if mapped_stats != stats:
        fail(f'running statistics not matched: {sorted(stats ^ mapped_stats)}')
    return mapping


def fixed_batch():
    x = torch.randn(BATCH, 1, 28, 28, generator=torch.Generator().manual_seed(INPUT_SEED))
    y = torch.randint(0, CLASSES, (BATCH,), generator=torch.Generator().manual_seed(LABEL_SEED))
    return x, y


def prepare(model, mode, dtype):
    m = copy.deepcopy(model).to(dtype)
    if mode == 'train':
        m.train()
        for d in m.modules():
            if isinstance(d, nn.Dropout):
                d.p = 0.0
    else:
        m.eval()
    return m


def step(model, mode, dtype, x, y):
    """Loss, logits, parameter and input gradients, and running statistics afterwards."""
    m = prepare(model, mode, dtype)
    xi = x.to(dtype).clone().requires_grad_(True)
    logits = m(xi)
    loss = nn.functional.cross_entropy(logits, y)
    loss.backward()
    return {
        'loss': loss.item(),
        'logits': logits.detach(),
        'grads': {n: p.grad.detach().clone() for n, p in m.named_parameters()},
        'input_grad': xi.grad.detach().clone(),
        'running': {n: b.detach().clone() for n, b in m.named_buffers()
                    if n.endswith(('running_mean', 'running_var'))},
    }


def loss_of(model, mode, x, y):
    with torch.no_grad():
        m = prepare(model, mode, torch.float64)
        return nn.functional.cross_entropy(m(x.double()), y).item()


def finite_difference_check(model, mode, x, y, grads, gen):
    """Worst |fd - autograd| / max(1, |autograd|) over a few coordinates per parameter."""
    base = prepare(model, mode, torch.float64)
    worst = 0.0
    for name, p in base.named_parameters():
        for _ in range(FD_COORDS):
            i = int(torch.randint(0, p.numel(), (1,), generator=gen))
            vals = []
            for sign in (1, -1):
                probe = copy.deepcopy(base)
                with torch.no_grad():
                    dict(probe.named_parameters())[name].view(-1)[i] += sign * FD_STEP
                vals.append(loss_of(probe, mode, x, y))
            fd = (vals[0] - vals[1]) / (2 * FD_STEP)
            g = float(grads[name].view(-1)[i])
            worst = max(worst, abs(fd - g) / max(1.0, abs(g)))
    return worst


def relative_error(a, b):
    denom = b.norm().item()
    return (a.double() - b).norm().item() / (denom if denom > 0 else 1.0)


def b64(t, dtype):
    return base64.b64encode(t.detach().numpy().astype(dtype).tobytes()).decode('ascii')


def encoded(t):
    return {'shape': list(t.shape), 'data': b64(t, '<f8')}


def describe(name, model, mapping, x, y, gen):
    modes = {}
    for mode in ('train', 'eval'):
        r64 = step(model, mode, torch.float64, x, y)
        r32 = step(model, mode, torch.float32, x, y)
        grad_err = max(relative_error(r32['grads'][n], r64['grads'][n]) for n in r64['grads'])
        grad_err = max(grad_err, relative_error(r32['input_grad'], r64['input_grad']))
        if grad_err > FLOAT32_TOLERANCE:
            fail(f'{name} {mode}: float32 gradients differ from float64 by {grad_err:.3g} relative')
        fd_err = finite_difference_check(model, mode, x, y, r64['grads'], gen)
        if fd_err > FD_TOLERANCE:
            fail(f'{name} {mode}: central differences disagree with autograd by {fd_err:.3g}')
        entry = {
            'loss': r64['loss'],
            'logits': b64(r64['logits'], '<f8'),
            'grads': {mapping[n]: encoded(g) for n, g in r64['grads'].items()},
            'input_grad': encoded(r64['input_grad']),
            'running': ({mapping[n]: encoded(v) for n, v in r64['running'].items()} if mode == 'train' else {}),
            'float32': {'loss': r32['loss'], 'logits': b64(r32['logits'], '<f4'),
                        'max_grad_rel_err': grad_err},
            'fd_max_err': fd_err,
        }
        modes[mode] = entry
        print(f'{name} {mode}: loss {r64["loss"]:.6f}, float32 grad rel err {grad_err:.2e}, '
              f'finite-difference err {fd_err:.2e}')
    return modes


README_HEADING = '## Gradient references (`<name>.grad.json`)'


def readme_section(sizes):
    lines = [
        README_HEADING,
        '',
        'Generated by `tools/torch/make_grad_fixtures.py` (run it after `make_fixtures.py`, '
        'which rewrites this README); do not edit by hand:',
        '',
        '    /usr/bin/python3 tools/torch/make_grad_fixtures.py',
        '',
        f'- torch {torch.__version__}. The script rebuilds the models with make_fixtures.py\'s code and '
        'seeds and fails unless every weight and running statistic equals the initializer of '
        '`<name>.nofold.onnx` bit for bit; gradients are keyed by those initializer names.',
        f'- Batch: `input` [{BATCH},1,28,28] standard normal from `torch.Generator().manual_seed({INPUT_SEED})` '
        f'(base64 little-endian float32), `labels` from `torch.randint(0, 10, ({BATCH},))` with seed '
        f'{LABEL_SEED}. Computed in float64 from that float32 input (`model.double()`).',
        '- Loss: `CrossEntropyLoss` (mean over the batch) of the logits.',
        '- `modes.train`: BatchNorm on batch statistics; **every Dropout has p set to 0** (the ONNX '
        'file has no Dropout node, and random masks are not reproducible). `running` holds each '
        'running_mean/running_var after the step: PyTorch momentum 0.1 (ONNX attribute momentum '
        '0.9) and the **unbiased** batch variance (divisor n-1, n = N*H*W). The ONNX '
        'BatchNormalization spec updates with the biased variance; a graph must use n/(n-1) to match.',
        '- `modes.eval`: `model.eval()`, BatchNorm on running statistics; `running` is empty.',
        '- Per mode: `loss` (number), `logits` [8,10], `grads` {initializer: {shape, data}}, '
        '`input_grad` {shape, data}; every tensor base64 of little-endian float64, row-major.',
        '- Per mode, `float32`: the same step in float32 (loss, logits as float32, and '
        '`max_grad_rel_err`, the worst per-tensor ||g32-g64||/||g64||), and `fd_max_err`: the '
        f'worst disagreement of central differences (step {FD_STEP}) on {FD_COORDS} random '
        'coordinates per parameter with the recorded float64 gradients. The script fails if '
        f'either exceeds {FLOAT32_TOLERANCE} / {FD_TOLERANCE}.',
        '- Decode with `readGradFixture` (test/helpers/grad-fixtures.ts); '
        'test/torch/grad-fixtures.test.ts checks the files against their models.',
        '',
        '| file | bytes |',
        '|---|---|',
    ]
    lines += [f'| {n}.grad.json | {size} |' for n, size in sizes]
    return '\n'.join(lines) + '\n'


def update_readme(sizes):
    path = os.path.join(OUT, 'README.md')
    with open(path) as f:
        text = f.read()
    if README_HEADING in text:
        text = text[:text.index(README_HEADING)].rstrip('\n') + '\n'
    with open(path, 'w') as f:
        f.write(text + '\n' + readme_section(sizes))


def main():
    torch.set_num_threads(1)  # reproducible reductions
    models = rebuild_models()
    x, y = fixed_batch()
    if len(set(y.tolist())) < 3:
        fail(f'labels {y.tolist()} are too uniform to exercise the loss')
    gen = torch.Generator().manual_seed(7)
    sizes = []
    for name in NAMES:
        model_file = f'{name}.nofold.onnx'
        graph = onnx.load(os.path.join(OUT, model_file)).graph
        mapping = map_to_onnx(models[name], graph)
        doc = {
            'model': model_file,
            'input_shape': list(x.shape),
            'input': b64(x, '<f4'),
            'labels': y.tolist(),
            'logits_shape': [BATCH, CLASSES],
            'modes': describe(name, models[name], mapping, x, y, gen),
            'torch_version': torch.__version__,
            'notes': {
                'encoding': 'input: base64 of little-endian float32; every other tensor: base64 of '
                            'little-endian float64, row-major',
                'loss': 'CrossEntropyLoss, mean over the batch, of the logits',
                'train': 'BatchNorm on batch statistics; Dropout p set to 0; running statistics '
                         'updated with momentum 0.1 and the unbiased batch variance',
                'eval': 'model.eval(): BatchNorm on running statistics; running statistics unchanged',
                'float32': 'the same step in float32: loss, logits (base64 float32) and the worst '
                           'per-tensor relative error of its gradients against float64',
            },
        }
        path = os.path.join(OUT, f'{name}.grad.json')
        text = json.dumps(doc, indent=1) + '\n'
        if len(text) > MAX_BYTES:
            fail(f'{path} would be {len(text)} bytes, over the {MAX_BYTES} limit')
        with open(path, 'w') as f:
            f.write(text)
        print(f'{path}: {len(text)} bytes')
        sizes.append((name, len(text)))
    update_readme(sizes)


if __name__ == '__main__':
    main()
