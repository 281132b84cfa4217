"""Candidate causes for a loss that differs: torch's BCELoss replayed with one change.

Evidence: the port's loss value and d loss / d p on every case of the edge suite (exact 0 and 1, 1e-7
from the edges, 0.5, random). The replays run through torch's autograd, so a gradient that is NaN
where the port's is (0 x inf through a clamp) is reproduced, not assumed. A port whose loss takes logits
(`[port] loss_input = "logits"`) is fed the suite's logits z instead, and compared with the reference's
BCELoss(sigmoid(z)) and its gradient in z; every candidate then goes through the same float32 sigmoid,
but BCE with logits, which is the port's own formula on z.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from harness.compare import Tolerance
from harness.diagnosis import Candidate, Cause, Param, explain, ratios

LOG_MIN = -100.0


@dataclass(frozen=True)
class Case:
    name: str
    p: np.ndarray
    y: np.ndarray
    value: float  # the port's
    grad: np.ndarray
    logits: bool = False  # p holds logits z; the reference's loss is taken on sigmoid(z)


Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _bce(p: torch.Tensor, y: torch.Tensor, log_min: float = LOG_MIN) -> torch.Tensor:
    """Per-element BCE with log(p) and log1p(-p) clamped at log_min (the value torch's BCELoss computes)."""
    return (y - 1) * torch.log1p(-p).clamp_min(log_min) - y * torch.log(p).clamp_min(log_min)


def replay(case: Case, loss: Loss, undivided: bool = False, raw: bool = False) -> tuple[float, np.ndarray]:
    """The loss and its gradient in the case's input by autograd; `undivided` multiplies the gradient by
    the batch size. A logits case goes through the float32 sigmoid first, unless the loss is `raw` (it
    takes the logits itself)."""
    x = torch.tensor(case.p, dtype=torch.float32, requires_grad=True)
    y = torch.tensor(case.y, dtype=torch.float32)
    value = loss(torch.sigmoid(x) if case.logits and not raw else x, y)
    value.backward()
    assert x.grad is not None
    return float(value.item()), (x.grad * (len(case.p) if undivided else 1)).numpy()


def residuals(
    cases: Sequence[Case], loss: Loss, tol: Tolerance, undivided: bool = False, raw: bool = False
) -> np.ndarray:
    out = []
    for c in cases:
        value, grad = replay(c, loss, undivided, raw)
        out += [ratios(np.float32(c.value), np.float32(value), tol), ratios(c.grad, grad, tol)]
    return np.concatenate(out)


def _value_clamped_at(log_min: float) -> Loss:
    """The value clamped at log_min, the gradient torch's BCELoss's (whose backward ignores the clamp)."""

    def loss(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ref = torch.nn.functional.binary_cross_entropy(p, y)
        return ref + (_bce(p, y, log_min).mean() - ref).detach()

    return loss


def _clipped(e: float) -> Loss:
    return lambda p, y: _bce(p.clamp(e, 1 - e), y).mean()


def candidates(cases: Sequence[Case], tol: Tolerance) -> list[Candidate]:
    def cand(
        cause: str,
        description: str,
        make: Callable[..., Loss],
        params: tuple[Param, ...] = (),
        undivided: bool = False,
        raw: bool = False,
    ) -> Candidate:
        return Candidate(
            cause,
            description,
            lambda th: float(residuals(cases, make(*th), tol, undivided, raw).max()),
            params,
            lambda th: residuals(cases, make(*th), tol, undivided, raw),
        )

    bce = torch.nn.functional.binary_cross_entropy
    with_logits = torch.nn.functional.binary_cross_entropy_with_logits
    if any(c.logits for c in cases):
        inputs = [
            cand(
                "loss.with_logits",
                "BCE with logits on the pre-sigmoid output where the reference applies a float32 sigmoid, then "
                "BCELoss (beyond |z| ~ 17 sigmoid rounds to 0 or 1: the reference's loss is clamped at 100 and "
                "its gradient 0, the port's exact)",
                lambda: with_logits,
                raw=True,
            )
        ]
    else:
        inputs = [cand("loss.on_logits", "BCE with logits applied to the probabilities", lambda: with_logits)]
    return [
        *inputs,
        cand(
            "loss.sum",
            "the loss summed over the batch instead of averaged",
            lambda: lambda p, y: bce(p, y, reduction="sum"),
        ),
        cand(
            "loss.gradient_not_divided",
            "the loss averaged but its gradient not divided by the batch size",
            lambda: bce,
            undivided=True,
        ),
        cand(
            "loss.unclamped",
            "log(p) and log(1 - p) not clamped (the reference clamps both at -100)",
            lambda: lambda p, y: -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean(),
        ),
        cand(
            "loss.gradient_through_clamp",
            "the value clamped as torch's, but the gradient taken through the clamp (0 x inf = NaN at p in {0, 1})",
            lambda: lambda p, y: _bce(p, y).mean(),
        ),
        cand(
            "loss.clamp",
            "log(p) and log(1 - p) clamped at another value",
            _value_clamped_at,
            (Param("log_min", 0, 4, to_value=lambda s: -(10.0**s), reference=2),),
        ),
        cand(
            "loss.clip_probabilities",
            "probabilities clipped to [e, 1 - e] before the loss",
            _clipped,
            (Param("e", -12, -1),),
        ),
        cand("loss.targets_inverted", "the targets inverted (1 - y)", lambda: lambda p, y: bce(p, 1 - y)),
        cand(
            "loss.label_smoothing",
            "label smoothing: targets y (1 - e) + e / 2",
            lambda e: lambda p, y: bce(p, y * (1 - e) + e / 2),
            (Param("e", -4, -0.3),),
        ),
        cand("loss.mse", "mean squared error instead of BCE", lambda: torch.nn.functional.mse_loss),
    ]


ADVICE = {
    "loss.with_logits": (
        "the two agree wherever sigmoid does not saturate; to match the reference exactly, apply sigmoid and a "
        "clamped BCE, or change the reference to BCEWithLogitsLoss"
    ),
    "loss.unclamped": "clamp log(p) and log(1 - p) at -100 as torch's BCELoss does",
    "loss.gradient_through_clamp": (
        "Burn's BinaryCrossEntropyLoss takes its gradient through the clamp; use a loss whose backward is "
        "(p - y) / max(p (1 - p), 1e-12) / N, as torch's BCELoss (docs/burn-0.22.md)"
    ),
}


def diagnose(cases: Sequence[Case], tol: Tolerance) -> list[Cause]:
    names = ", ".join(c.name for c in cases)
    return explain(candidates(cases, tol), f"the value and gradient on {len(cases)} cases ({names})")
