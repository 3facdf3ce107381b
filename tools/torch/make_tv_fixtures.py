#!/usr/bin/python3
"""Make the committed torchvision-family fixtures in fixtures/torchvision/.

    /usr/bin/python3 tools/torch/make_tv_fixtures.py

Each fixture is a small member of a torchvision family, built from torchvision's own
classes and blocks (so the exported graph has the family's structure, operators and
node names) but narrow and shallow enough to commit: ResNet (BasicBlock and
Bottleneck), GoogLeNet's Inception, MobileNetV2, MobileNetV3-Small, EfficientNet-B0,
DenseNet, RegNet (with squeeze-excitation), ConvNeXt, ShuffleNetV2, SqueezeNet's Fire,
VGG with BN, a VisionTransformer and a Swin Transformer (windows of 3 on an 8x8 then 4x4
token grid, so both stages pad, shift and partition windows with reshapes the graph
computes from the batch size at run time). Full-size exports of the same families are made
by tools/torch/export_torchvision.py for the README table (too large to commit).

For each: <name>.onnx exported like a user would (torch.onnx.export defaults: opset 17,
constant folding, eval mode, so BatchNorm is folded into the convolutions where it
follows one; dynamic batch axis N) and <name>.io.json (a fixed batch and PyTorch's
logits, base64 little-endian float32). BatchNorm running statistics come from a few
train-mode batches and every affine/scale parameter is randomised, so a wrong fold or
a skipped layer shows in the logits.
"""
import base64
import json
import os
import sys

import onnx
import torch
import torch.nn as nn
import torchvision
import importlib
from torchvision.models import resnet, mobilenetv2, mobilenetv3, efficientnet, densenet, regnet
from torchvision.models import convnext, shufflenetv2, squeezenet, swin_transformer, vgg
from torchvision.models.vision_transformer import VisionTransformer

# torchvision.models.googlenet is also the name of a function there: take the module itself
googlenet = importlib.import_module('torchvision.models.googlenet')

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, '..', '..', 'fixtures', 'torchvision'))
OPSET = 17
BATCH = 4
SIZE = 32
MAX_BYTES = 600 * 1024  # a Swin block is ~600 nodes of shape arithmetic


def small_resnet(block, widths, layers):
    """torchvision's ResNet with its own _make_layer, narrower: the stem and stages are
    rebuilt at the given widths (torchvision hard-codes 64..512)."""
    m = resnet.ResNet(block, [1, 1, 1, 1], num_classes=10)
    m.inplanes = widths[0]
    m.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
    m.bn1 = nn.BatchNorm2d(widths[0])
    m.layer1 = m._make_layer(block, widths[0], layers[0])
    m.layer2 = m._make_layer(block, widths[1], layers[1], stride=2)
    m.layer3 = m._make_layer(block, widths[2], layers[2], stride=2)
    m.layer4 = m._make_layer(block, widths[3], layers[3], stride=2)
    m.fc = nn.Linear(widths[3] * block.expansion, 10)
    return m


class SmallGoogLeNet(nn.Module):
    """GoogLeNet's stem and Inception modules (torchvision's BasicConv2d and Inception)."""

    def __init__(self):
        super().__init__()
        self.conv1 = googlenet.BasicConv2d(3, 16, kernel_size=3, stride=1, padding=1)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = googlenet.Inception(16, 8, 8, 12, 4, 4, 4)
        self.inception3b = googlenet.Inception(28, 8, 8, 12, 4, 6, 6)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = googlenet.Inception(32, 12, 8, 12, 4, 4, 4)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(self.dropout(x))


