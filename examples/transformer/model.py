"""The transformer reference: token ids (0 pads a shorter sequence at its end) through an Embedding plus
a learned position embedding, two nn.TransformerEncoderLayers (PyTorch's defaults: post-norm, ReLU;
batch first, no dropout) that skip the pads (`src_key_padding_mask`), the mean over each sequence's real
tokens and a Linear head. Its Burn port uses Burn's TransformerEncoder, whose defaults differ (GELU,
dropout 0.1) and whose padding mask (`mask_pad`) fills the pads' scores with -1e4 where PyTorch uses
-inf: the pitfalls docs/burn-0.22.md lists.

harness.toml's `[data] sample_shape = [8]` makes each row's 8 token columns one sequence, and its
`sample_dtype = "int64"` hands the model the ids as int64, as an Embedding takes them. The harness calls
`build(n_features, n_outputs)` after seeding torch.
"""

from __future__ import annotations

import torch
from torch import nn

VOCAB, EMBED, HEADS, FF, LAYERS, LENGTH, PAD = 10, 16, 2, 32, 2, 8, 0


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
        pad = x == PAD
        h = self.enc(self.emb(x) + self.pos, src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).to(h.dtype)
        # clamp: a sequence of pads only (none in the data) pools to zeros rather than 0/0.
        return self.head((h * keep).sum(1) / keep.sum(1).clamp(min=1.0))


def build(n_features: int, n_outputs: int) -> nn.Module:
    return TransformerNet(n_outputs)
