"""Candidate causes for gradients that differ: the reference's backward pass (torch autograd through
the user's model) replayed with another loss on its output.

Evidence: the loss and every parameter's gradient on each case the stage ran (the first batch at the
initial weights, and saturated outputs both ways).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from harness.compare import Tolerance
from harness.diagnosis import Candidate, Cause, explain, ratios
from harness.reference import model as ref_model
from harness.reference.model import Params

# A loss on (logits z, probabilities p, targets y).
Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Case:
    name: str
    params: Params
    x: np.ndarray
    y: np.ndarray
    loss: float  # the port's
    grads: Params


def _clamped(z: torch.Tensor, p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((y - 1) * torch.log1p(-p).clamp_min(-100) - y * torch.log(p).clamp_min(-100)).mean()


LOSSES: dict[str, tuple[str, Loss]] = {
    "logits_loss": (
        "BCE with logits on the last Linear's output (no clamp: the gradient stays (sigmoid(z) - y) / N where "
        "the reference's float32 sigmoid saturates)",
        lambda z, p, y: F.binary_cross_entropy_with_logits(z, y),
    ),
    "loss_sum": ("the loss summed over the batch", lambda z, p, y: F.binary_cross_entropy(p, y, reduction="sum")),
    "gradient_through_clamp": ("BCE with its gradient taken through the -100 clamp", _clamped),
    "unclamped": (
        "BCE without the clamp",
        lambda z, p, y: -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean(),
    ),
    "mse": ("mean squared error", lambda z, p, y: F.mse_loss(p, y)),
    "sigmoid_explicit": (
        "sigmoid written as 1 / (1 + exp(-z)): where float32 p rounds to 1 its gradient exp(-z) / (1 + exp(-z))^2 "
        "stays positive, and BCELoss's 1 / max(p (1 - p), 1e-12) multiplies it (torch's sigmoid backward, p (1 - p), "
        "is 0 there)",
        lambda z, p, y: F.binary_cross_entropy(1 / (1 + torch.exp(-z)), y),
    ),
}


def replay(case: Case, loss: Loss) -> tuple[float, Params]:
    model = ref_model.build(case.params)
    z = model.layers(torch.from_numpy(case.x))["fc3"].squeeze(1)
    value = loss(z, torch.sigmoid(z), torch.from_numpy(case.y))
    value.backward()
    return float(value.item()), {n: p.grad.numpy().copy() for n, p in model.named_parameters() if p.grad is not None}


def diagnose(cases: Sequence[Case], tol: Tolerance) -> list[Cause]:
    def err(loss: Loss) -> float:
        worst = 0.0
        for c in cases:
            with np.errstate(all="ignore"):
                value, grads = replay(c, loss)
            worst = max(worst, float(ratios(np.float32(c.loss), np.float32(value), tol).max()))
            for n, g in grads.items():
                worst = max(worst, float(ratios(c.grads[n], g, tol).max()))
        return worst

    found = [Candidate(f"backward.{k}", what, lambda _, f=f: err(f)) for k, (what, f) in LOSSES.items()]
    return explain(found, f"the loss and every gradient on {len(cases)} cases ({', '.join(c.name for c in cases)})")
