#!/usr/bin/python3
"""Export torchvision classifiers as a user would: torch.onnx.export with its defaults.

    /usr/bin/python3 tools/torch/export_torchvision.py OUT_DIR [--only name,name] [--seed 0] [--size N]

For each family (random init, 10 classes): <name>.onnx (opset 17, do_constant_folding
on, eval mode, so BatchNorm is folded into the convolutions) and <name>.io.json (a
fixed input batch and PyTorch's logits for it, base64 little-endian float32).
CNNs and Swin-T take 3x64x64 (VGG-11 with its pooling adapted, see vgg11_bn_pooled); the small Vision Transformer 3x32x32 (patch 4, 4 layers, hidden 128,
4 heads, MLP 512). Used by tools/byom-table.mjs for the README's bring-your-own-model
table; nothing here is committed (the files are large). Needs Debian's python3-torch,
python3-torchvision, python3-onnx; the project itself never needs Python.
"""
import argparse
import base64
import json
import os
import sys

import torch
import torchvision.models as tvm
from torchvision.models.vision_transformer import VisionTransformer

OPSET = 17
BATCH = 4


def vit_small(num_classes=10):
    m = VisionTransformer(image_size=32, patch_size=4, num_layers=4, num_heads=4,
                          hidden_dim=128, mlp_dim=512, num_classes=num_classes)
    # torchvision zero-initialises the head (for fine-tuning from pretrained weights);
    # from scratch that makes every logit the bias, so give it a Linear's default init
    m.heads.head.reset_parameters()
    return m


def vgg11_bn_pooled(num_classes=10):
    """VGG-11 with BN, its pooling adapted to small inputs: at 64x64 the features are 2x2
    and torchvision's AdaptiveAvgPool2d(7) cannot export (7 is not a factor of 2), so
    pool to 1x1 and give the first classifier layer 512 inputs."""
    import torch.nn as nn
    m = tvm.vgg11_bn(num_classes=num_classes)
    m.avgpool = nn.AdaptiveAvgPool2d(1)
    m.classifier[0] = nn.Linear(512, 4096)
    return m


# name -> (constructor, input size)
FAMILIES = {
    'resnet18': (lambda: tvm.resnet18(num_classes=10), 64),
    'resnet50': (lambda: tvm.resnet50(num_classes=10), 64),
    'googlenet': (lambda: tvm.googlenet(num_classes=10, aux_logits=False, init_weights=True), 64),
    'mobilenet_v2': (lambda: tvm.mobilenet_v2(num_classes=10), 64),
    'mobilenet_v3_small': (lambda: tvm.mobilenet_v3_small(num_classes=10), 64),
    'efficientnet_b0': (lambda: tvm.efficientnet_b0(num_classes=10), 64),
    'densenet121': (lambda: tvm.densenet121(num_classes=10), 64),
    'regnet_x_400mf': (lambda: tvm.regnet_x_400mf(num_classes=10), 64),
    'convnext_tiny': (lambda: tvm.convnext_tiny(num_classes=10), 64),
    'shufflenet_v2_x0_5': (lambda: tvm.shufflenet_v2_x0_5(num_classes=10), 64),
    'squeezenet1_1': (lambda: tvm.squeezenet1_1(num_classes=10), 64),
    'vgg11_bn': (lambda: vgg11_bn_pooled(), 64),
    'vit_small': (vit_small, 32),
    'swin_t': (lambda: tvm.swin_t(num_classes=10), 64),
}


def b64(t):
    return base64.b64encode(t.detach().contiguous().numpy().astype('<f4').tobytes()).decode()


def settle_batchnorm(model, size, seed):
    """Random init leaves BN at mean 0 / var 1; a few train-mode batches give it real
    running statistics, so a wrong BatchNorm fold shows in the logits."""
    g = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, size, size, generator=g))
    model.eval()


def export(name, out, seed, size=None):
    make, default_size = FAMILIES[name]
    size = size or default_size
    torch.manual_seed(seed)
    model = make()
    settle_batchnorm(model, size, seed + 1)
    x = torch.randn(BATCH, 3, size, size, generator=torch.Generator().manual_seed(1234))
    with torch.no_grad():
        logits = model(x)
    path = os.path.join(out, name + '.onnx')
    torch.onnx.export(model, x, path, opset_version=OPSET, input_names=['input'], output_names=['logits'],
                      dynamic_axes={'input': {0: 'N'}, 'logits': {0: 'N'}})
    with open(os.path.join(out, name + '.io.json'), 'w') as f:
        json.dump({'input_shape': list(x.shape), 'input': b64(x), 'logits_shape': list(logits.shape),
                   'logits': b64(logits), 'torch': torch.__version__, 'seed': seed}, f)
    params = sum(p.numel() for p in model.parameters())
    print(f'{name}: {params} parameters, input 3x{size}x{size} -> {path}', file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('out')
    ap.add_argument('--only', default='')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--size', type=int, default=0, help='input side instead of the family default (64; ViT 32)')
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    names = [n for n in a.only.split(',') if n] or list(FAMILIES)
    for n in names:
        if n not in FAMILIES:
            sys.exit(f'unknown family {n}; known: {", ".join(FAMILIES)}')
        export(n, a.out, a.seed, a.size or None)


if __name__ == '__main__':
    main()
