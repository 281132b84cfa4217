"""Candidate causes for BatchNorm running statistics that differ after one training-mode forward: the
update replayed on the reference's own input to the layer with one change.

Evidence: the port's `running_mean` and `running_var` of every BatchNorm layer, after each of the
backward stage's batches. torch's update is running = (1 - m) running + m x batch statistic, with the
unbiased (n - 1) batch variance; ports go wrong on the momentum's convention (Keras and Burn-style
`running = m running + (1 - m) batch`), on its value, and on the variance's divisor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from harness.compare import Tolerance
from harness.diagnosis import Candidate, Cause, Param, explain, ratio
from harness.reference.reference import Reference
from harness.reference.structure import Params


@dataclass(frozen=True)
class Case:
    params: Params
    x: np.ndarray
    got: Params  # the port's gradients and buffers


def _update(running: np.ndarray, batch: np.ndarray, m: float) -> np.ndarray:
    return ((1 - m) * running.astype(np.float64) + m * batch).astype(np.float32)


def diagnose(reference: Reference, cases: list[Case], layer: str, tol: Tolerance) -> list[Cause]:
    """Causes that reproduce the port's running statistics of BatchNorm layer `layer`."""
    mean_key, var_key = f"{layer}.running_mean", f"{layer}.running_var"
    momentum = reference.module(cases[0].params, layer).momentum
    if momentum is None:  # a cumulative average: not modelled here
        return []
    stats = []
    for c in cases:
        z = reference.layer_inputs(c.params, c.x, training=True)[layer].to(torch.float64).numpy()
        # One statistic per channel (axis 1), over the batch and every position: BatchNorm1d's [n, C]
        # and [n, C, L], BatchNorm2d's [n, C, H, W].
        z = np.moveaxis(z, 1, -1).reshape(-1, z.shape[1]) if z.ndim > 2 else z.reshape(len(z), -1)
        stats.append((c, z.mean(0), z.var(0, ddof=1), z.var(0, ddof=0)))

    def err(m: float, biased: bool) -> float:
        worst = 0.0
        for c, mean, var_u, var_b in stats:
            rm, rv = c.params[mean_key], c.params[var_key]
            new_mean = _update(rm, mean, m)
            new_var = _update(rv, var_b if biased else var_u, m)
            worst = max(worst, ratio(new_mean, c.got[mean_key], tol), ratio(new_var, c.got[var_key], tol))
        return worst

    found = [
        Candidate(
            "backward.batchnorm.momentum_flipped",
            f"{layer}: BatchNorm's momentum in the other convention (running = {momentum:g} x running + "
            f"{1 - momentum:g} x batch)",
            lambda _: err(1 - momentum, False),
        ),
        Candidate(
            "backward.batchnorm.biased_running_var",
            f"{layer}: BatchNorm's running variance updated with the biased (n) batch variance",
            lambda _: err(momentum, True),
        ),
        Candidate(
            "backward.batchnorm.momentum",
            f"{layer}: another BatchNorm momentum",
            lambda t: err(t[0], False),
            (Param("momentum", 0.0, 1.0, to_value=lambda s: s, reference=momentum),),
        ),
        Candidate(
            "backward.batchnorm.momentum_and_biased_var",
            f"{layer}: another BatchNorm momentum and the biased batch variance",
            lambda t: err(t[0], True),
            (Param("momentum", 0.0, 1.0, to_value=lambda s: s, reference=momentum),),
            size=2,
        ),
    ]
    return explain(found, f"{layer}'s running statistics after {len(cases)} batches")
