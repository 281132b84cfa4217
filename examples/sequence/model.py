"""The sequence reference: token ids through an Embedding, self-attention, a batch-first LSTM and GRU, and a
head on the last step: the layers sequence ports most often get wrong (attention's packed query, key and
value; the LSTM's and GRU's packed gates; batch_first; the GRU's reset_after).

harness.toml's `[data] sample_shape = [8]` makes each row's 8 token columns one sequence, and its
`sample_dtype = "int64"` hands the model the ids as int64, as an Embedding takes them. The harness calls
`build(n_features, n_outputs)` after seeding torch.
"""

from __future__ import annotations

import torch
from torch import nn

VOCAB, EMBED, HEADS, HIDDEN = 10, 16, 2, 32


class SequenceNet(nn.Module):
    def __init__(self, n_outputs: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, EMBED)
        self.attn = nn.MultiheadAttention(EMBED, HEADS, batch_first=True)
        self.lstm = nn.LSTM(EMBED, HIDDEN, batch_first=True)
        self.gru = nn.GRU(HIDDEN, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb(x)
        h = self.attn(h, h, h, need_weights=False)[0]
        states = self.gru(self.lstm(h)[0])[0]
        return self.head(states[:, -1])


def build(n_features: int, n_outputs: int) -> nn.Module:
    return SequenceNet(n_outputs)