class SmallSqueezeNet(nn.Module):
    """SqueezeNet 1.1's layout with torchvision's Fire modules, narrower."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=3, stride=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            squeezenet.Fire(16, 4, 8, 8), squeezenet.Fire(16, 4, 8, 8),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            squeezenet.Fire(16, 8, 16, 16))
        self.classifier = nn.Sequential(nn.Dropout(p=0.5), nn.Conv2d(32, 10, kernel_size=1), nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


def small_vgg():
    m = vgg.VGG(vgg.make_layers([8, 'M', 16, 'M', 32, 32, 'M'], batch_norm=True), num_classes=10)
    m.avgpool = nn.AdaptiveAvgPool2d(1)
    m.classifier = nn.Sequential(nn.Linear(32, 64), nn.ReLU(True), nn.Dropout(), nn.Linear(64, 64), nn.ReLU(True),
                                 nn.Dropout(), nn.Linear(64, 10))
    return m


def small_mobilenet_v3():
    setting, last = mobilenetv3._mobilenet_v3_conf('mobilenet_v3_small', width_mult=0.125)
    return mobilenetv3.MobileNetV3(setting, 64, num_classes=10)


def small_efficientnet():
    setting, last = efficientnet._efficientnet_conf('efficientnet_b0', width_mult=0.125, depth_mult=0.25)
    return efficientnet.EfficientNet(setting, 0.2, num_classes=10, last_channel=64)


def small_convnext():
    setting = [convnext.CNBlockConfig(16, 32, 1), convnext.CNBlockConfig(32, 64, 2), convnext.CNBlockConfig(64, None, 1)]
    return convnext.ConvNeXt(setting, layer_scale=0.5, num_classes=10)


def small_swin():
    """Swin-T's layout (patch 4, two stages with a shifted block each, patch merging between), narrow, with 3x3
    windows: 8x8 tokens pad to 9x9 (9 windows per image), 4x4 to 6x6 (4 windows, shift 1)."""
    return swin_transformer.SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[2, 2], num_heads=[2, 2],
                                            window_size=[3, 3], mlp_ratio=2.0, num_classes=10)


FIXTURES = {
    'tv_resnet18': lambda: small_resnet(resnet.BasicBlock, [8, 8, 16, 16], [2, 2, 2, 2]),
    'tv_resnet50': lambda: small_resnet(resnet.Bottleneck, [4, 8, 8, 16], [1, 2, 1, 1]),
    'tv_googlenet': SmallGoogLeNet,
    'tv_mobilenet_v2': lambda: mobilenetv2.MobileNetV2(num_classes=10, width_mult=0.25, inverted_residual_setting=[
        [1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 2, 2], [6, 64, 1, 1]]),
    'tv_mobilenet_v3_small': small_mobilenet_v3,
    'tv_efficientnet_b0': small_efficientnet,
    'tv_densenet': lambda: densenet.DenseNet(growth_rate=8, block_config=(2, 3, 2), num_init_features=16, bn_size=2,
                                             num_classes=10),
    'tv_regnet_x': lambda: regnet.RegNet(regnet.BlockParams.from_init_params(depth=4, w_0=8, w_a=8.0, w_m=2.0,
                                                                             group_width=4), num_classes=10,
                                         stem_width=8),
    'tv_regnet_y': lambda: regnet.RegNet(regnet.BlockParams.from_init_params(depth=4, w_0=8, w_a=8.0, w_m=2.0,
                                                                             group_width=4, se_ratio=0.25),
                                         num_classes=10, stem_width=8),
    'tv_convnext': small_convnext,
    'tv_shufflenet_v2': lambda: shufflenetv2.ShuffleNetV2([2, 2, 2], [8, 16, 32, 64, 128], num_classes=10),
    'tv_squeezenet': SmallSqueezeNet,
    'tv_vgg_bn': small_vgg,
    'tv_vit': lambda: VisionTransformer(image_size=SIZE, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                                        mlp_dim=64, num_classes=10),
    'tv_swin': small_swin,
}


def b64(t):
    return base64.b64encode(t.detach().contiguous().numpy().astype('<f4').tobytes()).decode()


def randomise(model, seed):
    """Random affine parameters everywhere (BN, LayerNorm, layer scale, biases) and real
    BatchNorm statistics from train-mode batches: zero biases and unit scales would make
    many initializers equal, which the exporter deduplicates into Identity aliases."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1 and not p.any():  # zero-initialised heads (the ViT's) would hide the whole network
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif p.dim() <= 1 or 'layer_scale' in name or 'class_token' in name or 'pos_embedding' in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (1.0 if name.endswith('weight') and p.dim() == 1 else 0.0))
        model.train()
        for _ in range(3):
            model(torch.randn(8, 3, SIZE, SIZE, generator=g))
    model.eval()


def operators(path):
    return sorted({n.op_type for n in onnx.load(path).graph.node})


def main():
    os.makedirs(OUT, exist_ok=True)
    rows = []
    for i, (name, make) in enumerate(FIXTURES.items()):
        torch.manual_seed(i)
        model = make()
        randomise(model, 100 + i)
        x = torch.randn(BATCH, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1234))
        with torch.no_grad():
            logits = model(x)
        path = os.path.join(OUT, name + '.onnx')
        torch.onnx.export(model, x, path, opset_version=OPSET, input_names=['input'], output_names=['logits'],
                          dynamic_axes={'input': {0: 'N'}, 'logits': {0: 'N'}})
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            sys.exit(f'{name}: {size} bytes is over the {MAX_BYTES} limit for a committed fixture')
        with open(os.path.join(OUT, name + '.io.json'), 'w') as f:
            json.dump({'input_shape': list(x.shape), 'input': b64(x), 'logits_shape': list(logits.shape),
                       'logits': b64(logits)}, f)
        params = sum(p.numel() for p in model.parameters())
        rows.append((name, params, size, operators(path)))
        print(f'{name}: {params} parameters, {size} bytes', file=sys.stderr)
    with open(os.path.join(OUT, 'README.md'), 'w') as f:
        f.write('# torchvision-family fixtures\n\n')
        f.write('Generated by `tools/torch/make_tv_fixtures.py` (see its docstring); do not edit by hand. Remake with\n\n')
        f.write('    /usr/bin/python3 tools/torch/make_tv_fixtures.py\n\n')
        f.write(f'- torch {torch.__version__}, torchvision {torchvision.__version__}, onnx {onnx.__version__}; '
                f'opset {OPSET}; input `input` [N,3,{SIZE},{SIZE}], output `logits` [N,10]; default export '
                '(constant folding on, eval mode: BatchNorm folded into a preceding Conv)\n')
        f.write('- small members of each family built from torchvision\'s own classes and blocks, so the graphs have '
                'the families\' structure and node names; full-size exports: tools/torch/export_torchvision.py\n')
        f.write('- `<name>.io.json`: `input` [4,3,32,32] (standard normal, `torch.Generator().manual_seed(1234)`) and '
                'PyTorch\'s `logits`, base64 little-endian float32\n\n')
        f.write('| fixture | parameters | bytes | ONNX operators |\n|---|---|---|---|\n')
        for name, params, size, ops in rows:
            f.write(f'| {name} | {params} | {size} | {", ".join(ops)} |\n')


if __name__ == '__main__':
    main()
