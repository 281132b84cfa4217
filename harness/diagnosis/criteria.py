"""Candidate causes for a loss other than the classifier's BCELoss (CrossEntropyLoss, BCEWithLogitsLoss,
MSELoss): the loss replayed on every case of the stage's edge suite with one change.

Evidence: the port's value and gradient on each case. Changes: CrossEntropyLoss with a fitted label
smoothing (0 is "none"), the log-softmax over the batch dimension instead of the classes, a softmax
applied before the loss (probabilities taken for logits), a sum instead of a mean (every loss), and a
mean over every element instead of over rows (a gradient N x C times too small).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from harness.compare import Tolerance
from harness.diagnosis import Candidate, Cause, Param, explain, ratio
from harness.diagnosis.loss import Case
from harness.reference.reference import Reference

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _replay(fn: LossFn, case: Case, outputs: int) -> tuple[float, np.ndarray]:
    pt = torch.tensor(case.p.reshape(len(case.y), outputs), requires_grad=True)
    loss = fn(pt, torch.from_numpy(case.y))
    loss.backward()
    assert pt.grad is not None
    return float(loss.item()), pt.grad.numpy().reshape(case.p.shape)


def _error(fn: LossFn, cases: list[Case], outputs: int, tol: Tolerance) -> float:
    worst = 0.0
    for c in cases:
        v, g = _replay(fn, c, outputs)
        worst = max(worst, ratio(np.float32(v), np.float32(c.value), tol), ratio(g, c.grad, tol))
    return worst


def diagnose(reference: Reference, cases: list[Case], tol: Tolerance) -> list[Cause]:
    cfg = reference.cfg
    k = reference.n_outputs

    def err(fn: LossFn) -> Callable[[object], float]:
        return lambda _: _error(fn, cases, k, tol)

    found: list[Candidate] = []
    if reference.loss_spec.class_targets:
        a = cfg.loss_kwargs()["label_smoothing"]
        found += [
            Candidate(
                "loss.label_smoothing",
                "cross-entropy with another label smoothing",
                lambda t: _error(lambda p, y: F.cross_entropy(p, y.long(), label_smoothing=t[0]), cases, k, tol),
                (Param("label_smoothing", 0.0, 0.5, to_value=lambda s: s, reference=a),),
            ),
            Candidate(
                "loss.no_label_smoothing",
                "cross-entropy without label smoothing",
                err(lambda p, y: F.cross_entropy(p, y.long())),
            ),
            Candidate(
                "loss.softmax_dim",
                "the log-softmax taken over the batch dimension (dim 0) instead of the classes",
                err(lambda p, y: _smoothed_nll(F.log_softmax(p, dim=0), y, a)),
            ),
            Candidate(
                "loss.softmax_applied_twice",
                "a softmax applied before the loss (probabilities passed as logits)",
                err(lambda p, y: F.cross_entropy(F.softmax(p, dim=1), y.long(), label_smoothing=a)),
            ),
            Candidate(
                "loss.sum",
                "the loss summed over the batch instead of averaged",
                err(lambda p, y: F.cross_entropy(p, y.long(), label_smoothing=a, reduction="sum")),
            ),
        ]
    else:
        own = reference.criterion()

        def summed(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return own(p.squeeze(1), y) * len(y)

        found.append(Candidate("loss.sum", "the loss summed over the batch instead of averaged", err(summed)))
    if reference.loss_spec.class_targets and a == 0:
        found = [c for c in found if c.cause != "loss.no_label_smoothing"]
    return explain(found, f"{len(cases)} cases (value and gradient)")


def _smoothed_nll(logp: torch.Tensor, y: torch.Tensor, a: float) -> torch.Tensor:
    """CrossEntropyLoss's formula on given log-probabilities: (1 - a) NLL + a x the mean over classes."""
    nll = -logp.gather(1, y.long()[:, None]).squeeze(1)
    return ((1 - a) * nll - a * logp.mean(dim=1)).mean()
