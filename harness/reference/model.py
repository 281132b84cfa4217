"""The user's classifier in PyTorch, with every layer's output exposed for per-layer diffs."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

Params = dict[str, np.ndarray]
LAYERS = ("fc1", "relu1", "fc2", "relu2", "fc3", "sigmoid")


class Classifier(nn.Module):
    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_features, 64)
        self.fc2 = nn.Linear(64, 32)
        self.fc3 = nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)["sigmoid"]

    def layers(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z1 = self.fc1(x)
        a1 = torch.relu(z1)
        z2 = self.fc2(a1)
        a2 = torch.relu(z2)
        z3 = self.fc3(a2)
        return {"fc1": z1, "relu1": a1, "fc2": z2, "relu2": a2, "fc3": z3, "sigmoid": torch.sigmoid(z3)}


def init_params(n_features: int, seed: int) -> Params:
    """nn.Linear's default init after torch.manual_seed(seed), as the user's script does."""
    torch.manual_seed(seed)
    return get_params(Classifier(n_features))


def get_params(model: nn.Module) -> Params:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def build(params: Params) -> Classifier:
    n_features = params["fc1.weight"].shape[1]
    model = Classifier(n_features)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32).copy()) for k, v in params.items()})
    return model


def nudge(params: Params, ulps: int = 1) -> Params:
    """Every parameter moved by `ulps` units in the last place: the reference's own chaos envelope."""
    out = {}
    for k, v in params.items():
        w = v.copy()
        for _ in range(ulps):
            w = np.nextafter(w, np.float32(np.inf)).astype(np.float32)
        out[k] = w
    return out
