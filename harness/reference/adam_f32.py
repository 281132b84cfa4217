"""Adam computed in float32 throughout, in the algebraic form most frameworks other than PyTorch use.

PyTorch's Adam computes the bias corrections 1 - beta^t in Python floats (float64) and the update as
lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps). Burn (burn-optim/src/optim/adam.rs) computes bc1 and sqrt(bc2)
in float32, with beta^t from `f32::powi`, and folds them into one factor: lr * (sqrt(bc2) / bc1) * m /
(sqrt(v) + eps * sqrt(bc2)). The two are the same algorithm; their roundings differ by a few float32 ULP per step,
systematically (the same factor for every element), so a trajectory trained with one drifts from the
other faster than one-ULP noise does. The harness trains the reference once with this form and counts it
in the envelope (harness/tolerances.py): a port is not divergent for choosing a legitimate Adam.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from harness.reference.structure import powi

__all__ = ["Float32Adam", "Float32AdamW", "powi"]


def _moments(
    state: dict, p: torch.Tensor, g: torch.Tensor, b1: np.float32, b2: np.float32
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Both moments updated in place with float32 betas (Burn holds them as f32: 1 - 0.999f32 is
    0.00099998713), and the step count; torch's slot names, so the state loads like torch's."""
    if not state:
        state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
    # A state loaded in torch's format holds the step as a float tensor.
    state["step"] = int(state["step"]) + 1
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m.mul_(float(b1)).add_(g * float(np.float32(1) - b1))
    v.mul_(float(b2)).add_(g.square() * float(np.float32(1) - b2))
    return m, v, state["step"]


class Float32Adam(torch.optim.Optimizer):
    """Adam with float32 bias corrections and epsilon scaled by sqrt(1 - beta2^t); weight decay as Burn's
    WeightDecay adds it, p x penalty + g in float32 before the moments (burn-optim src/optim/decay.rs)."""

    def __init__(
        self, params: Iterable[torch.Tensor], lr: float, betas: tuple[float, float], eps: float, weight_decay: float
    ) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            b1, b2 = (np.float32(b) for b in group["betas"])
            lr, eps = np.float32(group["lr"]), np.float32(group["eps"])
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["weight_decay"]:
                    g = p * float(np.float32(group["weight_decay"])) + g
                m, v, t = _moments(self.state[p], p, g, b1, b2)
                bc2_sqrt = np.sqrt(np.float32(1) - powi(b2, t), dtype=np.float32)
                factor = np.float32(bc2_sqrt / (np.float32(1) - powi(b1, t)))
                update = m * float(factor) / (v.sqrt() + float(np.float32(eps * bc2_sqrt)))
                p.sub_(update * float(lr))


class Float32AdamW(torch.optim.Optimizer):
    """AdamW as Burn 0.22 computes it (burn-optim src/optim/adamw.rs, AdaptiveMomentumW): moments with
    float32 betas (1 - 0.999f32 = 0.00099998713), each bias-corrected separately by 1 - beta^t from f32
    `powi`, delta = m_hat / (sqrt(v_hat) + eps), then p (1 - lr wd) - lr delta. PyTorch's AdamW is the
    same algorithm with bias corrections in float64 and its epsilon scaled by sqrt(1 - beta2^t) inside
    the step; the envelope counts both (docs/burn-0.22.md)."""

    def __init__(
        self, params: Iterable[torch.Tensor], lr: float, betas: tuple[float, float], eps: float, weight_decay: float
    ) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            b1, b2 = (np.float32(b) for b in group["betas"])
            lr, eps = np.float32(group["lr"]), np.float32(group["eps"])
            keep = np.float32(1.0 - group["lr"] * float(np.float32(group["weight_decay"])))
            for p in group["params"]:
                if p.grad is None:
                    continue
                m, v, t = _moments(self.state[p], p, p.grad, b1, b2)
                m_hat = m / float(np.float32(1) - powi(b1, t))
                v_hat = v / float(np.float32(1) - powi(b2, t))
                delta = m_hat / (v_hat.sqrt() + float(eps))
                p.mul_(float(keep)).sub_(delta * float(lr))
