"""The digits CNN reference: the 8x8 digits as 1x8x8 images through the layers image ports most often get
wrong: Conv2d with padding, BatchNorm2d, MaxPool2d, AvgPool2d with padding (count_include_pad),
AdaptiveAvgPool2d, and the Flatten before the classifier (PyTorch flattens channels first, NCHW).

harness.toml's `[data] sample_shape = [1, 8, 8]` makes each CSV row one image; the harness calls
`build(n_features, n_outputs)` after seeding torch, so the initialization is PyTorch's default.
"""

from __future__ import annotations

import torch
from torch import nn


class DigitsCNN(nn.Module):
    def __init__(self, n_outputs: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.act1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.act2 = nn.ReLU()
        self.pool2 = nn.AvgPool2d(3, stride=1, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(32 * 2 * 2, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool1(self.act1(self.bn1(self.conv1(x))))
        h = self.gap(self.pool2(self.act2(self.conv2(h))))
        return self.fc(self.flatten(h))


def build(n_features: int, n_outputs: int) -> nn.Module:
    if n_features != 64:
        raise ValueError(f"the digits CNN takes 8x8 images (64 features), got {n_features}")
    return DigitsCNN(n_outputs)
