"""Reference PyTorch models for the baseline benchmarks, and a forward FLOP counter.

VGG-11 and ResNet-18 follow kuangliu/pytorch-cifar exactly (same layers, same
parameter counts), so the figures compare like with like against modelsmith's zoo.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

VGG11_CFG = [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M']
VGG11_PARAMS = 9_231_114
RESNET18_PARAMS = 11_173_962


class VGG(nn.Module):
    def __init__(self, cfg=VGG11_CFG, in_channels=3, classes=10):
        super().__init__()
        layers = []
        for v in cfg:
            if v == 'M':
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_channels, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                in_channels = v
        layers.append(nn.AvgPool2d(1, 1))  # kept for fidelity with kuangliu: a no-op
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_channels, classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet with basic blocks: 3x3 stem, no max pool, four stages at strides
    1,2,2,2, global average pool, Linear. width scales the stage channels 64..512."""

    def __init__(self, blocks=(2, 2, 2, 2), width=1.0, in_channels=3, classes=10):
        super().__init__()
        widths = [int(round(c * width)) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages, cin = [], widths[0]
        for i, (n, cout) in enumerate(zip(blocks, widths)):
            strides = [1 if i == 0 else 2] + [1] * (n - 1)
            stage = []
            for s in strides:
                stage.append(BasicBlock(cin, cout, s))
                cin = cout
            stages.append(nn.Sequential(*stage))
        self.layers = nn.Sequential(*stages)
        # Adaptive rather than kuangliu's avg_pool2d(4): the same on 32x32 inputs
        # (4x4 maps), and also right on 28x28 inputs.
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(cin, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.pool(self.layers(out))
        return self.linear(out.flatten(1))


def param_count(model):
    return sum(p.numel() for p in model.parameters())


def build(name):
    """(model, input shape without batch) for a benchmark model name."""
    if name == 'vgg11':
        model, shape = VGG(), (3, 32, 32)
        assert param_count(model) == VGG11_PARAMS, param_count(model)
    elif name == 'resnet18':
        model, shape = ResNet(), (3, 32, 32)
        assert param_count(model) == RESNET18_PARAMS, param_count(model)
    elif name == 'resnet1111_w0.25':
        model, shape = ResNet((1, 1, 1, 1), width=0.25, in_channels=1), (1, 28, 28)
    else:
        raise SystemExit(f'unknown model {name!r}; expected vgg11, resnet18 or resnet1111_w0.25')
    return model, shape


def forward_flops(model, shape):
    """Forward FLOPs for one image: a multiply-add is 2 FLOPs, counted for Conv2d and
    Linear only (BN, ReLU, pooling and adds are a few percent and memory-bound)."""
    total = [0]

    def conv_hook(m, _inp, out):
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total[0] += 2 * k * out[0].numel()  # out[0]: one image's output map

    def linear_hook(m, _inp, out):
        total[0] += 2 * m.in_features * m.out_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return total[0]
