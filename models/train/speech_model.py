"""Speech emotion CNN on logmel64 v1 features [N,1,64,297]."""
from __future__ import annotations

import torch
import torch.nn as nn


def cbr(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SpeechCNN(nn.Module):
    def __init__(self, n_classes=8, w=(24, 32, 64, 128), dropout=0.3):
        super().__init__()
        self.net = nn.Sequential(
            cbr(1, w[0], 2),          # 32 x 149
            cbr(w[0], w[1], 2),       # 16 x 75
            cbr(w[1], w[1]),
            nn.MaxPool2d(2),          # 8 x 37
            cbr(w[1], w[2]),
            cbr(w[2], w[2]),
            nn.MaxPool2d(2),          # 4 x 18
            cbr(w[2], w[3]),
            cbr(w[3], w[3]),
        )
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * w[3], n_classes)

    def forward(self, x):
        h = self.net(x).mean(dim=2)  # average over frequency -> [N, C, T]
        h = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
        return self.fc(self.drop(h))


def n_params(m):
    return sum(p.numel() for p in m.parameters())
