"""Counterfactual diagnosis of the loss stage: ports whose loss is torch's BCELoss with one change, written
here with torch (not with the diagnosis's replay), each asserting the cause named."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.config import BUNDLED_DATA, RunConfig
from harness.pipeline import run_with
from harness.stages.base import Context

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class LossOnlyPort:
    def __init__(self, loss: Loss, grad_times_n: bool = False) -> None:
        self._loss = loss
        self._times_n = grad_times_n

    def loss(self, p: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        pt = torch.tensor(p, requires_grad=True)
        v = self._loss(pt, torch.tensor(y))
        v.backward()
        assert pt.grad is not None
        g = pt.grad * (len(p) if self._times_n else 1)
        return float(v.item()), g.numpy()


def clamped_at(c: float) -> Loss:
    def loss(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        value = -(y * torch.log(p).clamp_min(c) + (1 - y) * torch.log(1 - p).clamp_min(c)).mean()
        return F.binary_cross_entropy(p, y) + (value - F.binary_cross_entropy(p, y)).detach()

    return loss


CASES = [
    ("summed", LossOnlyPort(lambda p, y: F.binary_cross_entropy(p, y, reduction="sum")), "loss.sum", {}),
    ("gradient not divided", LossOnlyPort(F.binary_cross_entropy, grad_times_n=True), "loss.gradient_not_divided", {}),
    (
        "no clamp",
        LossOnlyPort(lambda p, y: -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()),
        "loss.unclamped",
        {},
    ),
    (
        "autograd through the clamp",
        LossOnlyPort(
            lambda p, y: -(y * torch.log(p).clamp(min=-100) + (1 - y) * torch.log1p(-p).clamp(min=-100)).mean()
        ),
        "loss.gradient_through_clamp",
        {},
    ),
    ("clamped at -50", LossOnlyPort(clamped_at(-50.0)), "loss.clamp", {"log_min": -50.0}),
    (
        "probabilities clipped (Keras)",
        LossOnlyPort(lambda p, y: F.binary_cross_entropy(p.clamp(1e-7, 1 - 1e-7), y)),
        "loss.clip_probabilities",
        {"e": 1e-7},
    ),
    ("BCE with logits on probabilities", LossOnlyPort(F.binary_cross_entropy_with_logits), "loss.on_logits", {}),
    ("targets inverted", LossOnlyPort(lambda p, y: F.binary_cross_entropy(p, 1 - y)), "loss.targets_inverted", {}),
    ("mean squared error", LossOnlyPort(F.mse_loss), "loss.mse", {}),
    (
        "label smoothing 0.1",
        LossOnlyPort(lambda p, y: F.binary_cross_entropy(p, y * 0.9 + 0.05)),
        "loss.label_smoothing",
        {"e": 0.1},
    ),
]


def diagnose(port: LossOnlyPort):
    return run_with(Context(RunConfig(data=BUNDLED_DATA), port=port), ["loss"]).results[0]


@pytest.mark.parametrize(("name", "port", "cause", "fitted"), CASES, ids=[c[0] for c in CASES])
def test_the_diagnosis_names_the_change(name: str, port: LossOnlyPort, cause: str, fitted: dict[str, float]) -> None:
    res = diagnose(port)
    assert res.status == "FAIL"
    assert [d["cause"] for d in res.diagnosis][:1] == [cause], res.hint
    for k, v in fitted.items():
        assert res.diagnosis[0]["parameters"][k] == pytest.approx(v, rel=0.05)
    assert res.hint.startswith("reproduced by ")


def test_an_unexplained_loss_is_said_to_be_unexplained() -> None:
    focal = LossOnlyPort(lambda p, y: (-(y * (1 - p) ** 2 * torch.log(p.clamp_min(1e-12)))).mean())
    res = diagnose(focal)
    assert res.status == "FAIL" and res.diagnosis == []
    assert res.hint.startswith("no candidate cause reproduces the port's loss; ")


def test_torch_bce_itself_passes_without_a_diagnosis() -> None:
    res = diagnose(LossOnlyPort(F.binary_cross_entropy))
    assert res.status == "PASS" and res.diagnosis == []
