"""The transformer reference: token ids through an Embedding plus a learned position embedding, two
nn.TransformerEncoderLayers (PyTorch's defaults: post-norm, ReLU; batch first, no dropout), a mean over
the sequence and a Linear head. Its Burn port uses Burn's TransformerEncoder, whose defaults differ
(GELU, dropout 0.1): the pitfalls docs/burn-0.22.md lists.

harness.toml's `[data] sample_shape = [8]` makes each row's 8 token columns one sequence; the model reads
the ids as int64. The harness calls `build(n_features, n_outputs)` after seeding torch.
"""

from __future__ import annotations

import torch
from torch import nn

VOCAB, EMBED, HEADS, FF, LAYERS, LENGTH = 10, 16, 2, 32, 2, 8


class TransformerNet(nn.Module):
    def __init__(self, n_outputs: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, EMBED)
        # Each position's own vector, learned (as BERT's and ViT's): attention alone is blind to order.
        self.pos = nn.Parameter(torch.randn(1, LENGTH, EMBED) * 0.1)
        layer = nn.TransformerEncoderLayer(EMBED, HEADS, FF, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
        self.head = nn.Linear(EMBED, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.enc(self.emb(x.long()) + self.pos)
        return self.head(h.mean(1))


def build(n_features: int, n_outputs: int) -> nn.Module:
    return TransformerNet(n_outputs)
