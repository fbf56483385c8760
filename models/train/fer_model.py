"""Expression CNN: compact VGG/ResNet-style net for 48x48 grayscale faces."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn(cin, cout, k=3, s=1, groups=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ResBlock(nn.Module):
    """Basic residual block (two 3x3 convs) with optional projection."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)), inplace=True)
        y = self.b2(self.c2(y))
        s = x if self.proj is None else self.proj(x)
        return F.relu(y + s, inplace=True)


class VGGNet(nn.Module):
    """Stages of `depth` 3x3 conv-BN-ReLU, max-pool after each stage, GAP, dropout, linear.

    `depth` is one count for every stage or a tuple per stage: extra convolutions are cheapest in the
    late, low-resolution stages (a 3x3 conv at 6x6 costs 1/64 of the same conv at 48x48 per channel pair).
    """

    def __init__(self, widths=(32, 64, 128, 256), depth=2, n_classes=7, dropout=0.3):
        super().__init__()
        layers, cin = [], 1
        depths = (depth,) * len(widths) if isinstance(depth, int) else tuple(depth)
        for w, d in zip(widths, depths):
            for _ in range(d):
                layers.append(conv_bn(cin, w))
                cin = w
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, n_classes)

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(self.drop(x))


class ResNetS(nn.Module):
    """Stem conv at 48x48, then residual stages at 48/24/12/6."""

    def __init__(self, widths=(32, 64, 128, 256), blocks=(1, 1, 1, 1), n_classes=7, dropout=0.3):
        super().__init__()
        self.stem = conv_bn(1, widths[0])
        stages, cin = [], widths[0]
        for i, (w, b) in enumerate(zip(widths, blocks)):
            for j in range(b):
                stages.append(ResBlock(cin, w, stride=2 if (j == 0 and i > 0) else 1))
                cin = w
        self.stages = nn.Sequential(*stages)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, n_classes)

    def forward(self, x):
        x = self.stages(self.stem(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(self.drop(x))


ARCHS = {
    "vgg_s": lambda: VGGNet((32, 64, 128, 256), depth=2),
    "vgg_xs": lambda: VGGNet((24, 48, 96, 192), depth=2),
    "vgg_m": lambda: VGGNet((48, 96, 192, 384), depth=2),
    "vgg_s3": lambda: VGGNet((32, 64, 128, 256), depth=3),
    "vgg_w40": lambda: VGGNet((40, 80, 160, 320), depth=2),
    "vgg_s2233": lambda: VGGNet((32, 64, 128, 256), depth=(2, 2, 3, 3)),
    "vgg_s2234": lambda: VGGNet((32, 64, 128, 320), depth=(2, 2, 3, 3)),
    "res_s": lambda: ResNetS((32, 64, 128, 256), (1, 1, 1, 1)),
    "res_m": lambda: ResNetS((32, 64, 128, 256), (1, 2, 2, 1)),
}


def build(arch: str) -> nn.Module:
    return ARCHS[arch]()


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
