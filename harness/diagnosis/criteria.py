"""Candidate causes for a loss other than the classifier's BCELoss (CrossEntropyLoss, BCEWithLogitsLoss,
the regression losses): the loss replayed on every case of the stage's edge suite with one change.

Evidence: the port's value and gradient on each case. Changes: CrossEntropyLoss with a fitted label
smoothing (0 is "none"), the log-softmax over the batch dimension instead of the classes, a softmax
applied before the loss (probabilities taken for logits), a sum instead of a mean (every loss). For a
regression output, the targets broadcast against the outputs ([n, 1] - [n] is [n, n]) and each other
regression loss: the mean squared error, half of it (a hand-written
0.5 r^2), the mean absolute error, Huber with a fitted delta and SmoothL1 with a fitted beta (Burn's
HuberLossConfig takes delta and SmoothL1LossConfig beta; Huber(d) is d x SmoothL1(beta = d), so a port
that swaps the two at the same number scales the loss and its gradient).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from harness.compare import Tolerance
from harness.diagnosis import Candidate, Cause, Param, explain, ratio
from harness.diagnosis.loss import Case
from harness.reference.reference import Reference
from harness.specs import VALUE

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
    if reference.loss_spec.output == VALUE:
        found += _regression(reference, cases, tol)
    if reference.loss_spec.class_targets and a == 0:
        found = [c for c in found if c.cause != "loss.no_label_smoothing"]
    return explain(found, f"{len(cases)} cases (value and gradient)")


def _regression(reference: Reference, cases: list[Case], tol: Tolerance) -> list[Candidate]:
    """Each regression loss the port may apply instead of the reference's, on the model's one output."""
    name, opts = reference.cfg.loss, reference.cfg.loss_kwargs()
    against = f"instead of the reference's {name}(" + ", ".join(f"{k}={v:g}" for k, v in opts.items()) + ")"

    def err(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[[object], float]:
        return lambda _: _error(lambda p, y: fn(p.squeeze(1), y), cases, 1, tol)

    def fitted(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> Callable[[list[float]], float]:
        return lambda t: _error(lambda p, y: fn(p.squeeze(1), y, t[0]), cases, 1, tol)

    def own(loss: str, key: str) -> float | None:
        return math.log10(opts[key]) if name == loss and opts[key] > 0 else None

    own_loss = reference.criterion()
    out: list[Candidate] = [
        Candidate(
            "loss.broadcast",
            "the loss of the [n, 1] output against the [n] targets broadcast to [n, n] (every output against "
            "every target; torch warns, Burn's tensors broadcast silently once the target is [1, n])",
            err(lambda p, y: own_loss(p[:, None].expand(len(p), len(y)), y[None, :].expand(len(p), len(y)))),
        )
    ]
    if name != "MSELoss":
        out.append(Candidate("loss.mse", f"the mean squared error {against}", err(F.mse_loss)))
    out.append(
        Candidate(
            "loss.half_mse",
            f"half the mean squared error (0.5 r^2, the gradient r) {against}",
            err(lambda p, y: 0.5 * F.mse_loss(p, y)),
        )
    )
    if name != "L1Loss":
        out.append(Candidate("loss.l1", f"the mean absolute error (L1Loss) {against}", err(F.l1_loss)))
    out.append(
        Candidate(
            "loss.huber_delta",
            f"HuberLoss with another delta (Burn's HuberLossConfig::new(delta) has no default) {against}",
            fitted(lambda p, y, d: F.huber_loss(p, y, delta=d)),
            (Param("delta", -2.0, 2.0, reference=own("HuberLoss", "delta")),),
        )
    )
    out.append(
        Candidate(
            "loss.smooth_l1_beta",
            f"SmoothL1Loss with another beta (Huber(beta) / beta) {against}",
            fitted(lambda p, y, b: F.smooth_l1_loss(p, y, beta=b)),
            (Param("beta", -2.0, 2.0, reference=own("SmoothL1Loss", "beta")),),
        )
    )
    return out


def _smoothed_nll(logp: torch.Tensor, y: torch.Tensor, a: float) -> torch.Tensor:
    """CrossEntropyLoss's formula on given log-probabilities: (1 - a) NLL + a x the mean over classes."""
    nll = -logp.gather(1, y.long()[:, None]).squeeze(1)
    return ((1 - a) * nll - a * logp.mean(dim=1)).mean()
