"""The user's classifier through the generic reference (harness/reference/reference.py): the functions
the classifier's diagnosis catalogues and commands call with explicit parameters.

BCELoss on the squeezed sigmoid output, Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8), batch 32 shuffled
each epoch, epoch loss = unweighted mean of batch losses, accuracy at threshold 0.5.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.config import RunConfig
from harness.reference.reference import Reference
from harness.reference.structure import Params, Trace

__all__ = ["Trace", "backward", "batch_orders", "classifier", "evaluate", "forward", "loss_and_grad", "train"]


@lru_cache(maxsize=8)
def _base(n_features: int) -> Reference:
    return Reference(RunConfig(), n_features, 1)


def classifier(n_features: int, cfg: RunConfig | None = None) -> Reference:
    """The classifier's reference with `cfg`'s hyperparameters (its model, loss and optimizer kept)."""
    base = _base(n_features)
    if cfg is None:
        return base
    return base.with_cfg(cfg.with_(reference="", task="binary", loss="BCELoss", optimizer="Adam", scaler=cfg.scaler))


def _n(params: Params) -> int:
    return int(params["fc1.weight"].shape[1])


def forward(params: Params, x: np.ndarray) -> dict[str, np.ndarray]:
    return classifier(_n(params)).forward(params, x)


def loss_and_grad(p: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    return _base(1).loss_and_grad(p, y)


def backward(params: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
    return classifier(_n(params)).backward(params, x, y)


def make_adam(model: nn.Module, cfg: RunConfig, float32_form: bool = False) -> torch.optim.Optimizer:
    return classifier(1, cfg).make_optimizer(model, float32_form)


def optimizer_step(params: Params, grads: Params, state: dict | None, cfg: RunConfig) -> tuple[Params, dict]:
    """One torch.optim.Adam step from explicit parameters, gradients and state."""
    return classifier(_n(params), cfg).optimizer_step(params, grads, state)


def batch_orders(n: int, epochs: int, seed: int) -> np.ndarray:
    """One permutation per epoch, as DataLoader(shuffle=True)'s RandomSampler draws them."""
    g = torch.Generator().manual_seed(seed)
    return np.stack([torch.randperm(n, generator=g).numpy() for _ in range(epochs)]).astype(np.int64)


def train(
    x: np.ndarray,
    y: np.ndarray,
    init: Params,
    orders: np.ndarray,
    cfg: RunConfig,
    record_steps: int = 0,
    on_epoch: Any = None,
    dither_seed: int | None = None,
    float64: bool = False,
    float32_adam: bool = False,
) -> Trace:
    """The user's loop with an explicit initialization and batch order (Reference.train).

    `dither_seed` moves every gradient element by one ULP up or down (seeded coin flips) before each
    optimizer step: the rounding noise a port's different summation order puts into its gradients,
    which Adam amplifies where a gradient is near zero. `float64` trains in double precision: the
    float32 run's distance from it is float32 rounding noise itself. `float32_adam` trains with Adam's
    other legitimate arithmetic (harness/reference/adam_f32.py).
    """
    return classifier(_n(init), cfg).train(
        x,
        y,
        init,
        orders,
        record_steps,
        on_epoch if callable(on_epoch) else None,
        dither_seed=dither_seed,
        float64=float64,
        float32_adam=float32_adam,
    )


def evaluate(params: Params, x: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> tuple[np.ndarray, float]:
    return classifier(_n(params), RunConfig(threshold=threshold)).evaluate(params, x, y)
