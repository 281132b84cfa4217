"""The sequence reference: token ids through an Embedding, a batch-first LSTM and a head on the last step,
the layers sequence ports most often get wrong (the LSTM's packed gates, batch_first).

harness.toml's `[data] sample_shape = [8]` makes each row's 8 token columns one sequence; the model reads
the ids as int64. The harness calls `build(n_features, n_outputs)` after seeding torch.
"""

from __future__ import annotations

import torch
from torch import nn

VOCAB, EMBED, HIDDEN = 10, 16, 32


class SequenceNet(nn.Module):
    def __init__(self, n_outputs: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, EMBED)
        self.lstm = nn.LSTM(EMBED, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = self.lstm(self.emb(x.long()))[0]
        return self.head(states[:, -1])


def build(n_features: int, n_outputs: int) -> nn.Module:
    return SequenceNet(n_outputs)
