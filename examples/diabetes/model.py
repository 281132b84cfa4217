"""The diabetes reference: a small regression MLP trained with the Huber loss on the raw target, which
a few large residuals would dominate under the squared error.

The harness calls `build(n_features, n_outputs)` after seeding torch, so the initialization is
PyTorch's default for each layer.
"""

from __future__ import annotations

import torch
from torch import nn


class DiabetesNet(nn.Module):
    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_features, 64)
        self.act1 = nn.ReLU()
        self.fc2 = nn.Linear(64, 32)
        self.act2 = nn.ReLU()
        self.out = nn.Linear(32, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act2(self.fc2(self.act1(self.fc1(x)))))


def build(n_features: int, n_outputs: int) -> nn.Module:
    return DiabetesNet(n_features, n_outputs)
