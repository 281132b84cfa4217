"""The user's classifier in PyTorch, with every layer's output exposed for per-layer diffs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness.errors import HarnessError
from harness.reference.structure import Params, linear_chain, nudge

# Params, linear_chain and nudge live in structure.py (torch-free, for the ensemble's worker process).
__all__ = [
    "Classifier",
    "Params",
    "build",
    "check_params",
    "get_params",
    "init_params",
    "linear_chain",
    "load_params",
    "nudge",
]


class Classifier(nn.Module):
    """Every layer a module, activations included, so that the forward hooks see each by name and a
    diagnosis can replay any one of them through the rest (harness/diagnosis/layers.py)."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_features, 64)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(64, 32)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(32, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sigmoid(self.logits(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.relu2(self.fc2(self.relu1(self.fc1(x)))))


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


def load_params(path: Path) -> Params:
    """Parameters in PyTorch's layout from an .npz file (never a pickle: allow_pickle=False)."""
    if Path(path).is_dir():
        raise HarnessError(f"weights file '{path}' is a directory")
    if not Path(path).is_file():
        raise HarnessError(f"weights file '{path}' not found")
    try:
        with Path(path).open("rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise HarnessError(f"cannot read weights file '{path}': {e.strerror or e}") from e
    # Anything but a zip archive would reach numpy's pickle branch and be blamed on allow_pickle.
    if magic[:4] != b"PK\x03\x04":
        kind = "a single .npy array" if magic == b"\x93NUMPY" else "not an .npz archive"
        raise HarnessError(
            f"weights file '{path}' is {kind}; save the six parameters with numpy.savez (names as in state_dict)"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            params = {k: np.asarray(z[k], dtype=np.float32) for k in z.files}
    except (ValueError, OSError) as e:
        raise HarnessError(f"cannot read weights file '{path}' as .npz: {e}") from e
    expected = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"}
    if set(params) != expected:
        raise HarnessError(f"weights file '{path}' must hold exactly {', '.join(sorted(expected))}")
    return params


def check_params(params: Params, n_features: int) -> None:
    expected = get_params(Classifier(n_features))
    for k, v in expected.items():
        if params[k].shape != v.shape:
            raise HarnessError(
                f"parameter '{k}' has shape {list(params[k].shape)}; expected {list(v.shape)} for {n_features} input features"
            )
