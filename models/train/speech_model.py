"""Speech emotion CNN on logmel64 v1 features [N,1,64,297]."""
from __future__ import annotations

import torch
import torch.nn as nn


def cbr(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def masked_cmn(x, gap=1.0):
    """Per-utterance cepstral-style mean normalisation inside the graph (no change to the feature spec).

    x: logmel64 v1 features [N,1,64,T] (already z-scored over the whole window). Frames that are only
    zero padding sit at the window minimum in every mel bin; a frame counts as signal when its loudest
    bin is more than `gap` above the window minimum. Each mel bin's mean over the signal frames is
    subtracted from the signal frames; padding frames are set to 0. Removes the long-term spectral
    envelope of the recording chain and speaker, keeps the frame-to-frame dynamics.
    """
    floor = x.amin(dim=(2, 3), keepdim=True)                      # [N,1,1,1]
    m = (x.amax(dim=2, keepdim=True) > floor + gap).to(x.dtype)   # [N,1,1,T]
    cnt = m.sum(dim=3, keepdim=True).clamp_min(1.0)
    mu = (x * m).sum(dim=3, keepdim=True) / cnt                   # [N,1,64,1]
    return (x - mu) * m


class SpeechCNN(nn.Module):
    """`cmn`: masked per-utterance mean normalisation as the first op (part of the ONNX graph).
    `n_aux`: size of an auxiliary head (speaker gender) used only in training; forward() returns the
    emotion logits only unless `with_aux=True`, so the exported graph is unchanged in its contract."""

    def __init__(self, n_classes=8, w=(24, 32, 64, 128), dropout=0.3, cmn=False, n_aux=0):
        super().__init__()
        self.cmn = cmn
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
        self.aux = nn.Linear(2 * w[3], n_aux) if n_aux else None

    def forward(self, x, with_aux: bool = False):
        if self.cmn:
            x = masked_cmn(x)
        h = self.net(x).mean(dim=2)  # average over frequency -> [N, C, T]
        h = self.drop(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))
        if with_aux:
            return self.fc(h), self.aux(h)
        return self.fc(h)


def build(args: dict | None):
    """The network a training run used (args = the run's saved argument dict; None = the v1 network)."""
    args = args or {}
    return SpeechCNN(w=tuple(args.get("width", (24, 32, 64, 128))), cmn=bool(args.get("cmn", False)),
                     n_aux=2 if args.get("gender_w", 0) > 0 else 0)


def n_params(m):
    return sum(p.numel() for p in m.parameters())
