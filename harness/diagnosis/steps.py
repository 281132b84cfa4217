"""Candidate causes for an optimizer step of any model and any configured optimizer (Adam, AdamW, SGD):
the one catalogue the optimizer stage asks. Adam and AdamW take harness/diagnosis/optimizer.py's (their
structure, hyperparameters and clipping); SGD's and every optimizer's weight-decay changes are here, the
configured torch optimizer replayed with one change on the stage's own cases.

Evidence: every case the optimizer stage ran, each with the new parameters, the update (new - old) and
every state slot. Changes here: AdamW's decoupled weight decay taken as Adam's L2 (added to the gradient)
or the other way round, weight decay left out or fitted, SGD's learning rate and momentum fitted, Nesterov
switched.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from harness.compare import Tolerance
from harness.config import RunConfig
from harness.diagnosis import Candidate, Cause, Param, explain, ratio
from harness.diagnosis import optimizer as adam
from harness.diagnosis.optimizer import Case
from harness.reference.reference import Reference
from harness.specs import OPTIMIZERS
from harness.tolerances import for_update


def _error(reference: Reference, cfg: RunConfig, cases: list[Case], tol: Tolerance, tol_update: Tolerance) -> float:
    """The replay's worst error in torch's arithmetic, or in Burn's (adam_f32.py) where that is closer: a
    port's legitimate float32 arithmetic must not hide the change it made (measured: Adam with L2 as
    Burn computes it was 0.96 of the tolerance from torch's Adam with L2 on the digits model's step 6)."""
    ref = reference.with_cfg(cfg)
    errors = [_worst(ref, cases, tol, tol_update, False)]
    if OPTIMIZERS[cfg.optimizer].adaptive and errors[0] > 1:
        errors.append(_worst(ref, cases, tol, tol_update, True))
    return min(errors)


def _worst(ref: Reference, cases: list[Case], tol: Tolerance, tol_update: Tolerance, float32_adam: bool) -> float:
    worst = 0.0
    for c in cases:
        new, state = ref.optimizer_step(c.params, c.grads, c.state, float32_adam)
        for k in ref.param_names:
            worst = max(
                worst,
                ratio(new[k], c.got[k], tol),
                ratio(new[k] - c.params[k], c.got[k] - c.params[k], for_update(tol_update, c.params[k])),
                *(ratio(state[s][k], (c.got_state.get(s) or {}).get(k, np.nan), tol) for s in ref.slots),
            )
    return worst


def diagnose(reference: Reference, cases: list[Case], tol: Tolerance, tol_update: Tolerance) -> list[Cause]:
    cfg = reference.cfg

    def err(change: Callable[[list[float]], RunConfig]) -> Callable[[list[float]], float]:
        return lambda t: _error(reference, change(list(t)), cases, tol, tol_update)

    def fitted(name: str, low: float, high: float, value: float, linear: bool = False) -> Candidate:
        param = (
            Param(name, low, high, to_value=lambda s: s, reference=value)
            if linear
            else Param(name, low, high, reference=math.log10(value) if value > 0 else None)
        )
        return Candidate(
            f"optimizer.{name}",
            f"{cfg.optimizer} with another {name.replace('_', ' ')}",
            err(lambda t: cfg.with_(**{name: t[0]})),
            (param,),
        )

    adaptive = OPTIMIZERS[cfg.optimizer].adaptive
    found = adam.candidates(cases, cfg, tol, tol_update) if adaptive else [fitted("lr", -6, 0, cfg.lr)]
    if adaptive and cfg.weight_decay > 0:
        other = "Adam" if cfg.optimizer == "AdamW" else "AdamW"
        how = (
            "added to the gradient (Adam's L2, coupled) instead of decoupled"
            if other == "Adam"
            else "decoupled (AdamW) instead of added to the gradient"
        )
        found.append(
            Candidate(
                f"optimizer.weight_decay_{'coupled' if other == 'Adam' else 'decoupled'}",
                f"weight decay {cfg.weight_decay:g} {how}",
                err(lambda _: cfg.with_(optimizer=other)),
            )
        )
    if cfg.weight_decay > 0:
        found += [
            Candidate("optimizer.no_weight_decay", "weight decay left out", err(lambda _: cfg.with_(weight_decay=0.0))),
            fitted("weight_decay", -7, 1, cfg.weight_decay),
        ]
    if not adaptive:
        found.append(fitted("momentum", 0.0, 0.999, cfg.momentum, linear=True))
        found.append(
            Candidate(
                "optimizer.nesterov",
                "SGD with Nesterov momentum switched " + ("off" if cfg.nesterov else "on"),
                err(lambda _: cfg.with_(nesterov=not cfg.nesterov)),
            )
        )
        return explain(found, f"{len(cases)} {cfg.optimizer} steps (parameters, updates and state)")
    return explain(found, adam.evidence(cases, cfg)) or adam.with_clipping(cases, cfg, tol, tol_update)
