"""The digits reference: a small multiclass MLP with the layers tabular ports most often get wrong
(LayerNorm, exact GELU, Dropout, BatchNorm1d with running statistics).

The harness calls `build(n_features, n_outputs)` after seeding torch, so the initialization is
PyTorch's default for each layer.
"""

from __future__ import annotations

import torch
from torch import nn


class DigitsNet(nn.Module):
    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_features, 128)
        self.norm1 = nn.LayerNorm(128)
        self.act1 = nn.GELU()
        self.drop = nn.Dropout(0.1)
        self.fc2 = nn.Linear(128, 64)
        self.bn = nn.BatchNorm1d(64)
        self.act2 = nn.ReLU()
        self.fc3 = nn.Linear(64, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(self.act1(self.norm1(self.fc1(x))))
        return self.fc3(self.act2(self.bn(self.fc2(h))))


def build(n_features: int, n_outputs: int) -> nn.Module:
    return DigitsNet(n_features, n_outputs)
